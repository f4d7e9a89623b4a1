#!/usr/bin/env python3
"""A stateful fake of the Temporal frontend's HTTP API (its operator part) for pg_gateway's tests.

It behaves as ../shared/DESIGN.md section 3 says Temporal does (where the OpenAPI document
differs, DESIGN wins):

  POST   /cluster/nexus/endpoints               {"spec": {...}} -> 200 {"endpoint": {...}}
  GET    /cluster/nexus/endpoints/{id}          -> 200 {"endpoint": {...}}; 404 code 5
  POST   /cluster/nexus/endpoints/{id}/update   {"version": "N", "spec": {...}} -> 200 {"endpoint"}
  DELETE /cluster/nexus/endpoints/{id}?version=N -> 200 {}
  GET    /cluster/nexus/endpoints?pageSize=&nextPageToken=&name= -> {"endpoints", "nextPageToken"}
  GET    /api/v1/namespaces/{ns}, /cluster/namespaces/{ns} -> DescribeNamespace; 404 code 5
and the endpoint routes again under /api/v1/nexus/endpoints, as the document binds them.
DescribeNamespace is bound to those two paths only: GET /namespaces/{ns} is not served (with the
document it is a contract violation, without it grpc-gateway's 404 code 5 "Not Found").

Endpoints: a server-generated id (UUID), version "1" (int64 as a string) counting up with each
update, createdTime, lastModifiedTime only after an update, urlPrefix /nexus/endpoints/{id}.
Rules (temporal_model.py): name ^[a-zA-Z][a-zA-Z0-9-]*[a-zA-Z0-9]$, at most 200 characters
(400 code 3), unique (409 code 6); target worker{namespace, taskQueue} or external{url}; a worker
namespace that does not exist is 400 code 9 (failed precondition); the description is a Payload
of at most 20,000 bytes; unknown fields anywhere in a body are 400 code 3 (strict unmarshal);
update and delete need the current version (else 400 code 9), delete a version > 0 (else 400
code 3). Answers are proto3 JSON: empty fields left out (an empty list is {}), a full page
always carries nextPageToken (so the last page may be empty), tokens are base64 with '+' and
'/' in them (a client must URL-encode them). Errors are {"code", "message", "details"} with
grpc-gateway's HTTP status for the code (400: 3 and 9, 401: 16, 403: 7, 404: 5, 409: 6,
429: 8, 500: 13, 501: 12, 503: 14, 504: 4).

The description's Payload JSON ("shorthand"): a JSON value that is not a full payload object is
a json/plain payload of that value, and a json/plain payload is written back as the value; the
full form {"metadata": {"encoding": "<base64>", ...}, "data": "<base64>"} is accepted and kept.
This is the rule of go.temporal.io/api common/v1/payload_json.go (internal/temporalcommonv1),
which the frontend's HTTP marshaler uses with shorthand on unless ?noPayloadShorthand is given;
its details are in temporal_model.py. So a client that sends and reads the description as a
JSON string sees the same string back.

Eventual consistency: lists show the registry as it was list_lag_ms ago (a just-created endpoint
may be missing, a just-deleted one still listed); GET by id is immediate.

Every request is checked against ../shared/specs/temporal-openapiv2.json (temporal_contract.py);
a request the documented API does not have is answered 400 code 3 and recorded as a contract
violation in GET /__fake/stats.

Fault and test controls, under /__fake/ (never part of Temporal's API; no auth header needed):
  POST   /__fake/faults  {"error_rate": 0.3, "error_status": 503, "latency_ms": 50, "down": true,
                          "rate_limit": true, "close_connections": true, "error_body": "cut",
                          "error_path": "/cluster/nexus/endpoints", "list_lag_ms": 2000}
         error_status: the HTTP status of injected errors; the body carries the matching gRPC
           code (503 -> 14, 504 -> 4, 500 -> 13, 429 -> 8, 403 -> 7, 401 -> 16, 400 -> 3, ...)
         down: connections end without an answer;  rate_limit: 429 code 8 with Retry-After: 1
         close_connections: every answer says Connection: close and the socket is closed
         error_body: a hostile body instead of the error JSON: utf8_split, invalid_utf8, nul,
           huge (20 MB), not_json, cut (half the body, then the socket closes)
         error_path: only requests whose path or JSON body contains this get errors
         list_lag_ms: how far behind writes the list is
         page_size_max: pages hold at most this many endpoints (pagination with few endpoints)
         error_status 200 with error_body: a hostile body in a "successful" answer
  GET    /__fake/stats      requests, reads, writes (creates/updates/deletes that changed
                            something), by_method, contract_violations (with the problems),
                            duplicate_creates, version_conflicts, unauthenticated (401s),
                            tls_refused, overlapping_writes (two writes to one endpoint at once)
  GET    /__fake/endpoints  the whole registry, now (no lag): {"endpoints": [...]}
  POST   /__fake/endpoints  {"spec": {...}, "id"?: "...", "version"?: N} inserts an endpoint
                            directly (the namespace need not exist), e.g. one we do not own
  POST   /__fake/namespaces {"name": "..."};  DELETE /__fake/namespaces/{name};
  GET    /__fake/namespaces
  POST   /__fake/reset      back to the start: no endpoints, the start namespaces, no faults,
                            counters zero

Options: --namespaces a,b (default "default"), --path-prefix /temporal (the API under a prefix,
404 code 5 outside it), --require-header "Authorization: Bearer xyz" (every API request without
it is 401 code 16), --tls-cert/--tls-key/--tls-client-ca (https only; mutual TLS), --port,
--port-file, --parent-pid, --max-seconds, --spec-dir, --verbose.

Nexus calls (nexus_model.py keeps their state; DESIGN section 3 "Nexus calls", nexus-rpc-SPEC.md):
  POST /nexus/endpoints/{id}/services/{service}/{operation}[?callback=<url>]   start
  POST /nexus/endpoints/{id}/services/{service}/{operation}/cancel             cancel (token in the
       Nexus-Operation-Token header or ?token=) -> 202, empty body
on the same port, under --path-prefix and --require-header like the rest, no /api/v1. Service and
operation are URL-escaped path segments. Unknown endpoint id: 404 "nexus endpoint not found"; a
worker target whose namespace is missing: 404 retryable. What a start does is the behaviour the
test registered (POST /__fake/nexus/handlers); with none, 404 NOT_FOUND 'operation "s/o" is not
registered'. Handler errors are {"message","metadata":{"type":"nexus.HandlerError"},
"details":{"type"[,"retryableOverride"]}} (v1.31+). Starts are deduplicated by Nexus-Request-Id
per (endpoint, service, operation). A callback URL must be http(s) on 127.0.0.1/localhost/::1 and
match callback_allowed (else 400 "callback URL not allowed"). Request-Timeout and
Operation-Timeout must match \d+(\.\d+)?(ms|s|m), a cancel needs a token, service and operation
must not be empty, a JSON body must parse: else 400 BAD_REQUEST and a recorded contract
violation. The fault switches apply (injected errors in the handler-error shape). Controls:
  POST   /__fake/nexus/handlers {"service": s|"*", "operation": o|"*", "behaviour": {...}}
         -> {"handlers": [{"service","operation","behaviour"}]}; most specific match wins
         (s/o, then s/*, then */o, then */*). Behaviours:
           {"kind":"sync","result":<json>}   200, result (null: empty body, no Content-Type)
           {"kind":"async","delay_ms":N,"outcome":"succeeded"|"failed"|"canceled","result":..,
            "failure":{..}}                  201 {"token","state":"running"} + Nexus-Link; completes
                                             after delay_ms and calls the callback back
           {"kind":"failure","state":"failed"|"canceled","failure":{..}}   424
           {"kind":"handler_error","status":N,"type":"INTERNAL","message":"..","retryable":bool|null}
           {"kind":"no_worker"}              520 upstream timeout after min(Request-Timeout, 60 s)
                                             - 1 s, at most no_worker_wait_ms
           {"kind":"echo"}                   200 {"input": body, "headers": {lower-cased
                                             pg-gateway-*, authorization, nexus-request-id,
                                             request-timeout, operation-timeout}}
  GET    /__fake/nexus/handlers;  DELETE /__fake/nexus/handlers (clears them)
  GET    /__fake/nexus/operations  {"operations": [{request_id, endpoint_id, service, operation,
         kind, token, state, callback_url, cancel_requested, delivered, deliveries: [{at, status,
         error}], duplicate_starts, start_time, close_time, headers (secrets "[redacted]"),
         callback_headers (names, prefix stripped)}]}
  POST   /__fake/faults also takes no_worker_wait_ms (1000), callback_retry_base_ms (200: the
         first retry of a failed delivery; doubling to 10 s) and callback_allowed
         (["127.0.0.1:*", "localhost:*"], host:port glob patterns)
  GET    /__fake/stats also has nexus_starts, nexus_duplicate_starts, nexus_operations,
         nexus_duplicate_operations (always 0 unless the fake is wrong), nexus_cancels,
         nexus_canceled_operations, nexus_running, callbacks_delivered, callbacks_failed_attempts,
         callbacks_pending
  POST   /__fake/reset also forgets handlers, operations and pending deliveries

Standard library only; binds to 127.0.0.1; exits by itself when its parent process dies or after
--max-seconds.
"""
import argparse
import base64
import json
import os
import random
import re
import sys
import time
import uuid
from urllib.parse import parse_qs, unquote, urlsplit

