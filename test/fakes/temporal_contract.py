"""Checks requests to the Temporal fake against Temporal's own OpenAPI (Swagger 2.0) document,
../shared/specs/temporal-openapiv2.json.

The fake's behaviour (codes, versions, names, namespaces) is written down in temporal_model.py;
this module only answers "does the documented HTTP API have this request?": the path and method
must be in the document, query parameters must be ones the operation documents (plus `pretty`
and `noPayloadShorthand`, which the server itself reads), with the documented type, and the JSON
body must fit the operation's body schema: known fields only (proto names in snake_case are
accepted as protojson accepts them), documented types (int64 may be a number or a decimal
string, as in proto3 JSON), enum values from the list. A GET or DELETE carries no body.

The real server ignores query parameters it does not know (grpc-gateway logs and drops them); a
misspelled one is still a client bug that would go unnoticed, so the fake reports it. When the
document is absent the check is skipped, and says so.
"""
import json
import os
import re

SERVER_QUERY = {"pretty", "noPayloadShorthand"}   # read by the frontend before grpc-gateway
DOCUMENT = "temporal-openapiv2.json"


def default_spec_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "..", "shared", "specs"))


def _template_regex(template):
    pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
    return re.compile("^" + pattern + "$")


def _camel(name):
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _query_ok(value, param):
    kind, fmt = param.get("type"), param.get("format")
    if kind == "integer" or (kind == "string" and fmt in ("int64", "uint64")):
        return re.match(r"^-?[0-9]+$", value) is not None
    if kind == "boolean":
        return value in ("true", "false", "1", "0", "t", "f", "True", "False", "TRUE", "FALSE")
    if kind == "number":
        return re.match(r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$", value) is not None
    if "enum" in param:
        return value in param["enum"] or re.match(r"^[0-9]+$", value) is not None
    return True


class Contract:
    def __init__(self, spec_dir=None):
        self.spec_dir = spec_dir or default_spec_dir()
        self.available = os.path.isfile(os.path.join(self.spec_dir, DOCUMENT))
        self.paths = []   # (regex, template, {METHOD: operation}, literal segments)
        if not self.available:
            return
        with open(os.path.join(self.spec_dir, DOCUMENT)) as f:
            self.doc = json.load(f)
        for template, item in self.doc["paths"].items():
            ops = {m.upper(): op for m, op in item.items() if m != "parameters"}
            literal = sum(1 for s in template.split("/") if s and not s.startswith("{"))
            self.paths.append((_template_regex(template), template, ops, literal))
        # Of two templates that match a path, the one with more literal segments wins, as in
        # grpc-gateway's routing.
        self.paths.sort(key=lambda p: -p[3])

    def _resolve(self, node):
        while isinstance(node, dict) and "$ref" in node:
            target = self.doc
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            node = target
        return node

    def operation(self, method, path):
        """(template, operation or None, problems) for a request line."""
        templates = []
        for regex, template, ops, _ in self.paths:
            if regex.match(path):
                if method in ops:
                    return template, ops[method], []
                templates.append(template)
        if templates:
            return templates[0], None, ["%s is not documented for %s" % (method, templates[0])]
        return None, None, ["path %s is not in the Temporal HTTP API document" % path]

    def check(self, method, path, query, body, has_body):
        """Problems with a request; empty when the documented API has it. `query` is parse_qs
        output, `body` the parsed JSON (None when there was none), has_body whether bytes came."""
        if not self.available:
            return []
        template, op, problems = self.operation(method, path)
        if op is None:
            return problems
        params = op.get("parameters", [])
        in_query = {p["name"]: p for p in params if p.get("in") == "query"}
        for name, values in query.items():
            if name in SERVER_QUERY:
                continue
            param = in_query.get(name)
            if param is None:
                problems.append("query parameter %s is not documented for %s %s" % (name, method, template))
                continue
            if len(values) > 1 and param.get("type") != "array":
                problems.append("query parameter %s given %d times" % (name, len(values)))
            for value in values:
                if not _query_ok(value, param):
                    problems.append("query parameter %s: %r is not a valid %s" %
                                    (name, value, param.get("format") or param.get("type")))
        body_param = next((p for p in params if p.get("in") == "body"), None)
        if body_param is None:
            if has_body:
                problems.append("%s %s takes no body" % (method, template))
            return problems
        if body is not None:
            problems += self._check_value(body, body_param.get("schema", {}), "body")
        return problems

    def _check_value(self, value, schema, where):
        schema = self._resolve(schema)
        if value is None:
            return []  # proto3 JSON: null means "not set"
        kind = schema.get("type")
        if kind is None and "properties" not in schema:
            return []  # e.g. v1Payload: any JSON value
        if kind == "string":
            if schema.get("format") in ("int64", "uint64"):
                if isinstance(value, bool) or not isinstance(value, (int, str)) or \
                        (isinstance(value, str) and not re.match(r"^-?[0-9]+$", value)):
                    return ["%s: expected an int64 (a number or a decimal string)" % where]
                return []
            if not isinstance(value, str):
                return ["%s: expected a string" % where]
            if "enum" in schema and value not in schema["enum"]:
                return ["%s: %r is not one of %s" % (where, value, schema["enum"])]
            return []
        if kind == "integer":
            if isinstance(value, bool) or not (isinstance(value, int) or
                                               (isinstance(value, str) and re.match(r"^-?[0-9]+$", value))):
                return ["%s: expected an integer" % where]
            return []
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return ["%s: expected a number" % where]
            return []
        if kind == "boolean":
            return [] if isinstance(value, bool) else ["%s: expected a boolean" % where]
        if kind == "array":
            if not isinstance(value, list):
                return ["%s: expected an array" % where]
            problems = []
            for i, item in enumerate(value):
                problems += self._check_value(item, schema.get("items", {}), "%s[%d]" % (where, i))
            return problems
        # an object: a message (properties) or a map (additionalProperties)
        if not isinstance(value, dict):
            return ["%s: expected an object" % where]
        problems = []
        props = schema.get("properties")
        if props is None:
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict):
                for key, item in value.items():
                    problems += self._check_value(item, extra, "%s.%s" % (where, key))
            return problems
        for key, item in value.items():
            name = key if key in props else _camel(key)
            if name not in props:
                problems.append("%s.%s: not a documented field" % (where, key))
                continue
            problems += self._check_value(item, props[name], "%s.%s" % (where, key))
        return problems
