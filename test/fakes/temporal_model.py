"""Temporal's Nexus endpoint registry and namespaces as the fake keeps them: the validation the
frontend applies to an endpoint spec, the version check of updates and deletes, name uniqueness,
the list with its page tokens and its lag behind writes, and the Payload JSON of descriptions.
temporal_fake.py serves it over HTTP as the frontend's HTTP API does.

Error messages are written in the server's words where known; the codes and HTTP statuses are
what clients act on, and those follow ../shared/DESIGN.md section 3.

Standard library only.
"""
import base64
import bisect
import json
import re
import threading
import time
import uuid

# gRPC code -> HTTP status, as grpc-gateway's HTTPStatusFromCode maps them.
HTTP_STATUS = {1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 10: 409,
               11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401}
# HTTP status -> the gRPC code an answer with that status carries (for injected errors).
GRPC_CODE = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 429: 8, 499: 1, 500: 13, 501: 12,
             503: 14, 504: 4}
CODE_NAMES = {1: "canceled", 2: "unknown", 3: "invalid argument", 4: "deadline exceeded",
              5: "not found", 6: "already exists", 7: "permission denied", 8: "resource exhausted",
              9: "failed precondition", 10: "aborted", 11: "out of range", 12: "unimplemented",
              13: "internal", 14: "unavailable", 15: "data loss", 16: "unauthenticated"}

NAME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]*[a-zA-Z0-9]$")
NAME_MAX = 200                  # dynamic config frontend nexus endpoint name max length
DESCRIPTION_MAX = 20000         # bytes of the whole Payload (its protobuf size)
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
JOURNAL_SECONDS = 600           # how far back list_lag_ms can reach
TOKEN_MAGIC = b"\xfb\xff"       # page tokens start with this, so their base64 has '+' and '/'
BINARY_NULL = "binary/null"


class TemporalError(Exception):
    """A gRPC status as the HTTP API renders it: {"code", "message", "details"}."""

    def __init__(self, code, message, details=None):
        super().__init__(message)
        self.code = code
        self.status = HTTP_STATUS.get(code, 500)
        self.message = message
        self.details = details or []

    def body(self):
        return {"code": self.code, "message": self.message, "details": self.details}


def invalid(message):
    return TemporalError(3, message)


def not_found(message, detail=True):
    # serviceerror.NotFound carries a NotFoundFailure detail (empty clusters on a local cluster).
    details = [{"@type": "type.googleapis.com/temporal.api.errordetails.v1.NotFoundFailure"}] if detail else []
    return TemporalError(5, message, details)


def namespace_not_found(name):
    return TemporalError(5, "Namespace %s is not found." % name,
                         [{"@type": "type.googleapis.com/temporal.api.errordetails.v1.NamespaceNotFoundFailure",
                           "namespace": name}])


def route_not_found():
    """grpc-gateway's answer to a path no RPC is bound to."""
    return TemporalError(5, "Not Found")


def method_not_allowed():
    """grpc-gateway's answer to a known path with another method (codes.Unimplemented)."""
    return TemporalError(12, "Method Not Allowed")


# -- Payload JSON -------------------------------------------------------------------------------
# The rule (go.temporal.io/api common/v1/payload_json.go, copied from internal/temporalcommonv1;
# the HTTP API unmarshals and marshals with payload shorthand on unless ?noPayloadShorthand):
#  reading a Payload from JSON:
#   - an object with exactly the keys "metadata" and "data", where metadata is an object that has
#     "encoding" and all of whose values are base64 strings, and data is a base64 string, is the
#     full form (std or URL-safe base64, padding optional); an object with only "metadata" whose
#     encoding is base64("binary/null") is the full form of a null payload;
#   - JSON null is a binary/null payload (the fake treats a null description as unset, as
#     protojson does for a null message field);
#   - an object with a string "_protoMessageType" is json/protobuf (the key removed, metadata
#     messageType set);
#   - anything else is the shorthand: metadata {"encoding": "json/plain"} and data = the value
#     re-encoded by Go's encoding/json (keys sorted, no spaces, <>& and U+2028/9 escaped).
#  writing a Payload to JSON:
#   - binary/null -> {"metadata":{"encoding":"YmluYXJ5L251bGw="}};
#   - json/plain with no other metadata -> the JSON value itself (data parsed back);
#   - json/protobuf with only messageType besides -> the object plus "_protoMessageType";
#   - anything else -> the full form. (The newest api-go returns an error for an unknown
#     encoding instead, which fails the whole answer; older versions wrote the full form, which
#     is what the fake does: a client must read both forms anyway.)
# A string description sent as a JSON string therefore comes back as the same string.

