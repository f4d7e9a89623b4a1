#!/usr/bin/env python3
"""The Temporal fake's own tests: it must behave as DESIGN section 3 says Temporal's frontend HTTP
API does. Prints TAP."""
import base64
import email.utils
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import temporal_fake  # noqa: E402
import temporal_model  # noqa: E402


def start(**options):
    server = temporal_fake.FakeServer(0, **options)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


server = start(namespaces=("default", "orders"))
# The same fake without the OpenAPI document: only its own model rules apply.
bare = start(spec_dir="/nonexistent")
checks = []
EP = "/cluster/nexus/endpoints"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?Z$")


class Client:
    def __init__(self, srv, headers=None):
        self.port = srv.server_address[1]
        self.headers = headers or {}
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def raw(self, method, path, body=None, headers=None):
        h = dict(self.headers, **(headers or {}))
        if body is not None:
            h["Content-Type"] = "application/json"
            body = body if isinstance(body, (bytes, str)) else json.dumps(body)
        try:
            self.conn.request(method, path, body, h)
            resp = self.conn.getresponse()
            return resp, resp.read()
        except Exception:
            self.conn.close()
            raise

    def __call__(self, method, path, body=None, headers=None):
        resp, data = self.raw(method, path, body, headers)
        return resp.status, (json.loads(data) if data else None)

    def close(self):
        self.conn.close()


call = Client(server)
call_bare = Client(bare)


def check(description, condition, detail=""):
    checks.append((description, bool(condition), detail))


def spec(name, namespace="default", task_queue="tq", description=None):
    s = {"name": name, "target": {"worker": {"namespace": namespace, "taskQueue": task_queue}}}
    if description is not None:
        s["description"] = description
    return s


def create(name, client=None, **kw):
    return (client or call)("POST", EP, {"spec": spec(name, **kw)})


def control(method, path, body=None, srv=None):
    return Client(srv or server)(method, path, body)


def test_create_get_update():
    control("POST", "/__fake/reset")
    status, out = create("orders-api", description="pg_gateway owner=x connector=y\n\nhello")
    ep = out["endpoint"]
    check("create answers 200 {endpoint}", status == 200 and set(out) == {"endpoint"}, out)
    check("the id is server-generated (a UUID) and urlPrefix is /nexus/endpoints/{id}",
          UUID_RE.match(ep["id"]) and ep["urlPrefix"] == "/nexus/endpoints/" + ep["id"], ep)
    check('version is "1", an int64 rendered as a string', ep["version"] == "1", ep)
    check("createdTime is an RFC 3339 timestamp; no lastModifiedTime before an update",
          TIME_RE.match(ep["createdTime"]) and "lastModifiedTime" not in ep, ep)
    check("the description (a JSON string) comes back as the same string",
          ep["spec"]["description"] == "pg_gateway owner=x connector=y\n\nhello", ep)
    status, got = call("GET", EP + "/" + ep["id"])
    check("GET by id finds a new endpoint at once", status == 200 and got["endpoint"] == ep, got)
    status, upd = call("POST", EP + "/%s/update" % ep["id"], {"version": "1", "spec": spec("orders-api", task_queue="tq2")})
    e2 = upd["endpoint"]
    check("update with the current version answers the endpoint with version 2 and lastModifiedTime",
          status == 200 and e2["version"] == "2" and TIME_RE.match(e2.get("lastModifiedTime", ""))
          and e2["spec"]["target"]["worker"]["taskQueue"] == "tq2" and e2["id"] == ep["id"]
          and e2["createdTime"] == ep["createdTime"], upd)
    check("an update without a description leaves it out (it replaces the spec)", "description" not in e2["spec"], e2)
    before = control("GET", "/__fake/stats")[1]["version_conflicts"]
    status, err = call("POST", EP + "/%s/update" % ep["id"], {"version": "1", "spec": spec("orders-api")})
    check("update with a stale version is 400 code 9 (failed precondition)",
          status == 400 and err["code"] == 9 and isinstance(err["message"], str) and err["details"] == [], err)
    check("the version conflict is counted", control("GET", "/__fake/stats")[1]["version_conflicts"] == before + 1)
    status, upd = call("POST", EP + "/%s/update" % ep["id"], {"version": 2, "spec": spec("orders-api")})
    check("the version may also be a JSON number (proto3 int64)", status == 200 and upd["endpoint"]["version"] == "3", upd)
    status, err = call("POST", EP + "/%s/update" % "no-such-id", {"version": "1", "spec": spec("orders-api")})
    check("update of a missing id is 404 code 5", status == 404 and err["code"] == 5, err)
    status, err = call("GET", EP + "/no-such-id")
    check("GET of a missing id is 404 code 5 with details", status == 404 and err["code"] == 5
          and isinstance(err["details"], list), err)


def test_delete():
    control("POST", "/__fake/reset")
    ep = create("to-delete")[1]["endpoint"]
    status, err = call("DELETE", EP + "/" + ep["id"])
    check("DELETE without a version is 400 code 3", status == 400 and err["code"] == 3, err)
    status, err = call("DELETE", EP + "/%s?version=0" % ep["id"])
    check("DELETE with version 0 is 400 code 3", status == 400 and err["code"] == 3, err)
    status, err = call("DELETE", EP + "/%s?version=7" % ep["id"])
    check("DELETE with another version is 400 code 9", status == 400 and err["code"] == 9, err)
    status, err = call("DELETE", EP + "/missing-id?version=1")
    check("DELETE of a missing id is 404 code 5", status == 404 and err["code"] == 5, err)
    writes = control("GET", "/__fake/stats")[1]["writes"]
    status, out = call("DELETE", EP + "/%s?version=1" % ep["id"])
    check("DELETE with the current version answers 200 {}", status == 200 and out == {}, out)
    check("only the delete that changed something counts as a write",
          control("GET", "/__fake/stats")[1]["writes"] == writes + 1)
    status, _ = call("GET", EP + "/" + ep["id"])
    check("a deleted endpoint is gone for GET by id", status == 404, status)


def test_list_pages():
    control("POST", "/__fake/reset")
    status, out = call("GET", EP)
    check("an empty list is {} (proto3 leaves empty fields out)", status == 200 and out == {}, out)
    ids = sorted(create("page-%d" % i)[1]["endpoint"]["id"] for i in range(6))
    pages, token, seen, raw_tokens = 0, None, [], []
    while pages < 10:
        path = EP + "?pageSize=3" + ("&nextPageToken=" + quote(token, safe="") if token else "")
        status, page = call("GET", path)
        pages += 1
        seen += [e["id"] for e in page.get("endpoints", [])]
        token = page.get("nextPageToken")
        if token:
            raw_tokens.append(token)
        if not token:
            last = page
            break
    check("pages of 3 over 6 endpoints: 3, 3, then an empty last page", pages == 3 and last == {}, (pages, last))
    check("the list is sorted by id and walks every endpoint once", seen == ids, seen)
    check("page tokens are base64 with '+' and '/' (clients must URL-encode them)",
          all("+" in t and "/" in t for t in raw_tokens), raw_tokens)
    status, err = call("GET", EP + "?pageSize=3&nextPageToken=" + raw_tokens[0])
    check("a token sent without URL-encoding ('+' read as a space) is 400 code 3", status == 400 and err["code"] == 3, err)
    status, page = call("GET", EP + "?pageSize=4")
    check("a page that is not full has no nextPageToken",
          "nextPageToken" in page and len(call("GET", EP + "?pageSize=4&nextPageToken=" + quote(page["nextPageToken"], safe=""))[1]["endpoints"]) == 2
          and "nextPageToken" not in call("GET", EP + "?pageSize=4&nextPageToken=" + quote(page["nextPageToken"], safe=""))[1], page)
    status, page = call("GET", EP + "?pageSize=1000")
    check("pageSize up to 1000 is accepted", status == 200 and len(page["endpoints"]) == 6, status)
    status, err = call("GET", EP + "?pageSize=1001")
    check("pageSize above 1000 is 400 code 3", status == 400 and err["code"] == 3, err)
    status, one = call("GET", EP + "?name=page-3")
    check("name= filters exactly: one result", status == 200 and [e["spec"]["name"] for e in one["endpoints"]] == ["page-3"], one)
    status, none = call("GET", EP + "?name=page")
    check("name= is not a prefix match: none is {}", status == 200 and none == {}, none)