import fake_server
import nexus_model
import temporal_contract
from temporal_model import (CODE_NAMES, GRPC_CODE, Registry, TemporalError, decode_spec, int64_field,
                            invalid, method_not_allowed, route_not_found, strict_fields)


class Faults(fake_server.Faults):
    def __init__(self):
        super().__init__()
        self.list_lag_ms = 0
        self.page_size_max = 0  # > 0: pages are at most this long, whatever pageSize asks
        # Nexus controls (they live here so /__fake/faults sets them and /__fake/reset restores them).
        self.no_worker_wait_ms = 1000   # caps the wait of a no_worker answer
        self.callback_retry_base_ms = 200
        self.callback_allowed = ["127.0.0.1:*", "localhost:*"]  # callback.allowedAddresses


class Stats:
    def __init__(self):
        self.requests = 0
        self.reads = 0
        self.writes = 0
        self.by_method = {}
        self.contract_violations = []
        self.duplicate_creates = 0
        self.version_conflicts = 0
        self.unauthenticated = 0
        self.tls_refused = 0
        self.overlapping_writes = 0
        self.injected_errors = 0


# The operator API's routes, after the path prefix is taken off: (regex, {method: handler name}).
# Both bindings of each RPC are served. The Nexus calls (/nexus/...) are routed before these, by
# Handler._nexus, since their segments must be split before they are decoded.
_ENDPOINTS = ("/cluster/nexus/endpoints", "/api/v1/nexus/endpoints")
ROUTES = []
for _base in _ENDPOINTS:
    ROUTES += [
        (re.compile("^" + _base + "$"), {"GET": "list_endpoints", "POST": "create_endpoint"}),
        (re.compile("^" + _base + "/(?P<id>[^/]+)$"), {"GET": "get_endpoint", "DELETE": "delete_endpoint"}),
        (re.compile("^" + _base + "/(?P<id>[^/]+)/update$"), {"POST": "update_endpoint"}),
    ]
