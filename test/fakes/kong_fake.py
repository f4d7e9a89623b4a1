#!/usr/bin/env python3
"""A stateful fake of the Kong Admin API (OSS 3.x) for pg_gateway's tests and benchmarks.

It behaves as ../shared/DESIGN.md section 3 says Kong does: POST creates (201), PUT upserts by id
or name (200, full replace, defaults filled in), GET/PATCH of a missing entity is 404, DELETE is
204 even when missing (but 404 for a missing child under a parent path), errors are Kong's
{code, name, message, fields} bodies, unique and foreign-key checks, cascades, paginated lists
with tag filters, DB-less mode (405 on writes); the entities and their rules are in kong_model.py,
the HTTP face is here. Each request is also checked against Kong's own
documents (kong_contract.py); a request the real server would not accept is answered 400 and
recorded as a contract violation, which the tests read from GET /__fake/stats.

Fault controls for reliability tests, under /__fake/ (never part of Kong's API):
  POST /__fake/faults  {"error_rate": 0.3, "error_status": 503, "latency_ms": 50, "down": true,
                        "rate_limit": true, "close_connections": true,
                        "error_body": "utf8_split", "error_path": "/services/gw-..."}
       close_connections: every answer says Connection: close and the socket is closed after it
       error_body: what a faulty answer carries instead of Kong's error (hostile answers):
         utf8_split  a JSON message of 2-byte characters behind one ASCII byte, ~2000 bytes
         invalid_utf8  bytes that are not UTF-8;  nul  a JSON message with a \u0000
         huge  20 MB of JSON;  not_json  an HTML page;  cut  half the body, then the socket closes
       error_path: only requests whose path or JSON body contains this get the error (default:
         all; a row's Kong objects have UUIDv5 ids in their paths and its name in their bodies)
  GET  /__fake/stats   request and write counts, contract violations, overlapping writes to
                       one path
  GET  /__fake/created when each entity was first created (ms since the epoch), by id
  POST /__fake/reset   forget every entity and counter

With --tls-cert and --tls-key it speaks https only; with --tls-client-ca as well, it also
requires a client certificate signed by that CA (mutual TLS). Handshakes it refuses are counted
in /__fake/stats as tls_refused.

Standard library only; binds to 127.0.0.1; exits by itself when its parent process dies or after
--max-seconds.
"""
import argparse
import json
import os
import random
import sys
import time
from urllib.parse import parse_qs, urlsplit

import fake_server
import kong_contract
from fake_server import Faults, hostile_body, tls_context, watch_parent  # noqa: F401 (used by tests)
from kong_model import (CHILDREN, COLLECTIONS, PLUGIN_DEFAULTS, UUID_RE, Kong, KongError, not_found,
                        schema_violation)


class Stats:
    def __init__(self):
        self.requests = 0
        self.writes = 0
        self.violations = []
        self.by_method = {}
        self.tls_refused = 0
        self.overlapping_writes = 0