def test_name_rules():
    control("POST", "/__fake/reset")
    for bad, why in (("1abc", "starts with a digit"), ("abc-", "ends with a dash"), ("a_b", "has an underscore"),
                     ("a", "is one character"), ("", "is empty"), ("a" * 201, "is 201 characters")):
        status, err = create(bad)
        check("a name that %s is 400 code 3" % why, status == 400 and err["code"] == 3, err)
    status, _ = create("a" * 200)
    check("a name of 200 characters is accepted", status == 200, status)
    before = control("GET", "/__fake/stats")[1]["duplicate_creates"]
    create("taken-name")
    status, err = create("taken-name", task_queue="other")
    check("a taken name is 409 code 6 already exists", status == 409 and err["code"] == 6
          and "already exists" in err["message"], err)
    check("the duplicate create is counted", control("GET", "/__fake/stats")[1]["duplicate_creates"] == before + 1)
    other = create("other-name")[1]["endpoint"]
    status, err = call("POST", EP + "/%s/update" % other["id"], {"version": "1", "spec": spec("taken-name")})
    check("renaming to a taken name is 409 code 6", status == 409 and err["code"] == 6, err)
    status, out = call("POST", EP + "/%s/update" % other["id"], {"version": "1", "spec": spec("renamed-name")})
    check("a rename keeps the id", status == 200 and out["endpoint"]["id"] == other["id"], out)
    check("the old name is free again after a rename", create("other-name")[0] == 200)


def test_targets():
    control("POST", "/__fake/reset")
    status, err = call("POST", EP, {"spec": {"name": "no-target"}})
    check("a spec without a target is 400 code 3", status == 400 and err["code"] == 3, err)
    status, err = create("no-such-ns", namespace="missing")
    check("a worker target in a missing namespace is 400 code 9 (failed precondition)",
          status == 400 and err["code"] == 9, err)
    status, err = create("empty-queue", task_queue="")
    check("an empty task queue is 400 code 3", status == 400 and err["code"] == 3, err)
    status, err = call("POST", EP, {"spec": {"name": "two-targets", "target": {
        "worker": {"namespace": "default", "taskQueue": "q"}, "external": {"url": "https://x.example"}}}})
    check("worker and external at once is 400 code 3 (a oneof)", status == 400 and err["code"] == 3, err)
    status, out = call("POST", EP, {"spec": {"name": "ext-target", "target": {"external": {"url": "https://x.example/n"}}}})
    check("an external target with an https URL is accepted", status == 200
          and out["endpoint"]["spec"]["target"] == {"external": {"url": "https://x.example/n"}}, out)
    status, err = call("POST", EP, {"spec": {"name": "ext-bad", "target": {"external": {"url": "x.example"}}}})
    check("an external target without a scheme is 400 code 3", status == 400 and err["code"] == 3, err)
    status, out = call_bare("POST", EP, {"spec": {"name": "snake", "target": {"worker": {"namespace": "default", "task_queue": "q"}}}})
    check("proto field names (task_queue) are accepted, as protojson does",
          status == 200 and out["endpoint"]["spec"]["target"]["worker"]["taskQueue"] == "q", out)


def test_unknown_fields():
    control("POST", "/__fake/reset", srv=bare)
    bodies = {
        "top level": {"spec": spec("u-1"), "extra": 1},
        "spec": {"spec": dict(spec("u-2"), colour="red")},
        "target": {"spec": {"name": "u-3", "target": {"worker": {"namespace": "default", "taskQueue": "q"}, "kind": "w"}}},
        "worker": {"spec": {"name": "u-4", "target": {"worker": {"namespace": "default", "taskQueue": "q", "ns": "x"}}}},
    }
    for where, body in bodies.items():
        status, err = call_bare("POST", EP, body)
        check("an unknown field in the %s is 400 code 3 (strict unmarshal, no spec document)" % where,
              status == 400 and err["code"] == 3 and "unknown field" in err["message"], err)
    ep = create("u-ok", client=call_bare)[1]["endpoint"]
    status, err = call_bare("POST", EP + "/%s/update" % ep["id"], {"version": "1", "spec": spec("u-ok"), "force": True})
    check("an unknown field in an update is 400 code 3", status == 400 and err["code"] == 3, err)
    status, err = call_bare("POST", EP, b"{not json")
    check("a body that is not JSON is 400 code 3", status == 400 and err["code"] == 3, err)
    status, err = call_bare("POST", EP, {"spec": {"name": 5, "target": {"worker": {"namespace": "default", "taskQueue": "q"}}}})
    check("a number where a string belongs is 400 code 3", status == 400 and err["code"] == 3, err)
    if server.contract.available:
        before = len(server.stats.contract_violations)
        status, err = call("POST", EP, {"spec": dict(spec("u-5"), colour="red")})
        check("with the document, an unknown field is also a contract violation",
              status == 400 and err["code"] == 3 and len(server.stats.contract_violations) == before + 1, err)
        server.stats.contract_violations.clear()


def test_descriptions():
    control("POST", "/__fake/reset")
    obj = {"owner": "x", "n": [1, 2, {"b": True}]}
    ep = create("d-obj", description=obj)[1]["endpoint"]
    check("any JSON value is a json/plain payload and comes back as itself", ep["spec"]["description"] == obj, ep)
    full = {"metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
            "data": base64.b64encode(b'"from the full form"').decode()}
    ep = create("d-full", description=full)[1]["endpoint"]
    check("the full form of a json/plain payload is rendered back in shorthand",
          ep["spec"]["description"] == "from the full form", ep)
    binary = {"metadata": {"encoding": base64.b64encode(b"binary/plain").decode()},
              "data": base64.b64encode(b"\x00\x01raw").decode()}
    ep = create("d-bin", description=binary)[1]["endpoint"]
    check("a payload in another encoding is kept and rendered in the full form", ep["spec"]["description"] == binary, ep)
    status, out = call("GET", EP + "/%s?noPayloadShorthand" % create("d-str", description="text")[1]["endpoint"]["id"])
    d = out["endpoint"]["spec"]["description"]
    check("?noPayloadShorthand renders the full form (metadata and data in base64)",
          base64.b64decode(d["metadata"]["encoding"]) == b"json/plain" and base64.b64decode(d["data"]) == b'"text"', out)
    # The limit is on the whole Payload's protobuf size: 24 bytes of metadata, 4 of framing for the
    # data (a tag and a 3-byte length) and the JSON text of the string (its two quotes included).
    fits = "x" * (20000 - 24 - 4 - 2)
    status, _ = create("d-fits", description=fits)
    check("a description whose payload is 20,000 bytes is accepted", status == 200, status)
    status, err = create("d-big", description=fits + "x")
    check("a description one byte over 20,000 is 400 code 3", status == 400 and err["code"] == 3, err)
    status, ep = create("d-html", description="<b>&</b>")
    check("characters Go's JSON escapes (<, >, &) count as 6 bytes each but come back unchanged",
          temporal_model.payload_size(temporal_model.payload_from_json("<")) == 24 + 2 + 8
          and status == 200 and ep["endpoint"]["spec"]["description"] == "<b>&</b>", ep)
    check("payload shorthand: null is binary/null", temporal_model.payload_from_json(None)[0] == {"encoding": b"binary/null"})


