"""Checks requests to the Kong fake against Kong's own documents in ../shared/specs.

The fake's behaviour (status codes, uniqueness, references) is written down in kong_model.py; this
module only answers "would the documented Admin API accept this request?": the path and method
must be in the OpenAPI document (or in its list of endpoints, for credential routes such as
/consumers/{c}/key-auth that the document lists but does not describe), body fields must be
properties of the entity's schema with the documented type, and plugin configuration must match
the plugin schema. When the documents are absent the check is skipped, and says so.
"""
import json
import os
import re

import mini_yaml

_TYPES = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def default_spec_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "..", "shared", "specs"))


def _template_regex(template):
    pattern = re.sub(r"\{[^}]+\}", "[^/]+", re.escape(template).replace(r"\{", "{").replace(r"\}", "}"))
    return re.compile("^" + pattern + "$")


def _type_ok(value, expected):
    if value is None:
        return True  # Kong accepts null to mean "unset" for optional fields
    if expected not in _TYPES:
        return True
    if isinstance(value, bool) and expected in ("integer", "number"):
        return False
    return isinstance(value, _TYPES[expected])


class Contract:
    def __init__(self, spec_dir=None):
        self.spec_dir = spec_dir or default_spec_dir()
        self.available = os.path.isfile(os.path.join(self.spec_dir, "kong-admin-oss-openapi.yaml"))
        self.paths = []        # (regex, template, operations)
        self.endpoints = []    # regexes from the document's list of endpoints
        self.plugins = {}
        if not self.available:
            return
        with open(os.path.join(self.spec_dir, "kong-admin-oss-openapi.yaml")) as f:
            self.doc = mini_yaml.load(f.read())
        for template, item in self.doc["paths"].items():
            if template == "/{endpoint}":
                continue  # a catch-all for HEAD/OPTIONS only
            ops = {m.upper(): op for m, op in item.items() if m != "parameters"}
            self.paths.append((_template_regex(template), template, ops))
        for listed in self._documented_endpoints():
            self.endpoints.append(_template_regex(listed))
        plugin_dir = os.path.join(self.spec_dir, "kong-plugins")
        for name in os.listdir(plugin_dir):
            if name.endswith(".json"):
                with open(os.path.join(plugin_dir, name)) as f:
                    self.plugins[name[:-5]] = json.load(f)

    def _documented_endpoints(self):
        op = self.doc["paths"].get("/endpoints", {}).get("get", {})
        for response in op.get("responses", {}).values():
            response = self._resolve(response)
            for media in response.get("content", {}).values():
                for example in media.get("examples", {}).values():
                    data = example.get("value", {}).get("data")
                    if isinstance(data, list):
                        return data
        return []

    def _resolve(self, node):
        while isinstance(node, dict) and "$ref" in node:
            target = self.doc
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            node = target
        return node

    # The request-body schemas in the document are looser than the entity schemas (they type
    # "route" as a string where JSON clients send {"id": ...}); bodies are checked against the
    # entity schema of the collection the path addresses.
    _ENTITY_SCHEMAS = {"services": "Service", "routes": "Route", "plugins": "Plugin",
                       "consumers": "Consumer"}

    def _body_schema(self, template):
        collections = [seg for seg in template.split("/") if seg and not seg.startswith("{")]
        name = self._ENTITY_SCHEMAS.get(collections[-1]) if collections else None
        return self.doc["components"]["schemas"].get(name) if name else None

    def check(self, method, path, body):
        """Returns a list of problems; empty when the documented API accepts the request."""
        if not self.available:
            return []
        problems = []
        operation = template = None
        for regex, candidate, ops in self.paths:
            if regex.match(path):
                template = candidate
                operation = ops.get(method)
                if operation is None:
                    problems.append("%s is not documented for %s" % (method, candidate))
                break
        else:
            if not any(r.match(path) for r in self.endpoints):
                problems.append("path %s is not in the Admin API document" % path)
        if operation is not None and isinstance(body, dict):
            schema = self._body_schema(template)
            if schema and "properties" in schema:
                plugin = template.endswith("/plugins") or "/plugins/" in template
                fields = {k: v for k, v in body.items() if not (plugin and k == "config")}
                problems += self._check_object(fields, schema, "")
                if plugin:
                    problems += self.check_plugin(body)
        return problems

    def check_plugin(self, body):
        schema = self.plugins.get(body.get("name"))
        if schema is None:
            return []
        top = {k: v for k, v in body.items()
               if k not in ("name", "id", "tags", "enabled", "instance_name", "created_at", "updated_at")}
        return self._check_object(top, schema, "", strict=True)

    def _check_object(self, value, schema, where, strict=True):
        problems = []
        props = schema.get("properties", {})
        for key, item in value.items():
            spot = where + key
            if key not in props:
                if strict and props:
                    problems.append("%s: not a documented field" % spot)
                continue
            prop = self._resolve(props[key])
            expected = prop.get("type")
            if not _type_ok(item, expected):
                problems.append("%s: expected %s" % (spot, expected))
                continue
            if "enum" in prop and item is not None and not isinstance(item, list) and item not in prop["enum"]:
                problems.append("%s: %r is not one of %s" % (spot, item, prop["enum"]))
            if isinstance(item, dict) and prop.get("properties"):
                problems += self._check_object(item, prop, spot + ".", strict=True)
            if isinstance(item, list) and isinstance(prop.get("items"), dict):
                sub = self._resolve(prop["items"])
                for i, element in enumerate(item):
                    if not _type_ok(element, sub.get("type")):
                        problems.append("%s[%d]: expected %s" % (spot, i, sub.get("type")))
                    elif "enum" in sub and element not in sub["enum"]:
                        problems.append("%s[%d]: %r is not one of %s" % (spot, i, element, sub["enum"]))
        return problems
