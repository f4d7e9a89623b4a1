#!/usr/bin/env python3
"""The Kong fake's own tests: it must behave as DESIGN section 3 says Kong does. Prints TAP."""
import http.client
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kong_fake  # noqa: E402
import mini_yaml  # noqa: E402

server = kong_fake.FakeServer(0)
threading.Thread(target=server.serve_forever, daemon=True).start()
conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
checks = []


def call(method, path, body=None):
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    resp = conn.getresponse()
    raw = resp.read()
    return resp.status, (json.loads(raw) if raw else None)


def check(description, condition, detail=""):
    checks.append((description, bool(condition), detail))


def uid():
    return str(uuid.uuid4())


def test_upsert_and_defaults():
    sid = uid()
    status, svc = call("PUT", "/services/" + sid, {"name": "svc-a", "url": "https://app.internal:8443/run/x", "tags": ["own"]})
    check("PUT by id creates a service (200)", status == 200, status)
    check("url is split into protocol, host, port and path",
          (svc["protocol"], svc["host"], svc["port"], svc["path"]) == ("https", "app.internal", 8443, "/run/x"), svc)
    check("defaults are filled in", svc["retries"] == 5 and svc["connect_timeout"] == 60000 and "url" not in svc, svc)
    status, svc2 = call("PUT", "/services/" + sid, {"name": "svc-a", "host": "other"})
    check("PUT replaces the whole entity", status == 200 and svc2["tags"] is None and svc2["port"] == 80
          and svc2["created_at"] == svc["created_at"], svc2)
    status, by_name = call("GET", "/services/svc-a")
    check("GET by name finds it", status == 200 and by_name["id"] == sid, status)
    status, err = call("POST", "/services", {"name": "svc-a", "host": "x"})
    check("POST with a taken name is 409 code 5", status == 409 and err["code"] == 5, err)
    status, created = call("POST", "/services", {"name": "svc-b", "host": "x"})
    check("POST creates (201)", status == 201 and "id" in created, status)
    status, err = call("PUT", "/services/" + uid(), {"name": "svc-b", "host": "x"})
    check("PUT of another id with a taken name is 409", status == 409, status)
    status, err = call("PUT", "/services/" + uid(), {"name": "bad", "host": "x", "colour": "red"})
    check("unknown field is a schema violation (400 code 2)", status == 400 and err["code"] == 2, err)


def test_missing_and_delete():
    status, err = call("GET", "/services/" + uid())
    check("GET of a missing entity is 404 Not found", status == 404 and err == {"message": "Not found"}, err)
    status, _ = call("PATCH", "/routes/" + uid(), {"name": "x"})
    check("PATCH of a missing entity is 404", status == 404, status)
    status, _ = call("DELETE", "/consumers/" + uid())
    check("DELETE of a missing entity is 204", status == 204, status)
    cid = uid()
    call("PUT", "/consumers/" + cid, {"username": "c-" + cid})
    status, _ = call("DELETE", "/consumers/%s/acls/%s" % (cid, uid()))
    check("DELETE of a missing child under a parent path is 404", status == 404, status)


def test_references():
    sid, rid = uid(), uid()
    status, err = call("PUT", "/routes/" + rid, {"paths": ["/x"], "service": {"id": sid}})
    check("a route to a missing service is 400 code 4", status == 400 and err["code"] == 4, err)
    call("PUT", "/services/" + sid, {"host": "h"})
    status, _ = call("PUT", "/routes/" + rid, {"paths": ["/x"], "methods": ["POST"], "service": {"id": sid}})
    check("a route to an existing service is accepted", status == 200, status)
    status, err = call("PUT", "/routes/" + uid(), {"service": {"id": sid}})
    check("a route without methods, hosts, headers, paths or snis is refused", status == 400, err)
    status, err = call("DELETE", "/services/" + sid)
    check("deleting a service with routes is 400 code 4 @referenced_by",
          status == 400 and err["code"] == 4 and err["fields"].get("@referenced_by") == "routes", err)
    pid = uid()
    call("PUT", "/plugins/" + pid, {"name": "acl", "route": {"id": rid}, "config": {"allow": ["g"]}})
    call("DELETE", "/routes/" + rid)
    status, _ = call("GET", "/plugins/" + pid)
    check("deleting a route deletes its plugins", status == 404, status)
    status, _ = call("DELETE", "/services/" + sid)
    check("the service can go once its routes are gone", status == 204, status)