def test_namespaces():
    control("POST", "/__fake/reset")
    for path in ("/api/v1/namespaces/default", "/cluster/namespaces/default"):
        status, out = call("GET", path)
        check("GET %s describes the namespace" % path, status == 200 and out["namespaceInfo"]["name"] == "default"
              and out["namespaceInfo"]["state"] == "NAMESPACE_STATE_REGISTERED" and out["namespaceInfo"]["id"]
              and isinstance(out["config"], dict), out)
    status, err = call("GET", "/api/v1/namespaces/nope")
    check("a missing namespace is 404 code 5 'Namespace nope is not found.'",
          status == 404 and err["code"] == 5 and err["message"] == "Namespace nope is not found.", err)
    check("--namespaces (here default,orders) exist from the start", call("GET", "/api/v1/namespaces/orders")[0] == 200)
    control("POST", "/__fake/namespaces", {"name": "late"})
    check("a namespace added by the control exists", call("GET", "/api/v1/namespaces/late")[0] == 200)
    check("and endpoints may target it", create("in-late", namespace="late")[0] == 200)
    status, _ = control("DELETE", "/__fake/namespaces/late")
    check("a namespace removed by the control is gone (404)", status == 200 and call("GET", "/api/v1/namespaces/late")[0] == 404)
    status, err = create("in-late-2", namespace="late")
    check("and endpoints can no longer target it (400 code 9)", status == 400 and err["code"] == 9, err)


def test_list_lag():
    control("POST", "/__fake/reset")
    control("POST", "/__fake/faults", {"list_lag_ms": 1000})
    ep = create("lagging")[1]["endpoint"]
    check("with list lag, GET by id finds a new endpoint at once", call("GET", EP + "/" + ep["id"])[0] == 200)
    check("with list lag, the list does not show it yet", call("GET", EP)[1] == {})
    check("nor does the name filter", call("GET", EP + "?name=lagging")[1] == {})
    time.sleep(1.1)
    check("after the lag the list shows it", [e["id"] for e in call("GET", EP)[1].get("endpoints", [])] == [ep["id"]])
    call("POST", EP + "/%s/update" % ep["id"], {"version": "1", "spec": spec("lagging", task_queue="new")})
    listed = call("GET", EP)[1]["endpoints"][0]
    check("right after an update the list shows the old version", listed["version"] == "1", listed)
    call("DELETE", EP + "/%s?version=2" % ep["id"])
    check("right after a delete the list still shows it", len(call("GET", EP)[1].get("endpoints", [])) == 1)
    check("while GET by id says 404 at once", call("GET", EP + "/" + ep["id"])[0] == 404)
    check("and /__fake/endpoints shows the registry now", control("GET", "/__fake/endpoints")[1] == {"endpoints": []})
    time.sleep(1.1)
    check("after the lag the deleted endpoint leaves the list", call("GET", EP)[1] == {})
    control("POST", "/__fake/faults", {"list_lag_ms": 0})


def test_api_v1_prefix():
    control("POST", "/__fake/reset")
    base = "/api/v1/nexus/endpoints"
    status, out = call("POST", base, {"spec": spec("v1-ep")})
    ep = out["endpoint"]
    ok = status == 200
    ok = ok and call("GET", base + "/" + ep["id"])[0] == 200
    ok = ok and call("POST", base + "/%s/update" % ep["id"], {"version": "1", "spec": spec("v1-ep")})[1]["endpoint"]["version"] == "2"
    ok = ok and call("GET", base + "?name=v1-ep")[1]["endpoints"][0]["id"] == ep["id"]
    ok = ok and call("DELETE", base + "/%s?version=2" % ep["id"])[0] == 200
    check("create, get, update, list and delete work under /api/v1/nexus/endpoints too", ok)


def test_auth_and_path_prefix():
    guarded = start(required_header="Authorization: Bearer xyz", path_prefix="/temporal")
    anonymous, bearer = Client(guarded), Client(guarded, {"Authorization": "Bearer xyz"})
    status, err = anonymous("GET", "/temporal" + EP)
    check("without the required header: 401 code 16", status == 401 and err["code"] == 16, err)
    status, err = Client(guarded, {"Authorization": "Bearer other"})("GET", "/temporal" + EP)
    check("with another value: 401 code 16", status == 401 and err["code"] == 16, err)
    check("with the header, under the prefix: 200", bearer("GET", "/temporal" + EP)[0] == 200)
    status, err = bearer("GET", EP)
    check("outside the path prefix: 404 code 5", status == 404 and err["code"] == 5, err)
    status, stats = anonymous("GET", "/__fake/stats")
    check("the 401s are counted; /__fake needs no header", status == 200 and stats["unauthenticated"] == 2, stats)
    status, out = bearer("POST", "/temporal" + EP, {"spec": spec("behind-prefix")})
    check("urlPrefix does not carry the HTTP API's path prefix",
          status == 200 and out["endpoint"]["urlPrefix"].startswith("/nexus/endpoints/"), out)
    guarded.shutdown()


def test_faults():
    control("POST", "/__fake/reset")
    for status_code, grpc in ((503, 14), (504, 4), (500, 13), (403, 7)):
        control("POST", "/__fake/faults", {"error_rate": 1.0, "error_status": status_code})
        status, err = call("GET", EP)
        check("error_status %d answers with code %d" % (status_code, grpc),
              status == status_code and err["code"] == grpc and err["details"] == [], err)
    control("POST", "/__fake/faults", {"error_rate": 1.0, "error_status": 503, "error_path": "/update"})
    check("error_path limits errors to matching requests", call("GET", EP)[0] == 200)
    control("POST", "/__fake/faults", {"error_rate": 0, "error_path": None, "rate_limit": True})
    resp, data = call.raw("GET", EP)
    check("rate_limit answers 429 code 8 with Retry-After",
          resp.status == 429 and json.loads(data)["code"] == 8 and resp.getheader("Retry-After") == "1", data)
    control("POST", "/__fake/faults", {"rate_limit": False, "close_connections": True})
    resp, _ = call.raw("GET", EP)
    check("close_connections says Connection: close", resp.getheader("Connection") == "close", resp.getheaders())
    call.close()
    control("POST", "/__fake/faults", {"close_connections": False, "latency_ms": 150})
    t0 = time.time()
    call("GET", EP)
    check("latency_ms delays answers", time.time() - t0 >= 0.15, time.time() - t0)
    control("POST", "/__fake/faults", {"latency_ms": 0, "down": True})
    try:
        call("GET", EP)
        check("down ends the connection without an answer", False)
    except (http.client.HTTPException, ConnectionError, OSError):
        check("down ends the connection without an answer", True)
    call.close()
    control("POST", "/__fake/faults", {"down": False})
    status, err = control("POST", "/__fake/faults", {"colour": 1})
    check("an unknown fault is refused", status == 400, err)
    status, err = control("POST", "/__fake/faults", {"error_status": "503"})
    check("a fault value of the wrong kind is refused", status == 400, err)


