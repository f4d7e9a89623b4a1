"""The Nexus side of the Temporal fake: the handler behaviours a test registers, the operations
started through POST /nexus/endpoints/{id}/services/{service}/{operation} (deduplicated by
Nexus-Request-Id), cancels, and the delivery of completions to callback URLs.

What it mimics (../shared/DESIGN.md section 3 "Nexus calls", nexus-rpc-SPEC.md): sync answers are
200 with the result and no Nexus-Operation-State; async ones 201 {"token","state":"running"} with
a Nexus-Link; 424 carries Nexus-Operation-State and a Failure; handler errors have the v1.31+ body
{"message","metadata":{"type":"nexus.HandlerError"},"details":{"type"[,"retryableOverride"]}} and
Nexus-Request-Retryable only when retryability was set; no worker is 520 "upstream timeout".
A repeated start with one request id returns the first answer and starts nothing (the SDK's
workflow-run handler uses the id as the workflow's start request id).

Completions go out from a pool of delivery threads fed by a queue, and retries and async
completions wait in one scheduler thread, so no request thread ever waits for a callback.

temporal_fake.py does the HTTP side (routes, faults, contract checks); this module holds the
state. Standard library only.
"""
import base64
import email.utils
import fnmatch
import heapq
import http.client
import itertools
import json
import queue
import re
import ssl
import threading
import time
import uuid
from urllib.parse import quote, urlsplit

HANDLER_TYPES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "UNAUTHORIZED", 404: "NOT_FOUND",
                 408: "REQUEST_TIMEOUT", 409: "CONFLICT", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                 501: "NOT_IMPLEMENTED", 503: "UNAVAILABLE", 520: "UPSTREAM_TIMEOUT"}
TIMEOUT_RE = re.compile(r"^\d+(\.\d+)?(ms|s|m)$")
KINDS = ("sync", "async", "failure", "handler_error", "no_worker", "echo")
BEHAVIOUR_KEYS = {"sync": {"result"}, "async": {"delay_ms", "outcome", "result", "failure"},
                  "failure": {"state", "failure"}, "handler_error": {"status", "type", "message", "retryable"},
                  "no_worker": set(), "echo": set()}
ECHO_HEADERS = ("authorization", "nexus-request-id", "request-timeout", "operation-timeout")
SECRET_HEADER = re.compile(r"authorization|token|secret|password|api-?key", re.I)
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
DELIVERY_THREADS = 4
DELIVERY_TIMEOUT = 10.0       # seconds per attempt, as the server's callback client
RETRY_CAP = 10.0              # seconds (the server goes to 1 h; tests cannot wait that long)
ATTEMPTS_KEPT = 50


class Answer:
    """An HTTP answer: status, headers [(name, value)], body bytes."""

    def __init__(self, status, body=b"", headers=None):
        self.status = status
        self.body = body
        self.headers = list(headers or [])


def json_answer(status, value, headers=None):
    return Answer(status, json.dumps(value).encode(), [("Content-Type", "application/json")] + list(headers or []))


def handler_error(status, message, error_type=None, retryable=None):
    """A handler error as v1.31+ writes it; Nexus-Request-Retryable only when set explicitly."""
    details = {"type": error_type or HANDLER_TYPES.get(status, "INTERNAL")}
    headers = []
    if isinstance(retryable, bool):
        details["retryableOverride"] = retryable
        headers.append(("Nexus-Request-Retryable", "true" if retryable else "false"))
    return json_answer(status, {"message": message, "metadata": {"type": "nexus.HandlerError"},
                                "details": details}, headers)


def parse_timeout(text):
    """Seconds of a Request-Timeout/Operation-Timeout value, or None when malformed."""
    if not TIMEOUT_RE.match(text):
        return None
    unit = re.search(r"(ms|s|m)$", text).group(1)
    return float(text[:-len(unit)]) * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]


