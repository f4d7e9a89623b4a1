#!/usr/bin/env python3
"""A stateful fake of the Kong Admin API (OSS 3.x) for pg_gateway's tests and benchmarks.

It behaves as ../shared/DESIGN.md section 3 says Kong does: POST creates (201), PUT upserts by id
or name (200, full replace, defaults filled in), GET/PATCH of a missing entity is 404, DELETE is
204 even when missing (but 404 for a missing child under a parent path), errors are Kong's
{code, name, message, fields} bodies, unique and foreign-key checks, cascades, paginated lists
with tag filters, DB-less mode (405 on writes). Each request is also checked against Kong's own
documents (kong_contract.py); a request the real server would not accept is answered 400 and
recorded as a contract violation, which the tests read from GET /__fake/stats.

Fault controls for reliability tests, under /__fake/ (never part of Kong's API):
  POST /__fake/faults  {"error_rate": 0.3, "error_status": 503, "latency_ms": 50, "down": true,
                        "rate_limit": true}
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
import base64
import bisect
import json
import os
import random
import re
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import kong_contract

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
NAME_RE = re.compile(r"^[0-9a-zA-Z.\-_~]+$")
TAG_RE = re.compile(r"^[\x21-\x2b\x2d-\x2e\x30-\x7e]+$")  # printable ASCII but ',' and '/'
HTTP_METHOD_RE = re.compile(r"^[A-Z]+$")


class KongError(Exception):
    def __init__(self, status, body):
        super().__init__(body.get("message"))
        self.status = status
        self.body = body


def schema_violation(fields):
    parts = ", ".join("%s: %s" % (k, v) for k, v in fields.items())
    return KongError(400, {"code": 2, "name": "schema violation",
                           "message": "schema violation (%s)" % parts, "fields": fields})


def not_found():
    return KongError(404, {"message": "Not found"})


# Field types and defaults of the entities pg_gateway uses, as Kong 3.9 defines them.
ENTITIES = {
    "services": {
        "fields": {"id": str, "name": str, "protocol": str, "host": str, "port": int, "path": str,
                   "retries": int, "connect_timeout": int, "write_timeout": int,
                   "read_timeout": int, "tags": list, "client_certificate": dict,
                   "tls_verify": bool, "tls_verify_depth": int, "ca_certificates": list,
                   "enabled": bool, "url": str},
        "defaults": {"protocol": "http", "port": 80, "path": None, "retries": 5,
                     "connect_timeout": 60000, "write_timeout": 60000, "read_timeout": 60000,
                     "tags": None, "client_certificate": None, "tls_verify": None,
                     "tls_verify_depth": None, "ca_certificates": None, "enabled": True,
                     "name": None},
        "unique": ["name"], "endpoint_key": "name", "refs": {},
    },
    "routes": {
        "fields": {"id": str, "name": str, "protocols": list, "methods": list, "hosts": list,
                   "paths": list, "headers": dict, "https_redirect_status_code": int,
                   "regex_priority": int, "strip_path": bool, "path_handling": str,
                   "preserve_host": bool, "request_buffering": bool, "response_buffering": bool,
                   "snis": list, "sources": list, "destinations": list, "tags": list,
                   "service": dict},
        "defaults": {"name": None, "protocols": ["http", "https"], "methods": None, "hosts": None,
                     "paths": None, "headers": None, "https_redirect_status_code": 426,
                     "regex_priority": 0, "strip_path": True, "path_handling": "v0",
                     "preserve_host": False, "request_buffering": True,
                     "response_buffering": True, "snis": None, "sources": None,
                     "destinations": None, "tags": None, "service": None},
        "unique": ["name"], "endpoint_key": "name", "refs": {"service": "services"},
    },
    "consumers": {
        "fields": {"id": str, "username": str, "custom_id": str, "tags": list},
        "defaults": {"username": None, "custom_id": None, "tags": None},
        "unique": ["username", "custom_id"], "endpoint_key": "username", "refs": {},
    },
    "plugins": {
        "fields": {"id": str, "name": str, "instance_name": str, "route": dict, "service": dict,
                   "consumer": dict, "config": dict, "protocols": list, "enabled": bool,
                   "tags": list},
        "defaults": {"instance_name": None, "route": None, "service": None, "consumer": None,
                     "config": {}, "protocols": ["grpc", "grpcs", "http", "https"],
                     "enabled": True, "tags": None},
        "unique": ["instance_name"], "endpoint_key": "instance_name",
        "refs": {"route": "routes", "service": "services", "consumer": "consumers"},
    },
    "keyauth_credentials": {
        "fields": {"id": str, "key": str, "ttl": int, "tags": list, "consumer": dict},
        "defaults": {"ttl": None, "tags": None},
        "unique": ["key"], "endpoint_key": "key", "refs": {"consumer": "consumers"},
    },
    "acls": {
        "fields": {"id": str, "group": str, "tags": list, "consumer": dict},
        "defaults": {"tags": None},
        "unique": [], "endpoint_key": None, "refs": {"consumer": "consumers"},
    },
}

# Deleting the key entity removes these children (Kong's on_delete = cascade); other references
# block the delete with a foreign-key error.
CASCADES = {"routes": ["plugins"], "consumers": ["plugins", "keyauth_credentials", "acls"],
            "services": ["plugins"]}

# Path segment -> entity; nested credential collections under /consumers/{c}/.
COLLECTIONS = {"services": "services", "routes": "routes", "consumers": "consumers",
               "plugins": "plugins", "key-auths": "keyauth_credentials", "acls": "acls"}
CHILDREN = {("consumers", "key-auth"): "keyauth_credentials", ("consumers", "acls"): "acls",
            ("consumers", "plugins"): "plugins", ("routes", "plugins"): "plugins",
            ("services", "plugins"): "plugins", ("services", "routes"): "routes"}

PLUGIN_DEFAULTS = {
    "key-auth": {"key_names": ["apikey"], "hide_credentials": False, "anonymous": None,
                 "key_in_header": True, "key_in_query": True, "key_in_body": False,
                 "run_on_preflight": True, "realm": None},
    "acl": {"allow": None, "deny": None, "hide_groups_header": False,
            "always_use_authenticated_groups": False},
    "rate-limiting": {"second": None, "minute": None, "hour": None, "day": None, "month": None,
                      "year": None, "limit_by": "consumer", "header_name": None, "path": None,
                      "policy": "local", "fault_tolerant": True, "hide_client_headers": False,
                      "error_code": 429, "error_message": "API rate limit exceeded",
                      "sync_rate": -1, "redis": None},
}
RATE_LIMIT_WINDOWS = ["second", "minute", "hour", "day", "month", "year"]
HTTP_PROTOCOLS = ["grpc", "grpcs", "http", "https"]


def type_name(t):
    return {str: "a string", int: "an integer", bool: "a boolean", list: "a set",
            dict: "a record"}[t]


class Kong:
    """The entities and the rules Kong applies to them. Callers hold self.lock."""

    def __init__(self, dbless=False):
        self.lock = threading.Lock()
        self.dbless = dbless
        self.reset()

    def reset(self):
        self.store = {name: {} for name in ENTITIES}
        self.created_ms = {}  # id -> when it was first created (for latency benchmarks)
        # Indexes, so that no write costs time proportional to what Kong holds (as a database
        # would): unique keys per entity, and children per referenced parent.
        self.unique = {name: {} for name in ENTITIES}    # entity -> (label, value) -> id
        self.children = {}                               # (entity, field, parent id) -> {ids}
        # Every entity's ids in order, so a page of a list costs its size, not the whole list
        # (Kong pages with a database cursor).
        self.order = {name: [] for name in ENTITIES}

    def unique_keys(self, entity, obj):
        for field in ENTITIES[entity]["unique"]:
            if obj.get(field) is not None:
                yield (field, obj[field])
        if entity == "plugins":
            yield ("plugin", (obj["name"],) + tuple(self.ref_id(obj.get(f)) for f in ("route", "service", "consumer")))
        if entity == "acls":
            yield ("acl", (self.ref_id(obj.get("consumer")), obj.get("group")))

    def index(self, entity, obj, add):
        for key in self.unique_keys(entity, obj):
            if add:
                self.unique[entity][key] = obj["id"]
            elif self.unique[entity].get(key) == obj["id"]:
                del self.unique[entity][key]
        for field in ENTITIES[entity]["refs"]:
            parent = self.ref_id(obj.get(field))
            if parent is None:
                continue
            ids = self.children.setdefault((entity, field, parent), set())
            if add:
                ids.add(obj["id"])
            else:
                ids.discard(obj["id"])

    def holder(self, entity, key, own_id):
        other = self.unique[entity].get(key)
        return other if other is not None and other != own_id else None

    # -- lookups -------------------------------------------------------------------------
    def find(self, entity, id_or_key):
        table = self.store[entity]
        if UUID_RE.match(id_or_key or ""):
            return table.get(id_or_key.lower())
        field = ENTITIES[entity]["endpoint_key"]
        if field is None:
            return None
        found = self.unique[entity].get((field, id_or_key))
        return table.get(found) if found else None

    def ref_id(self, value):
        return value.get("id") if isinstance(value, dict) else None

    # -- validation ------------------------------------------------------------------------
    def validate(self, entity, obj, own_id):
        spec = ENTITIES[entity]
        errors = {}
        for key, value in obj.items():
            if key in ("created_at", "updated_at"):
                continue
            if key not in spec["fields"]:
                errors[key] = "unknown field"
            elif value is not None and not isinstance(value, spec["fields"][key]) or \
                    (isinstance(value, bool) and spec["fields"].get(key) is int):
                errors[key] = "expected %s" % type_name(spec["fields"][key])
        if errors:
            raise schema_violation(errors)
        for tag in obj.get("tags") or []:
            if not isinstance(tag, str) or not TAG_RE.match(tag):
                raise schema_violation({"tags": "invalid tag '%s': expected printable ascii "
                                        "(except `,` and `/`) or valid utf-8 sequences" % tag})
        getattr(self, "validate_" + entity)(obj)
        for field, target in spec["refs"].items():
            ref = obj.get(field)
            if ref is None:
                continue
            if set(ref) - {"id"} or not isinstance(ref.get("id"), str) or not UUID_RE.match(ref["id"]):
                raise schema_violation({field: {"id": "expected a uuid"}})
            if ref["id"].lower() not in self.store[target]:
                raise KongError(400, {
                    "code": 4, "name": "foreign key violation",
                    "message": "the foreign key '{id=\"%s\"}' does not reference an existing "
                               "'%s' entity." % (ref["id"], target),
                    "fields": {field: {"id": ref["id"]}}})
        for field in spec["unique"]:
            value = obj.get(field)
            if value is not None and self.holder(entity, (field, value), own_id):
                raise KongError(409, {
                    "code": 5, "name": "unique constraint violation",
                    "message": "UNIQUE violation detected on '{%s=\"%s\"}'" % (field, value),
                    "fields": {field: value}})

    def validate_services(self, obj):
        if obj.get("url"):
            parts = urlsplit(obj.pop("url"))
            if parts.scheme not in ("http", "https", "grpc", "grpcs", "tcp", "tls", "udp") or not parts.hostname:
                raise schema_violation({"url": "missing host in url"})
            obj["protocol"] = parts.scheme
            obj["host"] = parts.hostname
            obj["port"] = parts.port or (443 if parts.scheme == "https" else 80)
            obj["path"] = parts.path or None
        if not obj.get("host"):
            raise schema_violation({"host": "required field missing"})
        if obj.get("name") is not None and not NAME_RE.match(obj["name"]):
            raise schema_violation({"name": "invalid value '%s': it must only contain "
                                    "alphanumeric and '., -, _, ~' characters" % obj["name"]})
        if not 0 <= obj.get("port", 80) <= 65535:
            raise schema_violation({"port": "value should be between 0 and 65535"})
        if obj.get("path") is not None and not obj["path"].startswith("/"):
            raise schema_violation({"path": "should start with: /"})

    def validate_routes(self, obj):
        protocols = obj.get("protocols") or ["http", "https"]
        if not any(obj.get(f) for f in ("methods", "hosts", "headers", "paths", "snis")) and \
                set(protocols) & {"http", "https"}:
            raise schema_violation({"@entity": ["must set one of 'methods', 'hosts', 'headers', "
                                                "'paths', 'snis' when 'protocols' is 'http' or 'https'"]})
        for path in obj.get("paths") or []:
            if not isinstance(path, str) or not (path.startswith("/") or path.startswith("~")):
                raise schema_violation({"paths": ["should start with: / (fixed path) or ~/ (regex path)"]})
        for method in obj.get("methods") or []:
            if not isinstance(method, str) or not HTTP_METHOD_RE.match(method):
                raise schema_violation({"methods": ["invalid value: " + str(method)]})
        if obj.get("name") is not None and not NAME_RE.match(obj["name"]):
            raise schema_violation({"name": "invalid value '%s'" % obj["name"]})

    def validate_consumers(self, obj):
        if not obj.get("username") and not obj.get("custom_id"):
            raise schema_violation({"@entity": ["at least one of these fields must be non-empty: "
                                                "'custom_id', 'username'"]})

    def validate_plugins(self, obj):
        name = obj.get("name")
        if name not in PLUGIN_DEFAULTS:
            raise schema_violation({"name": "plugin '%s' not enabled; add it to the 'plugins' "
                                    "configuration property" % name})
        if name in ("key-auth", "acl") and obj.get("consumer") is not None:
            raise schema_violation({"consumer": "value must be null"})
        for protocol in obj.get("protocols") or []:
            if protocol not in HTTP_PROTOCOLS:  # OSS 3.9: no ws/wss
                raise schema_violation({"protocols": ["expected one of: grpc, grpcs, http, https"]})
        config = dict(PLUGIN_DEFAULTS[name])
        given = obj.get("config") or {}
        unknown = {k: "unknown field" for k in given if k not in config}
        if unknown:
            raise schema_violation({"config": unknown})
        config.update(given)
        if name == "acl" and not config["allow"] and not config["deny"]:
            raise schema_violation({"@entity": ["at least one of these fields must be non-empty: "
                                                "'config.allow', 'config.deny'"]})
        if name == "rate-limiting":
            limits = {w: config[w] for w in RATE_LIMIT_WINDOWS if config[w] is not None}
            if not limits:
                raise schema_violation({"@entity": ["at least one of these fields must be non-empty: "
                                                    "'config.second', 'config.minute', 'config.hour', "
                                                    "'config.day', 'config.month', 'config.year'"]})
            for window, value in limits.items():
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                    raise schema_violation({"config": {window: "value must be greater than 0"}})
            if config["limit_by"] not in ("consumer", "credential", "ip", "service", "header", "path"):
                raise schema_violation({"config": {"limit_by": "expected one of: consumer, credential, "
                                                   "ip, service, header, path"}})
            if config["policy"] not in ("local", "cluster", "redis"):
                raise schema_violation({"config": {"policy": "expected one of: local, cluster, redis"}})
        if name == "key-auth":
            names = config["key_names"]
            if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
                raise schema_violation({"config": {"key_names": "expected a non-empty array of strings"}})
        obj["config"] = config
        scope = tuple(self.ref_id(obj.get(f)) for f in ("route", "service", "consumer"))
        if self.holder("plugins", ("plugin", (name,) + scope), obj["id"]):
            raise KongError(409, {
                "code": 5, "name": "unique constraint violation",
                "message": "UNIQUE violation detected on '{consumer=null,name=\"%s\",route=%s,"
                           "service=null}'" % (name, json.dumps(obj.get("route"))),
                "fields": {"name": name}})

    def validate_keyauth_credentials(self, obj):
        if not obj.get("key"):
            obj["key"] = uuid.uuid4().hex
        if obj.get("ttl") is not None and obj["ttl"] < 0:
            raise schema_violation({"ttl": "value should be between 0 and 100000000"})
        if obj.get("consumer") is None:
            raise schema_violation({"consumer": "required field missing"})

    def validate_acls(self, obj):
        if not obj.get("group"):
            raise schema_violation({"group": "required field missing"})
        if obj.get("consumer") is None:
            raise schema_violation({"consumer": "required field missing"})
        if self.holder("acls", ("acl", (self.ref_id(obj["consumer"]), obj["group"])), obj["id"]):
            raise KongError(409, {"code": 5, "name": "unique constraint violation",
                                  "message": "UNIQUE violation detected on '{group=\"%s\"}'" % obj["group"],
                                  "fields": {"group": obj["group"]}})

    # -- writes ----------------------------------------------------------------------------
    def write(self, entity, body, existing_id=None, endpoint_key=None, forced=None, keep=None):
        """Creates or fully replaces one entity. `keep` is the stored object for PATCH."""
        now = int(time.time())
        obj = dict(ENTITIES[entity]["defaults"]) if keep is None else dict(keep)
        if keep is None and entity != "services":
            obj.pop("url", None)
        obj.update(body)
        obj.update(forced or {})
        if existing_id:
            obj["id"] = existing_id
        elif not obj.get("id"):
            obj["id"] = str(uuid.uuid4())
        if not UUID_RE.match(str(obj["id"])):
            raise schema_violation({"id": "expected a valid UUID"})
        obj["id"] = obj["id"].lower()
        if endpoint_key:
            obj[ENTITIES[entity]["endpoint_key"]] = endpoint_key
        self.validate(entity, obj, obj["id"])
        previous = self.store[entity].get(obj["id"])
        obj["created_at"] = previous["created_at"] if previous else now
        if previous is None:
            self.created_ms[obj["id"]] = time.time() * 1000.0
            bisect.insort(self.order[entity], obj["id"])
        obj["updated_at"] = now
        if previous is not None:
            self.index(entity, previous, add=False)
        self.store[entity][obj["id"]] = obj
        self.index(entity, obj, add=True)
        return obj

    def referencing(self, child_entity, field, parent_id):
        return self.children.get((child_entity, field, parent_id), set())

    def delete(self, entity, obj):
        for other_entity, spec in ENTITIES.items():
            for field, target in spec["refs"].items():
                if target != entity or other_entity in CASCADES.get(entity, []):
                    continue
                if self.referencing(other_entity, field, obj["id"]):
                    raise KongError(400, {
                        "code": 4, "name": "foreign key violation",
                        "message": "an existing '%s' entity references this '%s' entity" % (other_entity, entity),
                        "fields": {"@referenced_by": other_entity}})
        for child in CASCADES.get(entity, []):
            field = {"plugins": entity[:-1]}.get(child, "consumer")
            for child_id in list(self.referencing(child, field, obj["id"])):
                self.remove(child, self.store[child][child_id])
        self.remove(entity, obj)

    def remove(self, entity, obj):
        self.index(entity, obj, add=False)
        del self.store[entity][obj["id"]]
        ids = self.order[entity]
        del ids[bisect.bisect_left(ids, obj["id"])]

    # -- lists -----------------------------------------------------------------------------
    def list(self, entity, query, base_path, parent=None):
        size = query.get("size", ["100"])[0]
        if not re.match(r"^[0-9]+$", size) or not 1 <= int(size) <= 1000:
            raise KongError(400, {"code": 9, "name": "invalid size",
                                  "message": "size must be an integer between 1 and 1000",
                                  "fields": {}})
        size = int(size)
        tags = query.get("tags", [None])[0]
        match, wanted = None, []
        if tags:
            if "," in tags and "/" in tags:
                raise KongError(400, {"code": 11, "name": "invalid filter",
                                      "message": "invalid option (tags: invalid filter syntax)",
                                      "fields": {"tags": "invalid filter syntax"}})
            wanted = re.split("[,/]", tags)
            match = all if "," in tags or "/" not in tags else any
        if parent is not None:
            ids = sorted(self.referencing(entity, parent[0], parent[1]))
        else:
            ids = self.order[entity]
        start = 0
        offset = query.get("offset", [None])[0]
        if offset:
            try:
                after = base64.urlsafe_b64decode(offset.encode()).decode()
            except Exception:
                raise KongError(400, {"code": 7, "name": "invalid offset",
                                      "message": "invalid offset", "fields": {}})
            start = bisect.bisect_right(ids, after)
        page, more = [], False
        table = self.store[entity]
        for i in range(start, len(ids)):
            o = table[ids[i]]
            if match is not None and not match(t in (o.get("tags") or []) for t in wanted):
                continue
            if len(page) == size:
                more = True
                break
            page.append(o)
        body = {"data": page, "next": None}
        if more:
            token = base64.urlsafe_b64encode(page[-1]["id"].encode()).decode()
            body["offset"] = token
            sep = "&" if tags else ""
            body["next"] = "%s?offset=%s&size=%d%s" % (base_path, token, size,
                                                       sep + "tags=" + tags if tags else "")
        return body


class Faults:
    def __init__(self):
        self.error_rate = 0.0
        self.error_status = 503
        self.latency_ms = 0
        self.down = False
        self.rate_limit = False


class Stats:
    def __init__(self):
        self.requests = 0
        self.writes = 0
        self.violations = []
        self.by_method = {}
        self.tls_refused = 0
        self.overlapping_writes = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kong/3.9.0"
    # One segment per response, sent at once: without these, headers and body go out as two
    # writes and Nagle's algorithm meets the client's delayed ACK (40 ms per response).
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError) as e:
                with self.server.stats_lock:
                    self.server.stats.tls_refused += 1
                if self.server.verbose:
                    sys.stderr.write("kong-fake: TLS handshake refused: %s\n" % e)
                raise ConnectionAbortedError("TLS handshake refused")
        super().setup()

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("kong-fake: " + (fmt % args) + "\n")

    def _send(self, status, body=None, headers=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
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
        if server.required_header:
            name, _, value = server.required_header.partition(":")
            if self.headers.get(name.strip()) != value.strip():
                return self._send(401, {"message": "Invalid credentials. Token or User credentials required"})
        faults = server.faults
        if faults.down:
            # Like a Kong that is not there: the connection ends without an answer.
            self.close_connection = True
            self.connection.shutdown(2)
            return
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
        if faults.error_rate and random.random() < faults.error_rate:
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
            for key, value in (body or {}).items():
                if not hasattr(server.faults, key):
                    return self._send(400, {"message": "unknown fault " + key})
                setattr(server.faults, key, value)
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

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_PATCH(self):
        self._handle("PATCH")

    def do_DELETE(self):
        self._handle("DELETE")


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, port, dbless=False, verbose=False, spec_dir=None, path_prefix="",
                 required_header="", tls=None):
        super().__init__(("127.0.0.1", port), Handler)
        self.tls = tls
        self.path_prefix = path_prefix.rstrip("/")
        self.required_header = required_header
        self.kong = Kong(dbless=dbless)
        self.faults = Faults()
        self.stats = Stats()
        self.stats_lock = threading.Lock()
        self.writing = {}  # path -> writes to it in progress
        self.verbose = verbose
        self.contract = kong_contract.Contract(spec_dir)


    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], ConnectionAbortedError):
            return  # a refused handshake, already counted
        super().handle_error(request, client_address)

    def get_request(self):
        sock, address = self.socket.accept()
        if self.tls is not None:
            # The handshake runs in the request's own thread (Handler.setup), not in the accept
            # loop, so one slow or refused client does not hold up the others.
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address


def tls_context(cert, key, client_ca):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if client_ca:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def watch_parent(parent, deadline):
    while True:
        time.sleep(0.5)
        if (parent and not os.path.exists("/proc/%d" % parent)) or time.time() > deadline:
            os._exit(0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--dbless", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--parent-pid", type=int, default=os.getppid())
    parser.add_argument("--max-seconds", type=float, default=3600)
    parser.add_argument("--spec-dir", default=os.environ.get("GATEWAY_SPECS"),
                        help="folder with kong-admin-oss-openapi.yaml (default: ../shared/specs)")
    parser.add_argument("--path-prefix", default="", help="serve the Admin API under this path")
    parser.add_argument("--require-header", default="", help='"Name: value" every request must carry')
    parser.add_argument("--tls-cert", help="serve https with this certificate (PEM)")
    parser.add_argument("--tls-key", help="the certificate's private key (PEM)")
    parser.add_argument("--tls-client-ca", help="require client certificates signed by this CA")
    args = parser.parse_args()
    tls = tls_context(args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert else None
    server = FakeServer(args.port, dbless=args.dbless, verbose=args.verbose, spec_dir=args.spec_dir,
                        path_prefix=args.path_prefix, required_header=args.require_header, tls=tls)
    port = server.server_address[1]
    if not server.contract.available:
        print("kong-fake: contract check skipped: %s not found" % server.contract.spec_dir, flush=True)
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(port))
        os.rename(args.port_file + ".tmp", args.port_file)
    print("kong-fake: listening on 127.0.0.1:%d" % port, flush=True)
    threading.Thread(target=watch_parent, args=(args.parent_pid, time.time() + args.max_seconds),
                     daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