class Handler(fake_server.BaseHandler):
    name = "kong-fake"
    server_version = "kong/3.9.0"

    def _send(self, status, body=None, headers=None):
        self.send_json(status, body, headers)

    def _body(self):
        raw = self.read_raw_body()
        if not raw:
            return None
        ctype = self.headers.get("Content-Type", "")
        if "application/json" not in ctype:
            raise KongError(415, {"message": "Unsupported Content-Type; use application/json"})
        try:
            return json.loads(raw)
        except ValueError:
            raise KongError(400, {"message": "Cannot parse JSON body"})

    def _handle(self, method):
        server = self.server
        try:
            body = self._body()
        except KongError as e:
            return self._send(e.status, e.body)
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        query = parse_qs(url.query)
        if path.startswith("/__fake/"):
            return self._control(method, path, body)
        # Behind a proxy: the Admin API under a path prefix, guarded by a token header (as Kong
        # Enterprise's Kong-Admin-Token, or a gateway in front of OSS Kong).
        prefix = server.path_prefix
        if prefix:
            if path != prefix and not path.startswith(prefix + "/"):
                return self._send(404, {"message": "Not found"})
            path = path[len(prefix):] or "/"
        if not self.header_matches(server.required_header):
            return self._send(401, {"message": "Invalid credentials. Token or User credentials required"})
        faults = server.faults
        if faults.down:
            # Like a Kong that is not there: the connection ends without an answer.
            return self.hang_up()
        if method == "GET":
            return self._serve(method, path, query, body)
        # Two writes to one path at once mean two clients (or two jobs) race for one object, and
        # whichever lands last wins: counted, since a client should order its writes per object.
        with server.stats_lock:
            if server.writing.get(path):
                server.stats.overlapping_writes += 1
            server.writing[path] = server.writing.get(path, 0) + 1
        try:
            return self._serve(method, path, query, body)
        finally:
            with server.stats_lock:
                server.writing[path] -= 1
                if not server.writing[path]:
                    del server.writing[path]

    def _serve(self, method, path, query, body):
        server = self.server
        faults = server.faults
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000.0)
        with server.stats_lock:
            server.stats.requests += 1
            server.stats.by_method[method] = server.stats.by_method.get(method, 0) + 1
        if faults.rate_limit:
            return self._send(429, {"message": "API rate limit exceeded"}, {"Retry-After": "1"})
        if (faults.error_rate and random.random() < faults.error_rate
                and (not faults.error_path or faults.error_path in path
                     or faults.error_path in json.dumps(body))):
            if faults.error_body:
                return self.send_hostile(faults.error_status, faults.error_body)
            return self._send(faults.error_status, {"message": "An unexpected error occurred"})
        problems = server.contract.check(method, path, body)
        if problems:
            with server.stats_lock:
                server.stats.violations.append({"method": method, "path": path, "problems": problems})
            sys.stderr.write("kong-fake: CONTRACT VIOLATION %s %s: %s\n" % (method, path, "; ".join(problems)))
            return self._send(400, {"code": 2, "name": "schema violation",
                                    "message": "request not accepted by the Kong Admin API document: "
                                               + "; ".join(problems), "fields": {}})
        kong = server.kong
        with kong.lock:
            try:
                status, out = self._route(kong, method, path, query, body)
            except KongError as e:
                status, out = e.status, e.body
        if method in ("POST", "PUT", "PATCH", "DELETE") and status < 300:
            with server.stats_lock:
                server.stats.writes += 1
        self._send(status, out)

    def _route(self, kong, method, path, query, body):
        segs = [s for s in path.split("/") if s]
        if not segs:
            if method != "GET":
                raise KongError(405, {"message": "Method not allowed"})
            return 200, {"version": "3.9.0", "tagline": "Welcome to kong", "hostname": "kong-fake",
                         "configuration": {"database": "off" if kong.dbless else "postgres"},
                         "plugins": {"enabled_in_cluster": sorted(PLUGIN_DEFAULTS),
                                     "available_on_server": {p: {"version": "3.9.0"} for p in PLUGIN_DEFAULTS}}}
        if segs == ["status"]:
            return 200, {"database": {"reachable": not kong.dbless}, "server": {}}
        if kong.dbless and method != "GET":
            raise KongError(405, {"code": 12, "name": "operation unsupported",
                                  "message": "cannot %s '%s' entities when not using a database" %
                                             (method.lower(), segs[0])})
        if segs[0] not in COLLECTIONS:
            raise not_found()
        entity = COLLECTIONS[segs[0]]
        if len(segs) == 1:
            return self._collection(kong, method, entity, query, body, "/" + segs[0], None, {})
        parent = kong.find(entity, segs[1])
        if len(segs) == 2:
            return self._item(kong, method, entity, segs[1], parent, body, {}, nested=False)
        child_entity = CHILDREN.get((entity, segs[2]))
        if child_entity is None or len(segs) > 4:
            raise not_found()
        if parent is None:
            raise not_found()
        field = {"routes": "route", "services": "service", "consumers": "consumer"}[entity]
        forced = {field: {"id": parent["id"]}}
        if len(segs) == 3:
            return self._collection(kong, method, child_entity, query, body, path, (field, parent["id"]), forced)
        child = kong.find(child_entity, segs[3])
        if child is not None and kong.ref_id(child.get(field)) != parent["id"]:
            child = None
        return self._item(kong, method, child_entity, segs[3], child, body, forced, nested=True)

    def _collection(self, kong, method, entity, query, body, base_path, parent, forced):
        if method == "GET":
            return 200, kong.list(entity, query, base_path, parent)
        if method == "POST":
            if not isinstance(body, dict):
                raise schema_violation({"@entity": ["expected a JSON object"]})
            return 201, kong.write(entity, body, forced=forced)
        raise KongError(405, {"message": "Method not allowed"})

    def _item(self, kong, method, entity, key, obj, body, forced, nested):
        if method == "GET":
            if obj is None:
                raise not_found()
            return 200, obj
        if method == "DELETE":
            if obj is None:
                if nested:
                    raise not_found()
                return 204, None
            kong.delete(entity, obj)
            return 204, None
        if method in ("PUT", "PATCH"):
            if not isinstance(body, dict):
                raise schema_violation({"@entity": ["expected a JSON object"]})
            if method == "PATCH":
                if obj is None:
                    raise not_found()
                return 200, kong.write(entity, body, existing_id=obj["id"], forced=forced, keep=obj)
            if UUID_RE.match(key):
                if body.get("id") and body["id"].lower() != key.lower():
                    raise schema_violation({"id": "the id in the path and in the body differ"})
                return 200, kong.write(entity, body, existing_id=key, forced=forced)
            existing = obj["id"] if obj else None
            return 200, kong.write(entity, body, existing_id=existing, endpoint_key=key, forced=forced)
        raise KongError(405, {"message": "Method not allowed"})

    def _control(self, method, path, body):
        server = self.server
        if path == "/__fake/faults" and method == "POST":
            unknown = server.faults.set(body or {})
            if unknown:
                return self._send(400, {"message": "unknown fault " + unknown})
            return self._send(200, vars(server.faults))
        if path == "/__fake/stats" and method == "GET":
            with server.stats_lock:
                stats = vars(server.stats)
                return self._send(200, dict(stats, contract_checked=server.contract.available,
                                            objects={k: len(v) for k, v in server.kong.store.items()}))
        if path == "/__fake/created" and method == "GET":
            with server.kong.lock:
                return self._send(200, server.kong.created_ms)
        if path == "/__fake/reset" and method == "POST":
            with server.kong.lock:
                server.kong.reset()
            with server.stats_lock:
                server.stats = Stats()
            server.faults = Faults()
            return self._send(200, {})
        return self._send(404, {"message": "Not found"})