def test_hostile_bodies():
    control("POST", "/__fake/reset")
    expect = {
        "utf8_split": lambda d: d.startswith(b'{"message": "x\xc3\xa9'),
        "invalid_utf8": lambda d: b"\xff\xfe" in d,
        "nul": lambda d: b"\\u0000" in d,
        "huge": lambda d: len(d) > 20 << 20,
        "not_json": lambda d: d.startswith(b"<html>"),
    }
    for kind, test in expect.items():
        control("POST", "/__fake/faults", {"error_rate": 1.0, "error_status": 503, "error_body": kind})
        resp, data = call.raw("GET", EP)
        check("error_body %s answers 503 with that body" % kind, resp.status == 503 and test(data), data[:80])
        call.close()
    control("POST", "/__fake/faults", {"error_body": "cut"})
    sock = socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5)
    sock.sendall(b"GET " + EP.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    check("error_body cut sends half the promised body, then closes", len(payload) == length // 2, (len(payload), length))
    status, err = control("POST", "/__fake/faults", {"error_body": "bogus"})
    check("an unknown error_body kind is refused", status == 400, err)
    control("POST", "/__fake/faults", {"error_rate": 0, "error_body": None})


def test_contract():
    if not server.contract.available:
        checks.append(("contract check against temporal-openapiv2.json # SKIP " + server.contract.spec_dir
                       + " not found, contract check skipped", True, ""))
        return
    control("POST", "/__fake/reset")
    cases = [
        ("an undocumented path (/namespaces/{ns} is not bound)", "GET", "/namespaces/default", None),
        ("an undocumented method", "PUT", EP, {"spec": spec("c-1")}),
        ("an unknown query parameter", "GET", EP + "?page_size=5", None),
        ("a query parameter of the wrong type", "GET", EP + "?pageSize=ten", None),
        ("a GET with a body", "GET", EP, {"x": 1}),
        ("an int64 that is not a number", "POST", EP + "/x/update", {"version": "v1", "spec": spec("c-2")}),
    ]
    for what, method, path, body in cases:
        before = len(server.stats.contract_violations)
        status, err = call(method, path, body)
        check("%s is 400 code 3 and a recorded contract violation" % what,
              status == 400 and err["code"] == 3 and len(server.stats.contract_violations) == before + 1, err)
    check("the violations carry method, path and problems",
          all({"method", "path", "problems"} <= set(v) for v in server.stats.contract_violations))
    check("?pretty and ?noPayloadShorthand are not violations", call("GET", EP + "?pretty&noPayloadShorthand")[0] == 200)
    server.stats.contract_violations.clear()
    status, err = call_bare("PUT", EP, {"spec": spec("c-3")})
    check("without the document, a known path with another method is 501 code 12", status == 501 and err["code"] == 12, err)
    status, err = call_bare("GET", "/namespaces/default")
    check("without the document, an unbound path is 404 code 5", status == 404 and err["code"] == 5, err)


def test_controls():
    control("POST", "/__fake/reset")
    foreign = {"spec": {"name": "not-ours", "description": "someone else's",
                        "target": {"worker": {"namespace": "elsewhere", "taskQueue": "q"}}},
               "id": "foreign-1", "version": 5}
    status, out = control("POST", "/__fake/endpoints", foreign)
    check("POST /__fake/endpoints inserts an endpoint directly (namespace not checked, id and version kept)",
          status == 200 and out["endpoint"]["id"] == "foreign-1" and out["endpoint"]["version"] == "5", out)
    status, got = call("GET", EP + "/foreign-1")
    check("the inserted endpoint is served like any other", status == 200 and got["endpoint"]["spec"]["description"] == "someone else's", got)
    status, err = control("POST", "/__fake/endpoints", dict(foreign, id="foreign-2"))
    check("the inserted endpoint's name is taken (409)", status == 409, err)
    create("ours")
    status, all_eps = control("GET", "/__fake/endpoints")
    check("GET /__fake/endpoints lists the whole registry", [e["spec"]["name"] for e in all_eps["endpoints"]] == ["not-ours", "ours"]
          or sorted(e["spec"]["name"] for e in all_eps["endpoints"]) == ["not-ours", "ours"], all_eps)
    stats = control("GET", "/__fake/stats")[1]
    check("stats count requests, reads and writes", stats["requests"] >= 2 and stats["reads"] >= 1 and stats["writes"] == 1, stats)
    control("POST", "/__fake/reset")
    check("reset forgets every endpoint", control("GET", "/__fake/endpoints")[1] == {"endpoints": []})


def test_overlapping_writes():
    control("POST", "/__fake/reset")
    ep = create("overlap")[1]["endpoint"]
    control("POST", "/__fake/faults", {"latency_ms": 200})

    def update():
        Client(server)("POST", EP + "/%s/update" % ep["id"], {"version": "1", "spec": spec("overlap")})
    threads = [threading.Thread(target=update) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    control("POST", "/__fake/faults", {"latency_ms": 0})
    stats = control("GET", "/__fake/stats")[1]
    check("two writes to one endpoint at once are counted; one wins, the other gets code 9",
          stats["overlapping_writes"] == 1 and stats["version_conflicts"] == 1, stats)


def test_cli():
    folder = tempfile.mkdtemp()
    try:
        port_file = os.path.join(folder, "port")
        proc = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "temporal_fake.py"),
                                 "--port-file", port_file, "--spec-dir", "/nonexistent", "--namespaces", "a,b",
                                 "--max-seconds", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 10
        while not os.path.exists(port_file) and time.time() < deadline:
            time.sleep(0.05)
        port = int(open(port_file).read())
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/api/v1/namespaces/b")
        status = c.getresponse().status
        c.close()
        check("the command line fake writes its port file and knows --namespaces", status == 200, status)
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        check("it exits by itself after --max-seconds", proc.returncode == 0, proc.returncode)
        check("without the specs it says plainly that the contract check is skipped",
              "temporal-fake: contract check skipped: /nonexistent not found" in out, out)
    finally:
        shutil.rmtree(folder)


def test_tls():
    if shutil.which("openssl") is None:
        check("TLS # SKIP openssl not found", True)
        return
    folder = tempfile.mkdtemp()
    try:
        def openssl(*args):
            subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        openssl("req", "-x509", *ec, "-days", "1", "-subj", "/CN=ca", "-keyout", "ca.key", "-out", "ca.pem")
        with open(os.path.join(folder, "ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\n")
        for name in ("temporal", "client"):
            openssl("req", *ec, "-subj", "/CN=" + name, "-keyout", name + ".key", "-out", name + ".csr")
            openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                    "-CAcreateserial", "-days", "1", "-extfile", "ext", "-out", name + ".pem")
        path = lambda name: os.path.join(folder, name)
        secure = start(tls=temporal_fake.fake_server.tls_context(path("temporal.pem"), path("temporal.key"), path("ca.pem")))

        def get(with_client_cert):
            context = ssl.create_default_context(cafile=path("ca.pem"))
            if with_client_cert:
                context.load_cert_chain(path("client.pem"), path("client.key"))
            c = http.client.HTTPSConnection("127.0.0.1", secure.server_address[1], context=context, timeout=5)
            try:
                c.request("GET", EP)
                return c.getresponse().status
            finally:
                c.close()
        check("https with a client certificate signed by the CA is served", get(True) == 200)
        try:
            refused = get(False) != 200
        except (ssl.SSLError, OSError, http.client.HTTPException):
            refused = True
        deadline = time.time() + 5
        while secure.stats.tls_refused == 0 and time.time() < deadline:
            time.sleep(0.02)
        check("https without a client certificate is refused, and counted",
              refused and secure.stats.tls_refused == 1, secure.stats.tls_refused)
        secure.shutdown()
    finally:
        shutil.rmtree(folder)



# -- Nexus calls ----------------------------------------------------------------------------------
class Receiver:
    """A callback listener on 127.0.0.1: records every POST; answers the first `fail_first` with 500."""

    def __init__(self, fail_first=0):
        receiver = self
        self.requests = []
        self.fail_first = fail_first
        self.lock = threading.Lock()

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers.items()),
                                              "header_list": list(self.headers.items()), "body": body,
                                              "time": time.time()})
                    failing = len(receiver.requests) <= receiver.fail_first
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d" % self.http.server_address[1]

    def wait(self, n, seconds=5):
        deadline = time.time() + seconds
        while time.time() < deadline:
            with self.lock:
                if len(self.requests) >= n:
                    return list(self.requests)
            time.sleep(0.01)
        return list(self.requests)

    def close(self):
        self.http.shutdown()
        self.http.server_close()