def test_plugins():
    sid, rid, cid = uid(), uid(), uid()
    call("PUT", "/services/" + sid, {"host": "h"})
    call("PUT", "/routes/" + rid, {"paths": ["/p"], "service": {"id": sid}})
    call("PUT", "/consumers/" + cid, {"username": "pc-" + cid})
    ok = lambda body: call("PUT", "/plugins/" + uid(), body)
    status, plugin = ok({"name": "key-auth", "route": {"id": rid}, "config": {"key_names": ["X-API-Key"], "hide_credentials": True}})
    check("key-auth on a route is accepted with defaults filled",
          status == 200 and plugin["config"]["key_in_query"] is True and plugin["config"]["hide_credentials"] is True, plugin)
    status, err = ok({"name": "key-auth", "route": {"id": rid}})
    check("a second key-auth on the same route is 409", status == 409, err)
    status, err = ok({"name": "key-auth", "consumer": {"id": cid}})
    check("key-auth cannot be attached to a consumer", status == 400, err)
    status, err = ok({"name": "acl", "consumer": {"id": cid}, "config": {"allow": ["a"]}})
    check("acl cannot be attached to a consumer", status == 400, err)
    status, err = ok({"name": "acl", "route": {"id": rid}, "config": {}})
    check("acl needs allow or deny", status == 400, err)
    status, err = ok({"name": "rate-limiting", "route": {"id": rid}, "config": {"minute": 0}})
    check("a rate limit of 0 is refused", status == 400, err)
    status, err = ok({"name": "rate-limiting", "route": {"id": rid}, "config": {"minute": 5, "limit_by": "consumer-group"}})
    check("OSS refuses limit_by consumer-group", status == 400, err)
    status, err = ok({"name": "acl", "route": {"id": rid}, "config": {"allow": ["a"], "include_consumer_groups": True}})
    check("OSS refuses include_consumer_groups", status == 400, err)
    status, err = ok({"name": "acl", "route": {"id": rid}, "protocols": ["ws"], "config": {"allow": ["a"]}})
    check("OSS refuses ws protocols", status == 400, err)
    status, err = ok({"name": "rate-limiting", "route": {"id": rid}, "config": {"minute": 30, "policy": "local"}})
    check("a rate limit above 0 is accepted", status == 200, err)
    status, err = ok({"name": "request-termination", "route": {"id": rid}})
    check("a plugin that is not enabled is refused", status == 400, err)


def test_credentials_and_cascade():
    cid, kid = uid(), uid()
    call("PUT", "/consumers/" + cid, {"username": "k-" + cid, "tags": ["own"]})
    status, cred = call("PUT", "/consumers/%s/key-auth/%s" % (cid, kid), {"key": "secret-" + kid, "ttl": 60, "tags": ["own"]})
    check("a key-auth credential is upserted under its consumer", status == 200 and cred["consumer"]["id"] == cid, cred)
    status, err = call("POST", "/consumers/%s/key-auth" % cid, {"key": "secret-" + kid})
    check("key-auth keys are unique (409)", status == 409, err)
    status, acl = call("PUT", "/consumers/%s/acls/%s" % (cid, uid()), {"group": "g1"})
    check("an acl group is upserted under its consumer", status == 200 and acl["group"] == "g1", acl)
    status, listed = call("GET", "/key-auths?tags=own")
    check("key-auths are listed by tag", status == 200 and any(c["id"] == kid for c in listed["data"]), listed)
    call("DELETE", "/consumers/" + cid)
    status, _ = call("GET", "/key-auths/" + kid)
    check("deleting a consumer deletes its credentials", status == 404, status)


def test_lists():
    tag = "page-" + uid()[:8]
    for i in range(250):
        call("PUT", "/consumers/" + uid(), {"username": "%s-%03d" % (tag, i), "tags": [tag, "even" if i % 2 == 0 else "odd"]})
    seen, path, pages = [], "/consumers?size=100&tags=" + tag, 0
    while path:
        status, page = call("GET", path)
        pages += 1
        seen += [c["username"] for c in page["data"]]
        path = page["next"]
    check("pagination walks every entity exactly once", pages == 3 and len(seen) == 250 == len(set(seen)), (pages, len(seen)))
    status, both = call("GET", "/consumers?size=1000&tags=%s,even" % tag)
    check("tags a,b means AND", status == 200 and len(both["data"]) == 125, len(both["data"]))
    status, either = call("GET", "/consumers?size=1000&tags=even/odd")
    check("tags a/b means OR", status == 200 and len(either["data"]) >= 250, len(either["data"]))
    status, err = call("GET", "/consumers?tags=a,b/c")
    check("mixing , and / in tags is 400 code 11", status == 400 and err["code"] == 11, err)
    status, err = call("GET", "/consumers?size=1001")
    check("size above 1000 is 400 code 9", status == 400 and err["code"] == 9, err)
    status, err = call("PUT", "/consumers/" + uid(), {"username": "t", "tags": ["a/b"]})
    check("a tag with / is refused", status == 400, err)