ROUTES += [(re.compile("^/(?:api/v1|cluster)/namespaces/(?P<namespace>[^/]+)$"), {"GET": "describe_namespace"})]


def injected_error(status):
    code = GRPC_CODE.get(status, 2)
    return {"code": code, "message": "injected fault: %s" % CODE_NAMES.get(code, "unknown"), "details": []}


class Handler(fake_server.BaseHandler):
    name = "temporal-fake"
    server_version = "temporal-fake/1.28"

    def _error(self, error, headers=None):
        self.send_json(error.status, error.body(), headers)

    def _handle(self, method):
        server = self.server
        raw = self.read_raw_body()
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        if path.startswith("/__fake/"):
            return self._control(method, path, raw)
        prefix = server.path_prefix
        if prefix:
            if path != prefix and not path.startswith(prefix + "/"):
                return self._error(route_not_found())
            path = path[len(prefix):] or "/"
        if not self.header_matches(server.required_header):
            with server.stats_lock:
                server.stats.unauthenticated += 1
            if path == "/nexus" or path.startswith("/nexus/"):
                return self.send_answer(nexus_model.handler_error(401, "Request unauthenticated."))
            return self._error(TemporalError(16, "Request unauthenticated."))
        if server.faults.down:
            return self.hang_up()
        if path == "/nexus" or path.startswith("/nexus/"):
            # The path as sent (a trailing slash is an empty operation name, not nothing).
            return self._nexus(method, url.path[len(prefix):] if prefix else url.path,
                               parse_qs(url.query, keep_blank_values=True), raw)
        try:
            body = json.loads(raw) if raw else None
        except ValueError as e:
            return self._error(invalid("proto: syntax error (line 1:1): %s" % e))
        # grpc-gateway reads the query with url.ParseQuery: '+' is a space, as here.
        query = parse_qs(url.query, keep_blank_values=True)
        key = self._write_key(method, path, body)
        if key is None:
            return self._serve(method, path, query, body, raw)
        with server.stats_lock:
            if server.writing.get(key):
                server.stats.overlapping_writes += 1
            server.writing[key] = server.writing.get(key, 0) + 1
        try:
            return self._serve(method, path, query, body, raw)
        finally:
            with server.stats_lock:
                server.writing[key] -= 1
                if not server.writing[key]:
                    del server.writing[key]

    @staticmethod
    def _write_key(method, path, body):
        """What a write touches (an endpoint id, or the name a create claims); None for reads."""
        if method == "GET":
            return None
        m = re.match(r"^/(?:cluster|api/v1)/nexus/endpoints/([^/]+)(?:/update)?$", path)
        if m:
            return "id:" + unquote(m.group(1))
        if isinstance(body, dict) and isinstance(body.get("spec"), dict):
            return "name:%s" % body["spec"].get("name")
        return None

    def _faulted(self, method, path, raw, nexus=False):
        """Applies the fault switches (latency, rate limit, injected errors) and counts the
        request; True when a fault already answered it. Nexus routes get their errors in the
        handler-error shape, the operator API in the gRPC-status shape."""
        server = self.server
        faults = server.faults
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000.0)
        with server.stats_lock:
            server.stats.requests += 1
            server.stats.by_method[method] = server.stats.by_method.get(method, 0) + 1
        if faults.rate_limit:
            if nexus:
                self.send_answer(nexus_model.handler_error(429, "namespace rate limit exceeded"),
                                 [("Retry-After", "1")])
            else:
                self.send_json(429, {"code": 8, "message": "namespace rate limit exceeded", "details": []},
                               {"Retry-After": "1"})
            return True
        if (faults.error_rate and random.random() < faults.error_rate
                and (not faults.error_path or faults.error_path in path
                     or faults.error_path in raw.decode("utf-8", "replace"))):
            with server.stats_lock:
                server.stats.injected_errors += 1
            if faults.error_body:
                self.send_hostile(faults.error_status, faults.error_body)
            elif nexus:
                status = faults.error_status
                self.send_answer(nexus_model.handler_error(
                    status, "injected fault: %s" % nexus_model.HANDLER_TYPES.get(status, "INTERNAL").lower()))
            else:
                self.send_json(faults.error_status, injected_error(faults.error_status))
            return True
        return False

    def _violation(self, method, path, problems):
        with self.server.stats_lock:
            self.server.stats.contract_violations.append({"method": method, "path": path, "problems": problems})
        sys.stderr.write("temporal-fake: CONTRACT VIOLATION %s %s: %s\n" % (method, path, "; ".join(problems)))

    def _serve(self, method, path, query, body, raw):
        server = self.server
        if self._faulted(method, path, raw):
            return
        problems = server.contract.check(method, path, query, body, bool(raw))
        if problems:
            self._violation(method, path, problems)
            return self._error(invalid("request not accepted by the Temporal HTTP API document: "
                                       + "; ".join(problems)))
        for regex, methods in ROUTES:
            m = regex.match(path)
            if m:
                break
        else:
            return self._error(route_not_found())
        handler = methods.get(method)
        if handler is None:
            return self._error(method_not_allowed())
        params = {k: unquote(v) for k, v in m.groupdict().items()}
        shorthand = "noPayloadShorthand" not in query
        registry = server.registry
        with registry.lock:
            try:
                out, changed = getattr(self, handler)(registry, params, query, body, shorthand)
            except TemporalError as e:
                with server.stats_lock:
                    if e.code == 6 and handler == "create_endpoint":
                        server.stats.duplicate_creates += 1
                    if e.code == 9 and handler in ("update_endpoint", "delete_endpoint"):
                        server.stats.version_conflicts += 1
                    if method == "GET":
                        server.stats.reads += 1
                return self._error(e)
        with server.stats_lock:
            if changed:
                server.stats.writes += 1
            if method == "GET":
                server.stats.reads += 1
        self.send_json(200, out)

    # -- Nexus calls (nexus_model.py keeps the state) ------------------------------------------------
    def send_answer(self, answer, extra_headers=()):
        """A nexus_model.Answer in one write (Content-Type as the answer says, no charset)."""
        self.send_response(answer.status)
        if self.server.faults.close_connections:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in list(answer.headers) + list(extra_headers):
            self.send_header(name, value)
        self.end_headers()
        if answer.body:
            self.wfile.write(answer.body)

    def _nexus(self, method, path, query, raw):
        """POST /nexus/endpoints/{id}/services/{service}/{operation}[/cancel]. The path is still
        percent-encoded: segments are split first, then decoded, so a service or operation may
        hold any character."""
        server = self.server
        if self._faulted(method, path, raw, nexus=True):
            return
        parts = path.split("/")
        cancel = len(parts) == 8 and parts[7] == "cancel"
        if len(parts) not in (7, 8) or parts[2] != "endpoints" or parts[4] != "services" or \
                (len(parts) == 8 and not cancel):
            self._violation(method, path, ["path %s is not a Nexus start or cancel (nexus-rpc-SPEC.md)" % path])
            return self.send_answer(nexus_model.handler_error(404, "not found"))
        endpoint_id, service, operation = unquote(parts[3]), unquote(parts[5]), unquote(parts[6])
        if method != "POST":
            self._violation(method, path, ["Nexus calls are POST, not %s" % method])
            return self.send_answer(nexus_model.handler_error(405, "method not allowed", "NOT_IMPLEMENTED"))
        headers = list(self.headers.items())
        problems = []
        if not service:
            problems.append("the service name is empty")
        if not operation:
            problems.append("the operation name is empty")
        timeouts = {}
        for name in ("Request-Timeout", "Operation-Timeout"):
            value = self.headers.get(name)
            if value is not None:
                timeouts[name] = nexus_model.parse_timeout(value.strip())
                if timeouts[name] is None:
                    problems.append("%s %r does not match %s" % (name, value, nexus_model.TIMEOUT_RE.pattern))
        token = self.headers.get("Nexus-Operation-Token") or (query.get("token") or [None])[-1]
        body = None
        if cancel:
            if not token:
                problems.append("cancel without Nexus-Operation-Token (header or token query parameter)")
        else:
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if raw and (ctype == "application/json" or ctype.endswith("+json")):
                try:
                    body = json.loads(raw)
                except ValueError as e:
                    problems.append("the body is not the JSON its Content-Type says: %s" % e)
            elif raw:
                body = raw.decode("utf-8", "replace")
        if problems:
            self._violation(method, path, problems)
            return self.send_answer(nexus_model.handler_error(400, "; ".join(problems)))
        registry = server.registry
        with registry.lock:
            endpoint = registry.endpoints.get(endpoint_id)
            target = endpoint["spec"].get("target", {}) if endpoint else {}
            namespace = target.get("worker", {}).get("namespace")
            namespace_missing = namespace is not None and namespace not in registry.namespaces
        if endpoint is None:
            return self.send_answer(nexus_model.handler_error(404, "nexus endpoint not found"))
        if namespace_missing:
            # From v1.30 a target namespace that is gone is retryable: it may come back.
            return self.send_answer(nexus_model.handler_error(
                404, "namespace not found: %s" % json.dumps(namespace), retryable=True))
        nexus = server.nexus
        if cancel:
            return self.send_answer(nexus.cancel(token))
        callback = (query.get("callback") or [None])[-1] or None
        if callback is not None and not nexus_model.callback_allowed(callback, server.faults.callback_allowed):
            return self.send_answer(nexus_model.handler_error(400, "callback URL not allowed"))
        request_id = self.headers.get("Nexus-Request-Id") or str(uuid.uuid4())
        self.send_answer(nexus.start(endpoint_id, namespace, service, operation, request_id, headers, body,
                                     callback, timeouts.get("Request-Timeout")))

    # -- the operator API (each returns (answer, whether it changed the registry)) -------------
    @staticmethod
    def _one(query, name):
        values = query.get(name)
        return values[-1] if values else None

    def list_endpoints(self, registry, params, query, body, shorthand):
        page_size = self._one(query, "pageSize")
        try:
            page_size = int(page_size) if page_size not in (None, "") else 0
        except ValueError:
            raise invalid('type mismatch, parameter: page_size, error: strconv.ParseInt: parsing %s: '
                          'invalid syntax' % json.dumps(page_size))
        token = self._one(query, "nextPageToken")
        raw_token = None
        if token:
            raw_token = _decode_bytes(token)
            if raw_token is None:
                raise invalid("type mismatch, parameter: next_page_token, error: illegal base64 data")
        cap = int(self.server.faults.page_size_max)
        if cap > 0:
            page_size = min(page_size or cap, cap)
        page, next_token = registry.list(page_size, raw_token, self._one(query, "name") or "",
                                         self.server.faults.list_lag_ms)
        out = {}
        if page:
            out["endpoints"] = [registry.render(e, shorthand) for e in page]
        if next_token:
            out["nextPageToken"] = base64.b64encode(next_token).decode()
        return out, False

    def create_endpoint(self, registry, params, query, body, shorthand):
        fields = strict_fields(body, ("spec",), "request")
        spec = decode_spec(fields.get("spec"))
        if fields.get("spec") is None:
            raise invalid("Nexus endpoint spec not set")
        return {"endpoint": registry.render(registry.create(spec), shorthand)}, True

    def get_endpoint(self, registry, params, query, body, shorthand):
        return {"endpoint": registry.render(registry.get(params["id"]), shorthand)}, False

    def update_endpoint(self, registry, params, query, body, shorthand):
        # The body binds to the whole request; the path's id wins over one in the body.
        fields = strict_fields(body, ("id", "version", "spec"), "request")
        version = int64_field(fields.get("version"), "version")
        spec = decode_spec(fields.get("spec"))
        if fields.get("spec") is None:
            raise invalid("Nexus endpoint spec not set")
        return {"endpoint": registry.render(registry.update(params["id"], version, spec), shorthand)}, True

    def delete_endpoint(self, registry, params, query, body, shorthand):
        version = self._one(query, "version")
        try:
            version = int(version) if version not in (None, "") else 0
        except ValueError:
            raise invalid('type mismatch, parameter: version, error: strconv.ParseInt: parsing %s: '
                          'invalid syntax' % json.dumps(version))
        registry.delete(params["id"], version)
        return {}, True

    def describe_namespace(self, registry, params, query, body, shorthand):
        return registry.describe_namespace(params["namespace"]), False

    # -- controls ---------------------------------------------------------------------------------
    def _control(self, method, path, raw):
        server = self.server
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return self.send_json(400, {"message": "control bodies are JSON"})
        registry = server.registry
        if path == "/__fake/faults" and method == "POST":
            if not isinstance(body, dict):
                return self.send_json(400, {"message": "expected a JSON object"})
            kind = body.get("error_body")
            if kind is not None and kind not in fake_server.HOSTILE_KINDS:
                return self.send_json(400, {"message": "error_body is one of " + ", ".join(fake_server.HOSTILE_KINDS)})
            status = body.get("error_status", 503)
            # 200 too: a hostile body in a "successful" answer.
            if isinstance(status, bool) or not isinstance(status, int) or not (status == 200 or 400 <= status <= 599):
                return self.send_json(400, {"message": "error_status is 200 or an HTTP status from 400 to 599"})
            for number in ("error_rate", "latency_ms", "list_lag_ms", "page_size_max", "no_worker_wait_ms",
                           "callback_retry_base_ms"):
                value = body.get(number, 0)
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    return self.send_json(400, {"message": number + " is a number >= 0"})
            allowed = body.get("callback_allowed", [])
            if not isinstance(allowed, list) or not all(isinstance(p, str) for p in allowed):
                return self.send_json(400, {"message": "callback_allowed is a list of host:port patterns"})
            unknown = server.faults.set(body)
            if unknown:
                return self.send_json(400, {"message": "unknown fault " + unknown})
            return self.send_json(200, vars(server.faults))
        if path == "/__fake/stats" and method == "GET":
            with registry.lock:
                counts = {"endpoints": len(registry.endpoints), "namespaces": len(registry.namespaces)}
            nexus = server.nexus.stats()
            with server.stats_lock:
                return self.send_json(200, dict(vars(server.stats), contract_checked=server.contract.available,
                                                objects=counts, **nexus))
        if path == "/__fake/nexus/handlers" and method == "POST":
            if not isinstance(body, dict) or set(body) - {"service", "operation", "behaviour"}:
                return self.send_json(400, {"message": 'expected {"service", "operation", "behaviour"}'})
            service, operation = body.get("service", "*"), body.get("operation", "*")
            if not isinstance(service, str) or not service or not isinstance(operation, str) or not operation:
                return self.send_json(400, {"message": 'service and operation are non-empty strings ("*": any)'})
            problem = nexus_model.validate_behaviour(body.get("behaviour"))
            if problem:
                return self.send_json(400, {"message": problem})
            return self.send_json(200, {"handlers": server.nexus.set_handler(service, operation, body["behaviour"])})
        if path == "/__fake/nexus/handlers" and method == "GET":
            return self.send_json(200, {"handlers": server.nexus.handler_list()})
        if path == "/__fake/nexus/handlers" and method == "DELETE":
            server.nexus.clear_handlers()
            return self.send_json(200, {"handlers": []})
        if path == "/__fake/nexus/operations" and method == "GET":
            return self.send_json(200, {"operations": server.nexus.operations()})
        if path == "/__fake/endpoints" and method == "GET":
            with registry.lock:
                return self.send_json(200, {"endpoints": [registry.render(registry.endpoints[i])
                                                          for i in registry.order]})
        if path == "/__fake/endpoints" and method == "POST":
            with registry.lock:
                try:
                    fields = strict_fields(body, ("spec", "id", "version"), "request")
                    endpoint = registry.create(decode_spec(fields.get("spec")), endpoint_id=fields.get("id"),
                                               version=int64_field(fields.get("version"), "version") or 1,
                                               check_namespace=False)
                except TemporalError as e:
                    return self._error(e)
                return self.send_json(200, {"endpoint": registry.render(endpoint)})
        if path == "/__fake/namespaces" and method == "POST":
            name = body.get("name") if isinstance(body, dict) else None
            if not isinstance(name, str) or not name:
                return self.send_json(400, {"message": "expected {\"name\": \"...\"}"})
            with registry.lock:
                registry.add_namespace(name)
                return self.send_json(200, {"namespaces": sorted(registry.namespaces)})
        if path.startswith("/__fake/namespaces/") and method == "DELETE":
            with registry.lock:
                gone = registry.remove_namespace(unquote(path[len("/__fake/namespaces/"):]))
                return self.send_json(200 if gone else 404, {"namespaces": sorted(registry.namespaces)})
        if path == "/__fake/namespaces" and method == "GET":
            with registry.lock:
                return self.send_json(200, {"namespaces": sorted(registry.namespaces)})
        if path == "/__fake/reset" and method == "POST":
            with registry.lock:
                registry.reset()
            with server.stats_lock:
                server.stats = Stats()
            server.faults = Faults()
            server.nexus.reset()
            return self.send_json(200, {})
        return self.send_json(404, {"message": "Not found"})