def nexus_setup(behaviours=(), namespace="default"):
    """Reset; one endpoint (worker target in `namespace`); the behaviours [(service, operation, b)].
    Returns the endpoint id."""
    control("POST", "/__fake/reset")
    control("POST", "/__fake/faults", {"callback_retry_base_ms": 30})
    if namespace == "default":
        ep = create("nexus-ep")[1]["endpoint"]
    else:
        ep = control("POST", "/__fake/endpoints", {"spec": spec("nexus-ep", namespace=namespace)})[1]["endpoint"]
    for service, operation, behaviour in behaviours:
        status, out = control("POST", "/__fake/nexus/handlers",
                              {"service": service, "operation": operation, "behaviour": behaviour})
        assert status == 200, out
    return ep["id"]


def nexus_path(endpoint_id, service="svc", operation="op", callback=None, cancel=False):
    path = "/nexus/endpoints/%s/services/%s/%s" % (endpoint_id, quote(service, safe=""), quote(operation, safe=""))
    if cancel:
        path += "/cancel"
    if callback:
        path += "?callback=" + quote(callback, safe="")
    return path


def nexus(endpoint_id, body=None, headers=None, **kw):
    """(status, response headers {lower-case name: value}, body bytes) of a start or cancel."""
    h = {"Content-Type": "application/json"} if body is not None else {}
    h.update(headers or {})
    c = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=15)
    try:
        c.request("POST", nexus_path(endpoint_id, **kw), None if body is None else
                  (body if isinstance(body, bytes) else json.dumps(body)), h)
        resp = c.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        c.close()


def stats():
    return control("GET", "/__fake/stats")[1]


def operations():
    return control("GET", "/__fake/nexus/operations")[1]["operations"]


def is_handler_error(data, error_type, message=None):
    try:
        body = json.loads(data)
    except ValueError:
        return False
    return (body.get("metadata") == {"type": "nexus.HandlerError"} and body.get("details", {}).get("type") == error_type
            and isinstance(body.get("message"), str) and (message is None or body["message"] == message))


def test_nexus_routing_errors():
    ep = nexus_setup()
    status, headers, data = nexus("no-such-endpoint", {"x": 1})
    check("nexus: an unknown endpoint id is 404 nexus endpoint not found (v1.31 handler error, not retryable)",
          status == 404 and json.loads(data) == {"message": "nexus endpoint not found", "metadata": {"type": "nexus.HandlerError"},
                                                  "details": {"type": "NOT_FOUND"}}
          and "nexus-request-retryable" not in headers, (status, headers, data))
    status, headers, data = nexus(ep, {"x": 1})
    check('nexus: no registered behaviour is 404 NOT_FOUND operation "svc/op" is not registered',
          status == 404 and is_handler_error(data, "NOT_FOUND", 'operation "svc/op" is not registered')
          and "nexus-request-retryable" not in headers, (status, data))
    gone = nexus_setup([("*", "*", {"kind": "sync", "result": 1})], namespace="vanished")
    status, headers, data = nexus(gone, {"x": 1})
    check("nexus: a target namespace that does not exist is a retryable 404",
          status == 404 and is_handler_error(data, "NOT_FOUND") and json.loads(data)["details"].get("retryableOverride") is True
          and headers.get("nexus-request-retryable") == "true", (status, headers, data))
    check("nexus: nothing starts on those errors", stats()["nexus_operations"] == 0, stats())
    status, headers, data = nexus(ep, {"x": 1}, headers={"Request-Timeout": "1500"})
    check("nexus: the operator API's prefix is not the Nexus one: /api/v1/nexus/... is not a Nexus route",
          call("POST", "/api/v1/nexus/endpoints/%s/services/svc/op" % ep, {"x": 1})[0] != 200)


def test_nexus_prefix_and_auth():
    guarded = start(required_header="Authorization: Bearer xyz", path_prefix="/temporal")
    try:
        control("POST", "/__fake/endpoints", {"spec": spec("guarded-ep"), "id": "g-1"}, srv=guarded)
        control("POST", "/__fake/nexus/handlers", {"service": "s", "operation": "o",
                                                   "behaviour": {"kind": "sync", "result": "ok"}}, srv=guarded)
        c = Client(guarded)
        resp, data = c.raw("POST", "/temporal/nexus/endpoints/g-1/services/s/o", {})
        check("nexus under --require-header: without it, 401 UNAUTHENTICATED handler error",
              resp.status == 401 and is_handler_error(data, "UNAUTHENTICATED"), data)
        resp, data = c.raw("POST", "/temporal/nexus/endpoints/g-1/services/s/o", {}, {"Authorization": "Bearer xyz"})
        check("nexus under --path-prefix, with the header: served", resp.status == 200 and json.loads(data) == "ok", data)
        c.close()
    finally:
        guarded.shutdown()


