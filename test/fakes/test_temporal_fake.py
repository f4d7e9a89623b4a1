#!/usr/bin/env python3
"""The Temporal fake's own tests: it must behave as DESIGN section 3 says Temporal's frontend HTTP
API does. Prints TAP."""
import base64
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