def _decode_bytes(text):
    """A bytes query parameter as grpc-gateway reads it: std base64, else URL-safe base64."""
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            return decode(text.encode("ascii"), **({"validate": True} if decode is base64.b64decode else {}))
        except (ValueError, TypeError, UnicodeEncodeError):
            continue
    return None


class FakeServer(fake_server.BaseServer):
    def __init__(self, port, namespaces=("default",), verbose=False, spec_dir=None, path_prefix="",
                 required_header="", tls=None):
        super().__init__(port, Handler, tls=tls, verbose=verbose)
        self.path_prefix = path_prefix.rstrip("/")
        self.required_header = required_header
        self.registry = Registry(namespaces)
        self.faults = Faults()
        self.stats = Stats()
        self.writing = {}  # endpoint id or claimed name -> writes to it in progress
        self.contract = temporal_contract.Contract(spec_dir)
        self.nexus = nexus_model.Nexus(lambda: self.faults)

    def shutdown(self):
        self.nexus.stop()  # pending deliveries end with the fake
        super().shutdown()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    fake_server.add_common_arguments(parser, "HTTP API")
    parser.add_argument("--namespaces", default="default", help="namespaces that exist at the start (a,b)")
    parser.add_argument("--spec-dir", default=os.environ.get("GATEWAY_SPECS"),
                        help="folder with temporal-openapiv2.json (default: ../shared/specs)")
    args = parser.parse_args()
    namespaces = [n for n in args.namespaces.split(",") if n]
    server = FakeServer(args.port, namespaces=namespaces, verbose=args.verbose, spec_dir=args.spec_dir,
                        path_prefix=args.path_prefix, required_header=args.require_header,
                        tls=fake_server.tls_from_args(args))
    if not server.contract.available:
        print("temporal-fake: contract check skipped: %s not found" % server.contract.spec_dir, flush=True)
    fake_server.serve(server, args, "temporal-fake")


if __name__ == "__main__":
    main()