def test_nexus_behaviours():
    ep = nexus_setup([("*", "*", {"kind": "sync", "result": {"any": True}}),
                      ("svc", "*", {"kind": "sync", "result": "service-wide"}),
                      ("svc", "exact", {"kind": "sync", "result": [1, 2]}),
                      ("*", "by-op", {"kind": "sync", "result": "op-wide"}),
                      ("svc", "nothing", {"kind": "sync", "result": None}),
                      ("svc", "echo", {"kind": "echo"}),
                      ("svc", "fail", {"kind": "failure", "state": "failed", "failure": {"message": "no stock"}}),
                      ("svc", "cancelled", {"kind": "failure", "state": "canceled"}),
                      ("svc", "busy", {"kind": "handler_error", "status": 503, "message": "busy", "retryable": True}),
                      ("svc", "denied", {"kind": "handler_error", "status": 403, "type": "UNAUTHORIZED",
                                         "message": "no", "retryable": False}),
                      ("svc", "plain", {"kind": "handler_error", "status": 500, "message": "boom", "retryable": None})])
    status, headers, data = nexus(ep, {"x": 1}, operation="exact")
    check("nexus sync: 200 with the result, Content-Type application/json, no Nexus-Operation-State",
          status == 200 and json.loads(data) == [1, 2] and headers.get("content-type") == "application/json"
          and "nexus-operation-state" not in headers, (status, headers, data))
    check("nexus handlers: service/* wins over */*", json.loads(nexus(ep, {}, operation="other")[2]) == "service-wide")
    check("nexus handlers: */operation wins over */*", json.loads(nexus(ep, {}, service="s2", operation="by-op")[2]) == "op-wide")
    check("nexus handlers: */* catches the rest", json.loads(nexus(ep, {}, service="s2", operation="x")[2]) == {"any": True})
    status, headers, data = nexus(ep, {}, operation="nothing")
    check("nexus sync: a null result is an empty body without a content type",
          status == 200 and data == b"" and "content-type" not in headers, (status, headers, data))
    status, headers, data = nexus(ep, {"amount": 5, "s": "\u00e9"}, operation="echo", headers={
        "Authorization": "Bearer abc", "Pg-Gateway-Callable": "charge", "Pg-Gateway-Interface-Type": "update",
        "Nexus-Request-Id": "echo-1", "Request-Timeout": "5000ms", "Operation-Timeout": "2m",
        "X-Other": "not echoed", "Nexus-Callback-Pg-Gateway-Token": "secret"})
    out = json.loads(data) if status == 200 else None
    check("nexus echo: the input and the selected headers, names lower-cased",
          out == {"input": {"amount": 5, "s": "\u00e9"},
                  "headers": {"authorization": "Bearer abc", "pg-gateway-callable": "charge",
                              "pg-gateway-interface-type": "update", "nexus-request-id": "echo-1",
                              "request-timeout": "5000ms", "operation-timeout": "2m"}}, (status, data))
    status, headers, data = nexus(ep, {}, operation="fail")
    body = json.loads(data)
    check("nexus failure: 424, Nexus-Operation-State failed, the Failure as given plus details.state",
          status == 424 and headers.get("nexus-operation-state") == "failed" and body["message"] == "no stock"
          and body["details"]["state"] == "failed" and headers.get("content-type") == "application/json", (status, headers, body))
    status, headers, data = nexus(ep, {}, operation="cancelled")
    body = json.loads(data)
    check("nexus failure canceled: 424, Nexus-Operation-State canceled, canceledFailureInfo and details.state",
          status == 424 and headers.get("nexus-operation-state") == "canceled"
          and body["details"]["state"] == "canceled" and "canceledFailureInfo" in body["details"], (status, headers, body))
    status, headers, data = nexus(ep, {}, operation="busy")
    check("nexus handler_error retryable true: the status, the v1.31 body with retryableOverride, Nexus-Request-Retryable: true",
          status == 503 and json.loads(data) == {"message": "busy", "metadata": {"type": "nexus.HandlerError"},
                                                  "details": {"type": "UNAVAILABLE", "retryableOverride": True}}
          and headers.get("nexus-request-retryable") == "true", (status, headers, data))
    status, headers, data = nexus(ep, {}, operation="denied")
    check("nexus handler_error retryable false: Nexus-Request-Retryable: false and the given type",
          status == 403 and is_handler_error(data, "UNAUTHORIZED", "no")
          and headers.get("nexus-request-retryable") == "false", (status, headers, data))
    status, headers, data = nexus(ep, {}, operation="plain")
    check("nexus handler_error retryable null: no Nexus-Request-Retryable, no retryableOverride",
          status == 500 and is_handler_error(data, "INTERNAL", "boom") and "nexus-request-retryable" not in headers
          and "retryableOverride" not in json.loads(data)["details"], (status, headers, data))
    check("nexus: handler errors start nothing; sync answers and 424s are operations",
          stats()["nexus_operations"] == 8 and stats()["nexus_starts"] == 11, stats())
    for bad in ({"kind": "teleport"}, {"kind": "async", "delay_ms": -1}, {"kind": "sync", "reslt": 1},
                {"kind": "handler_error", "status": 200}, {"kind": "failure", "state": "running"}):
        status, err = control("POST", "/__fake/nexus/handlers", {"service": "a", "operation": "b", "behaviour": bad})
        check("nexus handlers: a bad behaviour %s is refused" % json.dumps(bad), status == 400, err)
    status, out = control("DELETE", "/__fake/nexus/handlers")
    check("nexus handlers: DELETE clears them", status == 200 and control("GET", "/__fake/nexus/handlers")[1] == {"handlers": []})
    check("nexus: after DELETE the operation is unknown again", nexus(ep, {}, operation="exact")[0] == 404)


def test_nexus_no_worker():
    ep = nexus_setup([("*", "*", {"kind": "no_worker"})])
    t0 = time.time()
    status, headers, data = nexus(ep, {}, headers={"Request-Timeout": "1300ms"})
    took = time.time() - t0
    check("nexus no_worker: 520 upstream timeout after Request-Timeout less 1 s",
          status == 520 and is_handler_error(data, "UPSTREAM_TIMEOUT", "upstream timeout") and 0.27 <= took < 0.95,
          (status, data, took))
    control("POST", "/__fake/faults", {"no_worker_wait_ms": 150})
    t0 = time.time()
    status, _, data = nexus(ep, {}, headers={"Request-Timeout": "30s"})
    took = time.time() - t0
    check("nexus no_worker: the wait is capped by no_worker_wait_ms", status == 520 and 0.12 <= took < 0.6, (status, took))
    control("POST", "/__fake/faults", {"no_worker_wait_ms": 5000})
    t0 = time.time()
    status, _, _ = nexus(ep, {}, headers={"Request-Timeout": "0.5s"})
    check("nexus no_worker: a Request-Timeout under 1 s answers at once", status == 520 and time.time() - t0 < 0.4,
          time.time() - t0)
    check("nexus no_worker: nothing started", stats()["nexus_operations"] == 0)