def _b64decode(text):
    if not isinstance(text, str):
        return None
    alphabet = "-_" if re.search(r"[-_]", text) else "+/"
    try:
        padded = text + "=" * (-len(text) % 4)
        return base64.b64decode(padded, altchars=alphabet.encode(), validate=True)
    except (ValueError, TypeError):
        return None


def go_json(value):
    """JSON as Go's encoding/json.Marshal writes a decoded interface{} value."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(raw, escaped)
    return text.encode()


def payload_from_json(value):
    """(metadata {str: bytes}, data bytes) of a Payload given in JSON."""
    if isinstance(value, dict):
        full = _full_payload(value)
        if full is not None:
            return full
        if isinstance(value.get("_protoMessageType"), str) and value["_protoMessageType"]:
            rest = {k: v for k, v in value.items() if k != "_protoMessageType"}
            return ({"encoding": b"json/protobuf", "messageType": value["_protoMessageType"].encode()},
                    go_json(rest))
    if value is None:
        return {"encoding": BINARY_NULL.encode()}, b""
    return {"encoding": b"json/plain"}, go_json(value)


def _full_payload(value):
    metadata = value.get("metadata")
    if not isinstance(metadata, dict) or "encoding" not in metadata:
        return None
    decoded = {}
    for key, item in metadata.items():
        raw = _b64decode(item)
        if raw is None:
            return None
        decoded[key] = raw
    if set(value) == {"metadata"} and decoded["encoding"] == BINARY_NULL.encode():
        return decoded, b""
    if set(value) != {"metadata", "data"}:
        return None
    data = _b64decode(value["data"])
    if data is None:
        return None
    return decoded, data


def payload_to_json(payload, shorthand=True):
    metadata, data = payload
    encoding = metadata.get("encoding", b"")
    if shorthand:
        if encoding == BINARY_NULL.encode():
            return {"metadata": {"encoding": base64.b64encode(encoding).decode()}}
        try:
            if encoding == b"json/plain" and len(metadata) == 1:
                return json.loads(data)
            if encoding == b"json/protobuf" and metadata.get("messageType") and len(metadata) == 2:
                obj = json.loads(data)
                if isinstance(obj, dict):
                    obj["_protoMessageType"] = metadata["messageType"].decode()
                    return obj
        except ValueError:
            pass
    out = {"metadata": {k: base64.b64encode(v).decode() for k, v in sorted(metadata.items())}}
    if data:
        out["data"] = base64.b64encode(data).decode()
    return out


def _varint_len(n):
    size = 1
    while n >= 0x80:
        n >>= 7
        size += 1
    return size


def payload_size(payload):
    """The protobuf size of a Payload (map<string, bytes> metadata = 1; bytes data = 2), which is
    what the server holds against its 20,000-byte description limit."""
    metadata, data = payload
    size = 0
    for key, value in metadata.items():
        k = key.encode()
        entry = 1 + _varint_len(len(k)) + len(k) + 1 + _varint_len(len(value)) + len(value)
        size += 1 + _varint_len(entry) + entry
    if data:
        size += 1 + _varint_len(len(data)) + len(data)
    return size


# -- request decoding (strict, like protojson with DiscardUnknown off) --------------------------

def _camel(name):
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def strict_fields(obj, allowed, where):
    """The object's fields by their JSON names; protojson also accepts the proto (snake_case) names.
    Unknown fields are refused, as the server's unmarshal does."""
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise invalid('proto: syntax error: %s: expected an object' % where)
    out = {}
    for key, value in obj.items():
        name = key if key in allowed else _camel(key)
        if name not in allowed:
            raise invalid('proto: (line 1:1): unknown field "%s"' % key)
        if name in out:
            raise invalid('proto: (line 1:1): duplicate field "%s"' % key)
        out[name] = value
    return out


