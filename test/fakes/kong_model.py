"""Kong's configuration as the fake keeps it: the entities, their schema rules (required fields,
uniqueness, references, cascades, the plugin rules of OSS Kong), and the store with its indexes and
cursor pagination. kong_fake.py serves it over HTTP as the Admin API does.

Standard library only.
"""
import base64
import bisect
import json
import re
import threading
import time
import uuid
from urllib.parse import urlsplit

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