def test_faults_and_dbless():
    call("POST", "/__fake/faults", {"error_rate": 1.0, "error_status": 503})
    status, _ = call("GET", "/services")
    check("error_rate 1 answers every request with the chosen status", status == 503, status)
    call("POST", "/__fake/faults", {"error_rate": 0, "rate_limit": True})
    conn.request("GET", "/services")
    resp = conn.getresponse()
    resp.read()
    check("rate_limit answers 429 with Retry-After", resp.status == 429 and resp.getheader("Retry-After") == "1", resp.status)
    call("POST", "/__fake/faults", {"rate_limit": False, "down": True})
    try:
        call("GET", "/services")
        check("down ends the connection without an answer", False)
    except (http.client.HTTPException, ConnectionError, OSError):
        check("down ends the connection without an answer", True)
    conn.close()
    call("POST", "/__fake/faults", {"down": False})
    server.kong.dbless = True
    status, root = call("GET", "/")
    check("DB-less mode shows in GET /", root["configuration"]["database"] == "off", root)
    status, err = call("PUT", "/services/" + uid(), {"host": "h"})
    check("DB-less mode answers writes with 405", status == 405, status)
    server.kong.dbless = False


def test_overlapping_writes():
    sid = uid()
    call("POST", "/__fake/faults", {"latency_ms": 200})
    before = call("GET", "/__fake/stats")[1]["overlapping_writes"]

    def put():
        other = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
        other.request("PUT", "/services/" + sid, json.dumps({"host": "h"}), {"Content-Type": "application/json"})
        other.getresponse().read()
        other.close()
    threads = [threading.Thread(target=put) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    together = call("GET", "/__fake/stats")[1]["overlapping_writes"] - before
    put()
    put()
    after = call("GET", "/__fake/stats")[1]["overlapping_writes"] - before
    call("POST", "/__fake/faults", {"latency_ms": 0})
    check("two writes to one path at once are counted as overlapping, one after the other are not",
          together == 1 and after == 1, (together, after))


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
        for name in ("kong", "client"):
            openssl("req", *ec, "-subj", "/CN=" + name, "-keyout", name + ".key", "-out", name + ".csr")
            openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                    "-CAcreateserial", "-days", "1", "-extfile", "ext", "-out", name + ".pem")
        path = lambda name: os.path.join(folder, name)
        tls = kong_fake.tls_context(path("kong.pem"), path("kong.key"), path("ca.pem"))
        secure = kong_fake.FakeServer(0, tls=tls)
        threading.Thread(target=secure.serve_forever, daemon=True).start()
        port = secure.server_address[1]

        def get(with_client_cert):
            context = ssl.create_default_context(cafile=path("ca.pem"))
            if with_client_cert:
                context.load_cert_chain(path("client.pem"), path("client.key"))
            c = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
            try:
                c.request("GET", "/services")
                return c.getresponse().status
            finally:
                c.close()
        check("https with a client certificate signed by the CA is served", get(True) == 200)
        try:
            refused = get(False) != 200
        except (ssl.SSLError, OSError, http.client.HTTPException):
            refused = True
        # The server counts the refusal in its own thread, which may run after the client has
        # already seen the failed handshake (TLS 1.3): give it a moment on a loaded machine.
        deadline = time.time() + 5
        while secure.stats.tls_refused == 0 and time.time() < deadline:
            time.sleep(0.02)
        check("https without a client certificate is refused, and counted",
              refused and secure.stats.tls_refused == 1, secure.stats.tls_refused)
        secure.shutdown()
    finally:
        shutil.rmtree(folder)


def test_contract():
    if not server.contract.available:
        checks.append(("contract check against the Kong documents # SKIP " + server.contract.spec_dir
                       + " not found, contract check skipped", True, ""))
        return
    before = len(server.stats.violations)
    status, err = call("PUT", "/services/" + uid(), {"host": "h", "retries": "five"})
    check("a body field of the wrong documented type is a contract violation",
          status == 400 and len(server.stats.violations) == before + 1, err)
    status, err = call("PUT", "/plugins/" + uid(), {"name": "rate-limiting", "config": {"minute": 5, "bogus": 1}})
    check("a plugin config field outside the plugin schema is a contract violation", status == 400, err)
    status, err = call("POST", "/consumers/x/keyauth", {"key": "k"})
    check("an undocumented path is a contract violation", status == 400 and "not in the Admin API" in err["message"], err)
    server.stats.violations.clear()


def test_mini_yaml():
    try:
        import yaml
    except ImportError:
        checks.append(("mini_yaml reads the Kong document as PyYAML does # SKIP PyYAML not installed", True, ""))
        return
    if not server.contract.available:
        checks.append(("mini_yaml reads the Kong document as PyYAML does # SKIP specs not found", True, ""))
        return
    with open(os.path.join(server.contract.spec_dir, "kong-admin-oss-openapi.yaml")) as f:
        text = f.read()
    check("mini_yaml reads the Kong document as PyYAML does", mini_yaml.load(text) == yaml.safe_load(text))


for name, fn in sorted(globals().items()):
    if name.startswith("test_") and callable(fn):
        try:
            fn()
        except Exception as e:  # a crash fails the group, not the run
            check("%s ran without an exception" % name, False, repr(e))

print("1..%d" % len(checks))
for i, (description, passed, detail) in enumerate(checks, 1):
    print("%s %d - %s" % ("ok" if passed else "not ok", i, description))
    if not passed:
        print("#   %s" % json.dumps(detail, default=str)[:500])
sys.exit(0 if all(p for _, p, _ in checks) else 1)