class FakeServer(fake_server.BaseServer):
    def __init__(self, port, dbless=False, verbose=False, spec_dir=None, path_prefix="",
                 required_header="", tls=None):
        super().__init__(port, Handler, tls=tls, verbose=verbose)
        self.path_prefix = path_prefix.rstrip("/")
        self.required_header = required_header
        self.kong = Kong(dbless=dbless)
        self.faults = Faults()
        self.stats = Stats()
        self.writing = {}  # path -> writes to it in progress
        self.contract = kong_contract.Contract(spec_dir)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    fake_server.add_common_arguments(parser, "Admin API")
    parser.add_argument("--dbless", action="store_true")
    parser.add_argument("--spec-dir", default=os.environ.get("GATEWAY_SPECS"),
                        help="folder with kong-admin-oss-openapi.yaml (default: ../shared/specs)")
    args = parser.parse_args()
    server = FakeServer(args.port, dbless=args.dbless, verbose=args.verbose, spec_dir=args.spec_dir,
                        path_prefix=args.path_prefix, required_header=args.require_header,
                        tls=fake_server.tls_from_args(args))
    if not server.contract.available:
        print("kong-fake: contract check skipped: %s not found" % server.contract.spec_dir, flush=True)
    fake_server.serve(server, args, "kong-fake")


if __name__ == "__main__":
    main()
