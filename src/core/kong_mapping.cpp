#include "kong_mapping.hpp"

#include <cmath>

#include "kong_ids.hpp"
#include "cpp_only.hpp"  // last: proves no PostgreSQL header came in above

namespace gateway::kong {
namespace {

std::string name_for(const char* prefix, const std::string& row_id) {
  return std::string(prefix) + row_id;
}

KongObject object(const char* collection, const char* kind, const std::string& row_id,
                  const std::string& parent_path = "") {
  KongObject o;
  o.collection = collection;
  o.id = object_id(kind, row_id);
  const std::string col = collection;
  if (col == "key-auths") {
    o.path = parent_path + "/key-auth/" + o.id;
  } else if (col == "acls") {
    o.path = parent_path + "/acls/" + o.id;
  } else {
    o.path = "/" + col + "/" + o.id;
  }
  return o;
}

struct InterfaceObjects {
  KongObject service, route, key_auth, acl, rate_limiting;
};

InterfaceObjects interface_objects(const std::string& id) {
  return {object("services", "service", id), object("routes", "route", id),
          object("plugins", "plugin:key-auth", id), object("plugins", "plugin:acl", id),
          object("plugins", "plugin:rate-limiting", id)};
}

struct KeyObjects {
  KongObject consumer, credential, acl;
};

KeyObjects key_objects(const std::string& id) {
  KongObject consumer = object("consumers", "consumer", id);
  return {consumer, object("key-auths", "key-auth", id, consumer.path),
          object("acls", "acl", id, consumer.path)};
}

}  // namespace

std::string acl_group(const std::string& interface_id) { return "gw-" + interface_id; }

Json service_target(const std::string& url) {
  auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos) throw MappingError("upstream URL has no scheme: " + url);
  std::string protocol = url.substr(0, scheme_end);
  if (protocol != "http" && protocol != "https") {
    throw MappingError("upstream URL must be http or https: " + url);
  }
  std::string rest = url.substr(scheme_end + 3);
  std::string authority = rest.substr(0, rest.find('/'));
  std::string path = authority.size() < rest.size() ? rest.substr(authority.size()) : "";
  if (authority.empty() || authority.find('@') != std::string::npos) {
    throw MappingError("upstream URL needs a host (and no user info): " + url);
  }
  std::string host = authority;
  std::int64_t port = protocol == "https" ? 443 : 80;
  auto colon = authority.rfind(':');
  if (colon != std::string::npos && authority.back() != ']') {
    host = authority.substr(0, colon);
    std::string digits = authority.substr(colon + 1);
    if (digits.empty() || digits.size() > 5 || digits.find_first_not_of("0123456789") != std::string::npos) {
      throw MappingError("upstream URL has a bad port: " + url);
    }
    port = std::stoll(digits);
  }
  if (host.empty()) throw MappingError("upstream URL needs a host: " + url);
  Json target = {{"protocol", protocol}, {"host", host}, {"port", port}};
  target["path"] = path.empty() ? Json(nullptr) : Json(path);
  return target;
}