def operation_failure(state, given=None):
    """A Failure for a failed or canceled operation; what the behaviour gave, plus what is missing:
    metadata nexus.OperationError, details.state, and for canceled details.canceledFailureInfo."""
    failure = dict(given) if isinstance(given, dict) else {}
    failure.setdefault("message", "operation canceled" if state == "canceled" else "operation failed")
    failure.setdefault("metadata", {"type": "nexus.OperationError"})
    details = failure.get("details")
    if details is None:
        details = {}
    if isinstance(details, dict):
        details = dict(details)
        details.setdefault("state", state)
        if state == "canceled":
            details.setdefault("canceledFailureInfo", {})
        failure["details"] = details
    return failure


def validate_behaviour(b):
    """None when the behaviour is usable, else why not."""
    if not isinstance(b, dict):
        return "behaviour is an object"
    kind = b.get("kind")
    if kind not in KINDS:
        return "behaviour.kind is one of " + ", ".join(KINDS)
    extra = set(b) - BEHAVIOUR_KEYS[kind] - {"kind"}
    if extra:
        return "unknown keys for kind %s: %s" % (kind, ", ".join(sorted(extra)))
    if kind == "async":
        delay = b.get("delay_ms", 0)
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
            return "delay_ms is a number >= 0"
        if b.get("outcome", "succeeded") not in ("succeeded", "failed", "canceled"):
            return "outcome is succeeded, failed or canceled"
    if kind == "failure" and b.get("state", "failed") not in ("failed", "canceled"):
        return "state is failed or canceled"
    if kind in ("async", "failure") and b.get("failure") is not None and not isinstance(b["failure"], dict):
        return "failure is an object (a Nexus Failure)"
    if kind == "handler_error":
        status = b.get("status", 500)
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            return "status is an HTTP status from 400 to 599"
        if b.get("retryable") is not None and not isinstance(b["retryable"], bool):
            return "retryable is true, false or null"
        for key in ("type", "message"):
            if b.get(key) is not None and not isinstance(b[key], str):
                return key + " is a string"
    return None