def string_field(value, where):
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid("proto: (line 1:1): invalid value for string field %s: %s" % (where, json.dumps(value)))
    return value


def int64_field(value, where):
    """int64 in proto3 JSON: a number or a decimal string."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise invalid("proto: (line 1:1): invalid value for int64 field %s: %s" % (where, json.dumps(value)))
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.match(r"^-?[0-9]+$", value):
        return int(value)
    raise invalid("proto: (line 1:1): invalid value for int64 field %s: %s" % (where, json.dumps(value)))


def decode_spec(raw):
    """An EndpointSpec from JSON: {"name", "description" (Payload), "target"}."""
    fields = strict_fields(raw, ("name", "description", "target"), "spec")
    spec = {"name": string_field(fields.get("name"), "name")}
    if fields.get("description") is not None:
        spec["description"] = payload_from_json(fields["description"])
    target = strict_fields(fields.get("target"), ("worker", "external"), "target")
    variants = [k for k in ("worker", "external") if target.get(k) is not None]
    if len(variants) > 1:
        raise invalid("proto: (line 1:1): error parsing \"external\", oneof "
                      "temporal.api.nexus.v1.EndpointTarget.variant is already set")
    if variants == ["worker"]:
        worker = strict_fields(target["worker"], ("namespace", "taskQueue"), "worker")
        spec["target"] = {"worker": {"namespace": string_field(worker.get("namespace"), "namespace"),
                                     "taskQueue": string_field(worker.get("taskQueue"), "taskQueue")}}
    elif variants == ["external"]:
        external = strict_fields(target["external"], ("url",), "external")
        spec["target"] = {"external": {"url": string_field(external.get("url"), "url")}}
    return spec


def timestamp(t):
    """google.protobuf.Timestamp in JSON: RFC 3339, UTC, 0/3/6/9 fraction digits."""
    whole = int(t)
    nanos = int(round((t - whole) * 1e9))
    if nanos >= 1000000000:
        whole, nanos = whole + 1, nanos - 1000000000
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    if nanos:
        digits = "%09d" % nanos
        for n in (3, 6, 9):
            if digits[n:] == "0" * (9 - n):
                digits = digits[:n]
                break
        text += "." + digits
    return text + "Z"


class Registry:
    """The cluster's Nexus endpoints and namespaces. Callers hold self.lock."""

    def __init__(self, namespaces=("default",)):
        self.lock = threading.Lock()
        self.initial_namespaces = tuple(namespaces)
        self.reset()

    def reset(self):
        self.endpoints = {}          # id -> {"id", "version", "spec", "created", "modified"}
        self.by_name = {}            # name -> id
        self.order = []              # ids, sorted
        self.journal = []            # (time, id, the endpoint before the change or None)
        self.namespaces = {}
        for name in self.initial_namespaces:
            self.add_namespace(name)

    # -- namespaces --------------------------------------------------------------------------
    def add_namespace(self, name):
        if name not in self.namespaces:
            self.namespaces[name] = {"name": name, "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "ns:" + name))}
        return self.namespaces[name]

    def remove_namespace(self, name):
        return self.namespaces.pop(name, None) is not None

    def describe_namespace(self, name):
        ns = self.namespaces.get(name)
        if ns is None:
            raise namespace_not_found(name)
        return {
            "namespaceInfo": {"name": ns["name"], "state": "NAMESPACE_STATE_REGISTERED",
                              "id": ns["id"],
                              "capabilities": {"eagerWorkflowStart": True, "syncUpdate": True,
                                               "asyncUpdate": True},
                              "supportsSchedules": True},
            "config": {"workflowExecutionRetentionTtl": "86400s",
                       "historyArchivalState": "ARCHIVAL_STATE_DISABLED",
                       "visibilityArchivalState": "ARCHIVAL_STATE_DISABLED"},
            "replicationConfig": {"activeClusterName": "active", "clusters": [{"clusterName": "active"}],
                                  "state": "REPLICATION_STATE_NORMAL"},
            "failoverVersion": "0",
        }

    # -- validation ----------------------------------------------------------------------------
    def validate_spec(self, spec, check_namespace=True):
        name = spec.get("name", "")
        if not name:
            raise invalid("Nexus endpoint name not set")
        if len(name) > NAME_MAX:
            raise invalid("Nexus endpoint name length exceeds the limit of %d" % NAME_MAX)
        if not NAME_RE.match(name):
            raise invalid("Nexus endpoint name (%s) does not match the expected pattern %s"
                          % (name, NAME_RE.pattern))
        target = spec.get("target")
        if not target:
            raise invalid("Nexus endpoint target not set")
        if "worker" in target:
            worker = target["worker"]
            if not worker["namespace"]:
                raise invalid("Nexus endpoint target namespace not set")
            if not worker["taskQueue"]:
                raise invalid("Nexus endpoint target task queue not set")
            if check_namespace and worker["namespace"] not in self.namespaces:
                raise TemporalError(9, "could not verify namespace referenced by target exists: "
                                       "Namespace %s is not found." % worker["namespace"])
        else:
            url = target["external"]["url"]
            if not re.match(r"^https?://[^/\s]+", url):
                raise invalid("Nexus endpoint target URL (%s) is invalid: it must be an absolute "
                              "http or https URL" % url)
        if "description" in spec and payload_size(spec["description"]) > DESCRIPTION_MAX:
            raise invalid("Nexus endpoint description length exceeds the limit of %d" % DESCRIPTION_MAX)

    # -- writes ----------------------------------------------------------------------------------
    def _record(self, endpoint_id, previous):
        now = time.time()
        self.journal.append((now, endpoint_id, previous))
        cut = 0
        while cut < len(self.journal) and self.journal[cut][0] < now - JOURNAL_SECONDS:
            cut += 1
        if cut:
            del self.journal[:cut]

    def create(self, spec, endpoint_id=None, version=1, check_namespace=True):
        self.validate_spec(spec, check_namespace)
        if spec["name"] in self.by_name:
            raise TemporalError(6, "error creating Nexus endpoint: Nexus endpoint with name %s already "
                                   "exists" % spec["name"])
        endpoint_id = endpoint_id or str(uuid.uuid4())
        if endpoint_id in self.endpoints:
            raise TemporalError(6, "Nexus endpoint with ID %s already exists" % endpoint_id)
        endpoint = {"id": endpoint_id, "version": version, "spec": spec, "created": time.time(),
                    "modified": None}
        self.endpoints[endpoint_id] = endpoint
        self.by_name[spec["name"]] = endpoint_id
        bisect.insort(self.order, endpoint_id)
        self._record(endpoint_id, None)
        return endpoint

    def get(self, endpoint_id):
        if not endpoint_id:
            raise invalid("Nexus endpoint ID not set")
        endpoint = self.endpoints.get(endpoint_id)
        if endpoint is None:
            raise not_found("could not find Nexus endpoint with ID: %s" % endpoint_id)
        return endpoint

    def update(self, endpoint_id, version, spec):
        self.validate_spec(spec)
        endpoint = self.get(endpoint_id)
        if version != endpoint["version"]:
            raise TemporalError(9, "nexus endpoint version mismatch: expected %d, got %d"
                                % (endpoint["version"], version))
        holder = self.by_name.get(spec["name"])
        if holder is not None and holder != endpoint_id:
            raise TemporalError(6, "error updating Nexus endpoint: Nexus endpoint with name %s already "
                                   "exists" % spec["name"])
        previous = dict(endpoint)
        del self.by_name[endpoint["spec"]["name"]]
        endpoint = dict(endpoint, version=version + 1, spec=spec, modified=time.time())
        self.endpoints[endpoint_id] = endpoint
        self.by_name[spec["name"]] = endpoint_id
        self._record(endpoint_id, previous)
        return endpoint

    def delete(self, endpoint_id, version):
        if not endpoint_id:
            raise invalid("Nexus endpoint ID not set")
        if version <= 0:
            raise invalid("Nexus endpoint version must be greater than 0")
        endpoint = self.get(endpoint_id)
        if version != endpoint["version"]:
            raise TemporalError(9, "nexus endpoint version mismatch: expected %d, got %d"
                                % (endpoint["version"], version))
        del self.endpoints[endpoint_id]
        del self.by_name[endpoint["spec"]["name"]]
        del self.order[bisect.bisect_left(self.order, endpoint_id)]
        self._record(endpoint_id, endpoint)

    # -- reads -----------------------------------------------------------------------------------
    def view(self, lag_ms):
        """(endpoints by id, sorted ids) as the registry was lag_ms ago: the list's view of it.
        The frontend serves lists from a registry cache that follows writes a while later."""
        if not lag_ms or lag_ms <= 0:
            return self.endpoints, self.order
        cutoff = time.time() - lag_ms / 1000.0
        view = dict(self.endpoints)
        for when, endpoint_id, previous in reversed(self.journal):
            if when <= cutoff:
                break
            if previous is None:
                view.pop(endpoint_id, None)
            else:
                view[endpoint_id] = previous
        return view, sorted(view)

    def list(self, page_size, token, name, lag_ms):
        if page_size < 0:
            raise invalid("page size must not be negative")
        if page_size > MAX_PAGE_SIZE:
            raise invalid("page size %d exceeds the limit of %d" % (page_size, MAX_PAGE_SIZE))
        page_size = page_size or DEFAULT_PAGE_SIZE
        view, order = self.view(lag_ms)
        if name:
            # "Specifying this will result in zero or one results."
            return [e for e in (view[i] for i in order) if e["spec"]["name"] == name][:1], None
        start = 0
        if token is not None:
            if not token.startswith(TOKEN_MAGIC + b"after:"):
                raise invalid("invalid next page token")
            start = bisect.bisect_right(order, token[len(TOKEN_MAGIC) + 6:].decode("utf-8", "replace"))
        page = [view[i] for i in order[start:start + page_size]]
        next_token = None
        if len(page) == page_size:
            # A full page always carries a token, even when nothing follows: the last page of a
            # list whose size is a multiple of the page size is empty.
            next_token = TOKEN_MAGIC + b"after:" + page[-1]["id"].encode()
        return page, next_token

    def render(self, endpoint, shorthand=True):
        """An Endpoint in proto3 JSON: empty fields left out."""
        spec = {"name": endpoint["spec"]["name"]}
        if "description" in endpoint["spec"]:
            spec["description"] = payload_to_json(endpoint["spec"]["description"], shorthand)
        if "target" in endpoint["spec"]:
            target = endpoint["spec"]["target"]
            kind = next(iter(target))
            spec["target"] = {kind: {k: v for k, v in target[kind].items() if v}}
        out = {"version": str(endpoint["version"]), "id": endpoint["id"], "spec": spec,
               "createdTime": timestamp(endpoint["created"])}
        if endpoint["modified"] is not None:
            out["lastModifiedTime"] = timestamp(endpoint["modified"])
        out["urlPrefix"] = "/nexus/endpoints/" + endpoint["id"]
        return out