Desired desired_for_interface(const InterfaceRow& row, const MappingSettings& settings) {
  InterfaceObjects o = interface_objects(row.id);
  Desired d;
  if (!row.exists || !row.is_public) {
    d.absent = {o.rate_limiting, o.acl, o.key_auth, o.route, o.service};
    return d;
  }
  Json tags = Json::array({settings.owner_tag});
  std::string base = settings.upstream_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  o.service.fields = service_target(base + "/" + row.id);
  o.service.fields["name"] = name_for("gw-", row.id);
  o.service.fields["tags"] = tags;

  o.route.fields = {{"name", name_for("gw-", row.id)},
                    {"methods", Json::array({row.http_method})},
                    {"paths", Json::array({row.http_path})},
                    {"strip_path", true},
                    {"service", {{"id", o.service.id}}},
                    {"tags", tags}};
  d.present = {o.service, o.route};

  Json route_ref = {{"id", o.route.id}};
  if (row.auth_type == "api_key") {
    o.key_auth.fields = {{"name", "key-auth"},
                         {"route", route_ref},
                         {"config", {{"key_names", Json::array({settings.key_header})},
                                     {"hide_credentials", true},
                                     {"key_in_header", true},
                                     {"key_in_query", false},
                                     {"key_in_body", false}}},
                         {"tags", tags}};
    o.acl.fields = {{"name", "acl"},
                    {"route", route_ref},
                    {"config", {{"allow", Json::array({acl_group(row.id)})},
                                {"hide_groups_header", true}}},
                    {"tags", tags}};
    d.present.push_back(o.key_auth);
    d.present.push_back(o.acl);
  } else {
    d.absent.push_back(o.acl);
    d.absent.push_back(o.key_auth);
  }
  if (row.rate_limit_per_minute && *row.rate_limit_per_minute > 0) {
    o.rate_limiting.fields = {{"name", "rate-limiting"},
                              {"route", route_ref},
                              {"config", {{"minute", *row.rate_limit_per_minute},
                                          {"policy", "local"},
                                          {"limit_by", row.auth_type == "api_key" ? "consumer" : "ip"}}},
                              {"tags", tags}};
    d.present.push_back(o.rate_limiting);
  } else {
    d.absent.insert(d.absent.begin(), o.rate_limiting);
  }
  return d;
}

Desired desired_for_key(const KeyRow& row, const MappingSettings& settings, double now) {
  KeyObjects o = key_objects(row.id);
  Desired d;
  // The key stops being valid at the earlier of its revocation (a rotation's grace end) and
  // its expiry; until then Kong must accept it, after that it must not exist there.
  std::optional<double> ends;
  if (row.revoked_at) ends = *row.revoked_at;
  if (row.expires_at && (!ends || *row.expires_at < *ends)) ends = *row.expires_at;
  bool valid = row.exists && row.is_active && !row.interface_id.empty() && (!ends || *ends > now);
  if (!valid) {
    d.absent = {o.acl, o.credential, o.consumer};
    return d;
  }
  if (ends) d.next_change = *ends;
  Json tags = Json::array({settings.owner_tag});
  o.consumer.fields = {{"username", name_for("gw-key-", row.id)}, {"tags", tags}};
  o.credential.fields = {{"tags", tags}};
  o.credential.key = row.plaintext;
  if (ends) {
    // Kong deletes the credential itself when the ttl runs out, even if we cannot reach it then.
    o.credential.fields["ttl"] = static_cast<std::int64_t>(std::ceil(*ends - now));
  }
  o.acl.fields = {{"group", acl_group(row.interface_id)}, {"tags", tags}};
  d.present = {o.consumer, o.credential, o.acl};
  return d;
}

std::vector<KongObject> objects_of(const std::string& kind, const std::string& row_id) {
  if (kind == "public_interface") {
    InterfaceObjects o = interface_objects(row_id);
    return {o.service, o.route, o.key_auth, o.acl, o.rate_limiting};
  }
  if (kind == "api_key") {
    KeyObjects o = key_objects(row_id);
    return {o.consumer, o.credential, o.acl};
  }
  return {};
}

std::string fingerprint(const KongObject& object) {
  Json owned = object.fields;
  owned.erase("key");
  owned.erase("ttl");
  return to_string(uuid_v5(kNamespace, object.path + " " + owned.dump())).substr(0, 18);
}

bool fields_match(const Json& wanted, const Json& remote) {
  if (wanted.is_object()) {
    if (!remote.is_object()) return false;
    for (auto it = wanted.begin(); it != wanted.end(); ++it) {
      auto found = remote.find(it.key());
      if (found == remote.end()) {
        if (!it.value().is_null()) return false;
        continue;
      }
      if (!fields_match(it.value(), *found)) return false;
    }
    return true;
  }
  if (wanted.is_number() && remote.is_number()) {
    return wanted.get<double>() == remote.get<double>();
  }
  return wanted == remote;
}

}  // namespace gateway::kong