def callback_allowed(url, patterns):
    """Whether the server would call this URL back: http(s), a local host (the fake calls only
    these), and host:port matching one of the patterns (callback.allowedAddresses)."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or parts.hostname not in LOCAL_HOSTS:
        return False
    address = "%s:%d" % (parts.hostname, port)
    return any(isinstance(p, str) and fnmatch.fnmatchcase(address, p) for p in patterns or ())


def rfc3339_ms(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % (int(t * 1000) % 1000)


class Nexus:
    """Handlers, operations and deliveries. `controls()` returns the fake's current controls
    (an object with no_worker_wait_ms, callback_retry_base_ms, callback_allowed)."""

    def __init__(self, controls):
        self.controls = controls
        self.lock = threading.Lock()
        self.generation = 0          # bumped by reset: deliveries of an older one are dropped
        self._seq = itertools.count()
        self._timers = []            # heap of (due, seq, generation, token, what)
        self._wake = threading.Condition(self.lock)
        self._jobs = queue.Queue()
        self._stopped = False
        self._local = threading.local()   # each delivery thread's kept-alive connections
        self.reset()
        self._threads = [threading.Thread(target=self._scheduler, daemon=True, name="nexus-scheduler")]
        self._threads += [threading.Thread(target=self._deliverer, daemon=True, name="nexus-delivery-%d" % i)
                          for i in range(DELIVERY_THREADS)]
        for t in self._threads:
            t.start()

    def reset(self):
        with self.lock:
            self.generation += 1
            self.handlers = {}       # (service, operation) -> behaviour; "*" matches any
            self.records = {}        # (endpoint_id, service, operation, request_id) -> operation
            self.by_token = {}
            self.order = []          # records in start order
            self.counts = {"nexus_starts": 0, "nexus_duplicate_starts": 0, "nexus_cancels": 0,
                           "nexus_canceled_operations": 0, "callbacks_delivered": 0,
                           "callbacks_failed_attempts": 0}
            self._timers = []

    def stop(self):
        with self.lock:
            self._stopped = True
            self._wake.notify_all()
        for _ in range(DELIVERY_THREADS):
            self._jobs.put(None)

    # -- behaviours --------------------------------------------------------------------------------
    def set_handler(self, service, operation, behaviour):
        with self.lock:
            self.handlers[(service, operation)] = behaviour
            return self._handler_list()

    def clear_handlers(self):
        with self.lock:
            self.handlers = {}

    def handler_list(self):
        with self.lock:
            return self._handler_list()

    def _handler_list(self):
        return [{"service": s, "operation": o, "behaviour": b} for (s, o), b in sorted(self.handlers.items())]

    def _match(self, service, operation):
        # Most specific first: both named, then the service named, then the operation named.
        for key in ((service, operation), (service, "*"), ("*", operation), ("*", "*")):
            if key in self.handlers:
                return self.handlers[key]
        return None

    # -- start ---------------------------------------------------------------------------------------
    def start(self, endpoint_id, namespace, service, operation, request_id, headers, body, callback_url,
              request_timeout):
        """The answer to a start. `headers` are the request's [(name, value)], `body` its parsed
        JSON (None when empty), request_timeout seconds or None."""
        with self.lock:
            self.counts["nexus_starts"] += 1
            key = (endpoint_id, service, operation, request_id)
            record = self.records.get(key)
            if record is not None:
                self.counts["nexus_duplicate_starts"] += 1
                record["duplicate_starts"] += 1
                return record["answer"]
            behaviour = self._match(service, operation)
            kind = behaviour["kind"] if behaviour else None
            if kind is None:
                return handler_error(404, 'operation "%s/%s" is not registered' % (service, operation))
            if kind == "handler_error":
                return handler_error(behaviour.get("status", 500),
                                     behaviour.get("message") or "handler error",
                                     behaviour.get("type"), behaviour.get("retryable"))
            if kind != "no_worker":
                return self._start_operation(key, namespace, behaviour, headers, body, callback_url)
        # No worker polls the task queue: the frontend waits out the request, less a second.
        wait = min(request_timeout if request_timeout is not None else 60.0, 60.0) - 1.0
        wait = max(0.0, min(wait, self.controls().no_worker_wait_ms / 1000.0))
        time.sleep(wait)
        return handler_error(520, "upstream timeout")

    def _start_operation(self, key, namespace, behaviour, headers, body, callback_url):
        endpoint_id, service, operation, request_id = key
        kind = behaviour["kind"]
        now = time.time()
        record = {"request_id": request_id, "endpoint_id": endpoint_id, "service": service,
                  "operation": operation, "kind": kind, "token": None, "state": None,
                  "callback_url": callback_url, "started": 1, "duplicate_starts": 0,
                  "start_time": now, "close_time": None, "cancel_requested": False,
                  "result": None, "failure": None, "links": [], "deliveries": [], "delivered": False,
                  "callback_headers": [(name[len("nexus-callback-"):], value) for name, value in headers
                                       if name.lower().startswith("nexus-callback-")],
                  "headers": [(name, "[redacted]" if SECRET_HEADER.search(name) else value)
                              for name, value in headers],
                  "generation": self.generation}
        if kind == "sync":
            record["state"] = "succeeded"
            record["result"] = behaviour.get("result")
            answer = self._result_answer(200, record["result"])
        elif kind == "echo":
            picked = {}
            for name, value in headers:
                low = name.lower()
                if low.startswith("pg-gateway-") or low in ECHO_HEADERS:
                    picked[low] = value
            record["state"] = "succeeded"
            record["result"] = {"input": body, "headers": picked}
            answer = self._result_answer(200, record["result"])
        elif kind == "failure":
            state = behaviour.get("state", "failed")
            record["state"] = state
            record["failure"] = operation_failure(state, behaviour.get("failure"))
            answer = json_answer(424, record["failure"], [("Nexus-Operation-State", state)])
        else:  # async
            workflow_id = "nexus-" + str(uuid.uuid4())
            run_id = str(uuid.uuid4())
            token_json = json.dumps({"t": 1, "ns": namespace or "", "wid": workflow_id}, separators=(",", ":"))
            token = base64.urlsafe_b64encode(token_json.encode()).decode().rstrip("=")
            link = ("<temporal:///namespaces/%s/workflows/%s/%s/history?referenceType=EventReference"
                    "&eventType=EVENT_TYPE_WORKFLOW_EXECUTION_STARTED>; "
                    'type="temporal.api.common.v1.Link.WorkflowEvent"'
                    % (quote(namespace or "", safe=""), quote(workflow_id, safe=""), run_id))
            record.update(token=token, state="running", links=[link], behaviour=behaviour)
            self.by_token[token] = record
            answer = json_answer(201, {"token": token, "state": "running"}, [("Nexus-Link", link)])
            self._schedule(now + behaviour.get("delay_ms", 0) / 1000.0, token, "complete")
        record["answer"] = answer
        self.records[key] = record
        self.order.append(record)
        return answer

    @staticmethod
    def _result_answer(status, result):
        # A null result is an empty body without a content type, as a nil payload is sent.
        if result is None:
            return Answer(status)
        return json_answer(status, result)

    # -- cancel ----------------------------------------------------------------------------------------
    def cancel(self, token):
        with self.lock:
            record = self.by_token.get(token)
            if record is None:
                return handler_error(404, "operation not found")
            self.counts["nexus_cancels"] += 1
            # Repeated cancels, and cancels of finished operations, are accepted and change nothing.
            if record["state"] == "running" and not record["cancel_requested"]:
                record["cancel_requested"] = True
                self._complete(record, "canceled")
                self.counts["nexus_canceled_operations"] += 1
            return Answer(202)

    # -- completion and delivery (callers hold self.lock) -------------------------------------------------
    def _complete(self, record, state):
        behaviour = record.get("behaviour") or {}
        record["state"] = state
        record["close_time"] = time.time()
        if state == "succeeded":
            record["result"] = behaviour.get("result")
        else:
            record["failure"] = operation_failure(
                state, behaviour.get("failure") if state == behaviour.get("outcome") else None)
        if record["callback_url"]:
            self._jobs.put((record["generation"], record["token"]))

    def _schedule(self, due, token, what):
        heapq.heappush(self._timers, (due, next(self._seq), self.generation, token, what))
        self._wake.notify()

    def _scheduler(self):
        with self.lock:
            while not self._stopped:
                if not self._timers:
                    self._wake.wait()
                    continue
                due = self._timers[0][0]
                now = time.time()
                if due > now:
                    self._wake.wait(due - now)
                    continue
                _, _, generation, token, what = heapq.heappop(self._timers)
                record = self.by_token.get(token)
                if generation != self.generation or record is None:
                    continue
                if what == "complete":
                    if record["state"] == "running":
                        self._complete(record, record["behaviour"].get("outcome", "succeeded"))
                else:  # "deliver": a retry is due
                    self._jobs.put((generation, token))

    def _deliverer(self):
        while True:
            job = self._jobs.get()
            if job is None:
                return
            generation, token = job
            with self.lock:
                record = self.by_token.get(token)
                if self._stopped or generation != self.generation or record is None or record["delivered"]:
                    continue
                request = self._completion_request(record)
            status, error = self._post(*request)
            with self.lock:
                if generation != self.generation:
                    continue
                record["deliveries"].append({"at": rfc3339_ms(time.time()), "status": status, "error": error})
                del record["deliveries"][:-ATTEMPTS_KEPT]
                record["attempts"] = record.get("attempts", 0) + 1
                if status is not None and 200 <= status < 300:
                    record["delivered"] = True
                    self.counts["callbacks_delivered"] += 1
                    continue
                self.counts["callbacks_failed_attempts"] += 1
                base = max(0.0, float(self.controls().callback_retry_base_ms)) / 1000.0
                delay = min(base * 2 ** (record["attempts"] - 1), RETRY_CAP)
                self._schedule(time.time() + delay, token, "deliver")

    @staticmethod
    def _completion_request(record):
        state = record["state"]
        headers = list(record["callback_headers"])
        headers += [("Nexus-Operation-State", state), ("Nexus-Operation-Token", record["token"]),
                    ("Nexus-Operation-Start-Time", email.utils.formatdate(record["start_time"], usegmt=True)),
                    ("Nexus-Operation-Close-Time", rfc3339_ms(record["close_time"]))]
        headers += [("Nexus-Link", link) for link in record["links"]]
        if state == "succeeded":
            body = b"" if record["result"] is None else json.dumps(record["result"]).encode()
        else:
            body = json.dumps(record["failure"]).encode()
        if body:
            headers.append(("Content-Type", "application/json"))
        return record["callback_url"], headers, body

    def _post(self, url, headers, body):
        """(status, None) or (None, transport error) of one delivery attempt. Each delivery thread
        keeps its connections alive per host, as the server's HTTP client does; a kept connection
        the listener has closed meanwhile is replaced once, silently."""
        parts = urlsplit(url)
        try:
            key = (parts.scheme, parts.hostname, parts.port)
        except ValueError as e:
            return None, "ValueError: %s" % e
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        for fresh in (False, True):
            conn = None if fresh else conns.pop(key, None)
            reused = conn is not None
            try:
                if conn is None:
                    if parts.scheme == "https":
                        conn = http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=DELIVERY_TIMEOUT,
                                                           context=ssl._create_unverified_context())
                    else:
                        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=DELIVERY_TIMEOUT)
                conn.putrequest("POST", target)
                for name, value in headers:
                    conn.putheader(name, value)
                conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
                resp = conn.getresponse()
                resp.read()
                if resp.will_close:
                    conn.close()
                else:
                    conns[key] = conn
                return resp.status, None
            except (OSError, http.client.HTTPException, ValueError) as e:
                if conn is not None:
                    conn.close()
                if reused and isinstance(e, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
                    continue
                return None, "%s: %s" % (type(e).__name__, e)
        return None, "unreachable"

    # -- views -------------------------------------------------------------------------------------------
    def operations(self):
        with self.lock:
            out = []
            for r in self.order:
                out.append({"request_id": r["request_id"], "endpoint_id": r["endpoint_id"],
                            "service": r["service"], "operation": r["operation"], "kind": r["kind"],
                            "token": r["token"], "state": r["state"], "callback_url": r["callback_url"],
                            "cancel_requested": r["cancel_requested"], "delivered": r["delivered"],
                            "deliveries": list(r["deliveries"]), "duplicate_starts": r["duplicate_starts"],
                            "start_time": rfc3339_ms(r["start_time"]),
                            "close_time": rfc3339_ms(r["close_time"]) if r["close_time"] else None,
                            "headers": [[n, v] for n, v in r["headers"]],
                            "callback_headers": sorted({n for n, _ in r["callback_headers"]})})
            return out

    def stats(self):
        with self.lock:
            out = dict(self.counts)
            out["nexus_operations"] = len(self.records)
            # An operation started more than once for one request id: each record counts how
            # often its behaviour ran, so this is what happened, not what should have.
            seen = {}
            for r in self.order:
                key = (r["endpoint_id"], r["service"], r["operation"], r["request_id"])
                seen[key] = seen.get(key, 0) + r["started"]
            out["nexus_duplicate_operations"] = sum(n - 1 for n in seen.values() if n > 1)
            out["nexus_running"] = sum(1 for r in self.order if r["state"] == "running")
            out["callbacks_pending"] = sum(1 for r in self.order if r["callback_url"] and r["close_time"]
                                           and not r["delivered"])
            return out