def test_nexus_async_dedupe_and_delivery():
    receiver = Receiver(fail_first=1)
    try:
        ep = nexus_setup([("svc", "op", {"kind": "async", "delay_ms": 100, "outcome": "succeeded",
                                         "result": {"charged": 5}})])
        cb = receiver.url + "/nexus/calls/abc?x=1"
        hdrs = {"Nexus-Request-Id": "req-1", "Nexus-Callback-Pg-Gateway-Token": "tok-123",
                "Authorization": "Bearer secret", "Request-Timeout": "5000ms", "Operation-Timeout": "60000ms"}
        t0 = time.time()
        status, headers, data = nexus(ep, {"amount": 5}, headers=hdrs, callback=cb)
        first = json.loads(data)
        check("nexus async: 201 {token, state running} with a Nexus-Link header",
              status == 201 and set(first) == {"token", "state"} and first["state"] == "running" and first["token"]
              and 'type="' in headers.get("nexus-link", "") and headers.get("content-type") == "application/json",
              (status, headers, data))
        status2, _, data2 = nexus(ep, {"amount": 5}, headers=hdrs, callback=cb)
        check("nexus dedupe: a repeated request id returns the same token and state",
              status2 == 201 and json.loads(data2) == first, (status2, data2))
        status3, _, data3 = nexus(ep, {"amount": 5}, headers=dict(hdrs, **{"Nexus-Request-Id": "req-2"}), callback=cb)
        check("nexus dedupe: another request id starts another operation",
              status3 == 201 and json.loads(data3)["token"] != first["token"])
        other_op = nexus(ep, {}, headers=hdrs, operation="other")[0]
        check("nexus dedupe: one request id on another operation is not a duplicate (no handler there: 404)", other_op == 404)
        st = stats()
        check("nexus stats: starts 4, duplicate starts 1, operations 2, duplicate operations 0",
              st["nexus_starts"] == 4 and st["nexus_duplicate_starts"] == 1 and st["nexus_operations"] == 2
              and st["nexus_duplicate_operations"] == 0, st)
        got = receiver.wait(3)
        mine = [r for r in got if r["headers"].get("Nexus-Operation-Token") == first["token"]]
        check("nexus delivery: the first attempt failed (500) and was retried; the op is delivered once more",
              len(mine) >= 1 and len(got) == 3, [(r["headers"].get("Nexus-Operation-Token"), r["time"] - t0) for r in got])
        last = mine[-1] if mine else {"headers": {}, "body": b"", "path": "", "header_list": []}
        h = last["headers"]
        check("nexus delivery: POST to the callback URL (path and query kept)", last["path"] == "/nexus/calls/abc?x=1", last["path"])
        check("nexus delivery: Nexus-Callback-* headers arrive with the prefix stripped",
              h.get("Pg-Gateway-Token") == "tok-123" and not any(n.lower().startswith("nexus-callback-") for n, _ in last["header_list"]), h)
        check("nexus delivery: the start's other headers (Authorization) are not sent back", "Authorization" not in h, h)
        check("nexus delivery: Nexus-Operation-State succeeded, the token, Content-Type application/json, body = result",
              h.get("Nexus-Operation-State") == "succeeded" and h.get("Nexus-Operation-Token") == first["token"]
              and h.get("Content-Type") == "application/json" and json.loads(last["body"] or b"null") == {"charged": 5}, (h, last["body"]))
        start_time = email.utils.parsedate_to_datetime(h.get("Nexus-Operation-Start-Time", "x")) if h.get("Nexus-Operation-Start-Time") else None
        check("nexus delivery: Nexus-Operation-Start-Time is an RFC 5322 date",
              start_time is not None and abs(start_time.timestamp() - t0) < 2, h.get("Nexus-Operation-Start-Time"))
        check("nexus delivery: Nexus-Operation-Close-Time is RFC 3339 with milliseconds",
              re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", h.get("Nexus-Operation-Close-Time", "")), h)
        check("nexus delivery: Nexus-Link is sent", 'type="' in h.get("Nexus-Link", ""), h)
        deadline = time.time() + 5
        while time.time() < deadline and stats()["callbacks_delivered"] < 2:
            time.sleep(0.02)
        st = stats()
        check("nexus stats: callbacks_delivered 2, callbacks_failed_attempts 1",
              st["callbacks_delivered"] == 2 and st["callbacks_failed_attempts"] == 1, st)
        ops = {o["token"]: o for o in operations()}
        op = ops.get(first["token"], {})
        hdr = dict((n.lower(), v) for n, v in op.get("headers", []))
        check("nexus operations: request id, endpoint, service, operation, state, callback url",
              op.get("request_id") == "req-1" and op.get("endpoint_id") == ep and op.get("service") == "svc"
              and op.get("operation") == "op" and op.get("state") == "succeeded" and op.get("callback_url") == cb, op)
        check("nexus operations: deliveries list each attempt", len(op.get("deliveries", [])) in (1, 2)
              and op["deliveries"][-1]["status"] == 200 and op.get("delivered") is True, op.get("deliveries"))
        check("nexus operations: the start headers without secrets",
              hdr.get("authorization") == "[redacted]" and hdr.get("nexus-callback-pg-gateway-token") == "[redacted]"
              and hdr.get("request-timeout") == "5000ms" and "Bearer secret" not in json.dumps(op), hdr)
    finally:
        receiver.close()


def test_nexus_failed_and_retry_backoff():
    receiver = Receiver(fail_first=3)
    try:
        ep = nexus_setup([("svc", "op", {"kind": "async", "delay_ms": 0, "outcome": "failed",
                                         "failure": {"message": "card declined"}})])
        control("POST", "/__fake/faults", {"callback_retry_base_ms": 100})
        status, _, data = nexus(ep, {}, callback=receiver.url + "/cb")
        got = receiver.wait(4)
        gaps = [b["time"] - a["time"] for a, b in zip(got, got[1:])]
        check("nexus delivery: retries back off from callback_retry_base_ms, doubling (0.1, 0.2, 0.4 s)",
              len(got) == 4 and 0.08 <= gaps[0] < 2 and 0.18 <= gaps[1] < 2 and 0.36 <= gaps[2] < 2, gaps)
        body = json.loads(got[-1]["body"]) if got else {}
        check("nexus delivery of a failure: state failed, the Failure body",
              got and got[-1]["headers"].get("Nexus-Operation-State") == "failed" and body.get("message") == "card declined"
              and body.get("details", {}).get("state") == "failed", body)
        time.sleep(0.05)
        check("nexus stats: three failed attempts", stats()["callbacks_failed_attempts"] == 3, stats())
    finally:
        receiver.close()


def test_nexus_cancel():
    receiver = Receiver()
    try:
        ep = nexus_setup([("svc", "op", {"kind": "async", "delay_ms": 60000, "result": 1})])
        status, _, data = nexus(ep, {}, headers={"Nexus-Callback-Pg-Gateway-Token": "t"}, callback=receiver.url + "/c")
        token = json.loads(data)["token"]
        status, headers, data = nexus(ep, headers={"Nexus-Operation-Token": token}, cancel=True)
        check("nexus cancel: 202 with an empty body", status == 202 and data == b"", (status, data))
        got = receiver.wait(1)
        h = got[0]["headers"] if got else {}
        body = json.loads(got[0]["body"]) if got else {}
        check("nexus cancel: the running operation completes as canceled, by callback (canceledFailureInfo)",
              h.get("Nexus-Operation-State") == "canceled" and h.get("Nexus-Operation-Token") == token
              and "canceledFailureInfo" in body.get("details", {}) and body["details"].get("state") == "canceled", (h, body))
        c = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
        c.request("POST", nexus_path(ep, cancel=True) + "?token=" + quote(token, safe=""))
        resp = c.getresponse()
        resp.read()
        c.close()
        check("nexus cancel: a repeated cancel (token in the query) is 202 and changes nothing",
              resp.status == 202 and len(receiver.wait(2, 0.3)) == 1, resp.status)
        status, _, data = nexus(ep, headers={"Nexus-Operation-Token": "bm8tc3VjaA"}, cancel=True)
        check("nexus cancel: an unknown token is a 404 handler error", status == 404 and is_handler_error(data, "NOT_FOUND"), (status, data))
        before = len(server.stats.contract_violations)
        status, _, data = nexus(ep, cancel=True)
        check("nexus cancel: no token is 400 BAD_REQUEST and a recorded contract violation",
              status == 400 and is_handler_error(data, "BAD_REQUEST") and len(server.stats.contract_violations) == before + 1,
              (status, data))
        server.stats.contract_violations.clear()
        st = stats()
        check("nexus stats: two cancels accepted, one operation canceled",
              st["nexus_cancels"] == 2 and st["nexus_canceled_operations"] == 1, st)
        check("nexus operations: the op shows canceled", [o["state"] for o in operations()] == ["canceled"], operations())
    finally:
        receiver.close()


def test_nexus_contract_checks():
    ep = nexus_setup([("*", "*", {"kind": "sync", "result": 1})])
    cases = [
        ("Request-Timeout without a unit", {"Request-Timeout": "5000"}, {}, "svc", "op"),
        ("Request-Timeout in hours", {"Request-Timeout": "1h"}, {}, "svc", "op"),
        ("Operation-Timeout with a space", {"Operation-Timeout": "5 s"}, {}, "svc", "op"),
        ("an empty service", {}, {}, "", "op"),
        ("an empty operation", {}, {}, "svc", ""),
        ("a body that is not the JSON its Content-Type says", {}, b"{not json", "svc", "op"),
    ]
    for what, headers, body, service, operation in cases:
        before = len(server.stats.contract_violations)
        status, _, data = nexus(ep, body, headers=headers, service=service, operation=operation)
        check("nexus contract: %s is 400 BAD_REQUEST and a recorded contract violation" % what,
              status == 400 and is_handler_error(data, "BAD_REQUEST") and len(server.stats.contract_violations) == before + 1,
              (status, data))
    server.stats.contract_violations.clear()
    for value in ("250ms", "1.5s", "2m", "0ms"):
        check("nexus contract: Request-Timeout %s is accepted" % value,
              nexus(ep, {}, headers={"Request-Timeout": value, "Operation-Timeout": value})[0] == 200)
    status, _, data = nexus(ep, {}, service="a/b c", operation="\u00fcber?x")
    check("nexus: service and operation are URL-escaped path segments", status == 200 and
          [(o["service"], o["operation"]) for o in operations()][-1] == ("a/b c", "\u00fcber?x"), operations()[-1:])
    check("nexus contract: no violations for valid calls", server.stats.contract_violations == [], server.stats.contract_violations)


def test_nexus_callback_allowed():
    ep = nexus_setup([("*", "*", {"kind": "async", "delay_ms": 0, "result": 1})])
    for url in ("http://example.com/cb", "http://10.0.0.1:8790/cb", "ftp://127.0.0.1/cb", "not a url"):
        status, _, data = nexus(ep, {}, callback=url)
        check("nexus callback %s is 400 callback URL not allowed" % url,
              status == 400 and is_handler_error(data, "BAD_REQUEST", "callback URL not allowed"), (status, data))
    check("nexus: localhost is allowed by default", nexus(ep, {}, callback="http://localhost:9/x")[0] == 201)
    control("POST", "/__fake/faults", {"callback_allowed": ["127.0.0.1:8790"]})
    check("nexus: callback_allowed limits the ports", nexus(ep, {}, callback="http://127.0.0.1:8791/x")[0] == 400
          and nexus(ep, {}, callback="http://127.0.0.1:8790/x")[0] == 201)
    status, err = control("POST", "/__fake/faults", {"callback_allowed": "127.0.0.1:*"})
    check("nexus: callback_allowed must be a list", status == 400, err)
    check("nexus: refused starts start nothing", stats()["nexus_operations"] == 2, stats())


def test_nexus_faults():
    ep = nexus_setup([("*", "*", {"kind": "async", "delay_ms": 0, "result": 1})])
    control("POST", "/__fake/faults", {"error_rate": 1.0, "error_status": 503})
    status, _, data = nexus(ep, {}, headers={"Nexus-Request-Id": "f-1"})
    check("nexus faults: an injected 503 is a handler error UNAVAILABLE", status == 503 and is_handler_error(data, "UNAVAILABLE"),
          (status, data))
    check("nexus faults: nothing started before the fault", stats()["nexus_starts"] == 0 and stats()["nexus_operations"] == 0)
    control("POST", "/__fake/faults", {"error_rate": 0.3})
    seen_503, tokens = 0, {}
    for i in range(40):
        rid = "retry-%d" % i
        for _ in range(30):
            status, _, data = nexus(ep, {}, headers={"Nexus-Request-Id": rid})
            if status == 503:
                seen_503 += 1
                continue
            tokens.setdefault(rid, set()).add(json.loads(data)["token"])
            if random_again():
                continue
            break
    control("POST", "/__fake/faults", {"error_rate": 0})
    st = stats()
    check("nexus faults: a 30 %% error rate fails some starts with 503 (%d)" % seen_503, seen_503 > 0)
    check("nexus faults: retried with the same request id, each call starts exactly once",
          st["nexus_operations"] == 40 and st["nexus_duplicate_operations"] == 0
          and all(len(t) == 1 for t in tokens.values()) and len(tokens) == 40, st)
    control("POST", "/__fake/faults", {"latency_ms": 120})
    t0 = time.time()
    nexus(ep, {})
    check("nexus faults: latency_ms applies", time.time() - t0 >= 0.12)
    control("POST", "/__fake/faults", {"latency_ms": 0, "rate_limit": True})
    status, headers, data = nexus(ep, {})
    check("nexus faults: rate_limit is 429 RESOURCE_EXHAUSTED with Retry-After",
          status == 429 and is_handler_error(data, "RESOURCE_EXHAUSTED") and headers.get("retry-after") == "1", (status, data))
    control("POST", "/__fake/faults", {"rate_limit": False, "down": True})
    try:
        nexus(ep, {})
        check("nexus faults: down ends the connection without an answer", False)
    except (http.client.HTTPException, ConnectionError, OSError):
        check("nexus faults: down ends the connection without an answer", True)
    control("POST", "/__fake/faults", {"down": False})


_coin = [0]


def random_again():
    """Every third successful start is sent once more (a retry after a lost answer)."""
    _coin[0] += 1
    return _coin[0] % 3 == 0


def test_nexus_delivery_does_not_block():
    # A callback listener that never answers: deliveries wait (10 s per attempt) in the pool,
    # while starts keep being answered at once.
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(64)
    try:
        ep = nexus_setup([("*", "*", {"kind": "async", "delay_ms": 0, "result": 1})])
        url = "http://127.0.0.1:%d/cb" % hang.getsockname()[1]
        t0 = time.time()
        codes = [nexus(ep, {}, callback=url)[0] for _ in range(30)]
        took = time.time() - t0
        check("nexus: 30 starts whose callbacks hang are answered at once (%.2f s)" % took,
              codes == [201] * 30 and took < 3, (codes, took))
        time.sleep(0.2)
        check("nexus: delivery threads are bounded (not a thread per operation)",
              sum(1 for t in threading.enumerate() if t.name.startswith("nexus-delivery")) <= 8 * 4,
              [t.name for t in threading.enumerate()])
    finally:
        control("POST", "/__fake/reset")
        hang.close()


def test_nexus_reset():
    ep = nexus_setup([("*", "*", {"kind": "sync", "result": 1})])
    nexus(ep, {})
    control("POST", "/__fake/reset")
    st = stats()
    check("nexus: reset forgets handlers, operations and counters",
          control("GET", "/__fake/nexus/handlers")[1] == {"handlers": []} and operations() == []
          and st["nexus_starts"] == 0 and st["nexus_operations"] == 0, st)

for name, fn in sorted(globals().items()):
    if name.startswith("test_") and callable(fn):
        try:
            fn()
        except Exception as e:  # a crash fails the group, not the run
            check("%s ran without an exception" % name, False, repr(e))
        call.close()

print("1..%d" % len(checks))
for i, (description, passed, detail) in enumerate(checks, 1):
    print("%s %d - %s" % ("ok" if passed else "not ok", i, description))
    if not passed:
        print("#   %s" % json.dumps(detail, default=str)[:500])
sys.exit(0 if all(p for _, p, _ in checks) else 1)
