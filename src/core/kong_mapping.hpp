// Desired state -> Kong objects. Pure functions from the rows behind a sync job to the Kong
// objects that must exist (with the fields we own) and the ones that must not; the job runner
// turns them into PUTs and DELETEs, reconciliation compares them with what Kong holds.
//
//   public interface I (published)      service, route, plugins key-auth + acl (auth api_key),
//                                       rate-limiting (when limited)
//   API key K bound to I (valid)        consumer, key-auth credential, acl group of I, whether
//                                       or not I is published at the moment (docs/public-interfaces.md)
//
// Every object has a deterministic id (kong_ids.hpp) and carries the owner tag.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "secure_buffer.hpp"

namespace gateway::kong {

using Json = nlohmann::json;

struct MappingSettings {
  std::string owner_tag;     // on every object we create; the only objects we ever touch
  std::string upstream_url;  // the app's execution endpoint; the interface id is appended
  std::string key_header = "X-API-Key";
};

// The rows behind a job. `exists` is false when the row is gone (then everything is removed).
struct InterfaceRow {
  std::string id;
  bool exists = false;
  bool is_public = false;
  std::string http_method, http_path, auth_type;
  std::optional<std::int64_t> rate_limit_per_minute;
};

// The plaintext of a key on its way to Kong: guarded memory, wiped when the last holder lets go.
// Shared, never copied: every KongObject and job step that needs it points at the one buffer.
using KeySecret = std::shared_ptr<const SecureBuffer>;

// Whether the key's interface is published does not matter: its consumer stays in Kong for as
// long as the key is valid, so unpublishing and republishing never needs the plaintext again.
struct KeyRow {
  std::string id;
  bool exists = false;
  std::string interface_id;
  bool is_active = false;
  std::optional<double> revoked_at, expires_at;  // epoch seconds
  bool has_sealed_key = false;  // the key is still waiting to be handed to Kong
  KeySecret plaintext;          // opened by the caller when has_sealed_key
};

// One Kong object. `fields` are the ones we own (sent on PUT, compared on reconcile).
struct KongObject {
  std::string collection;  // services, routes, plugins, consumers, key-auths, acls
  std::string id;
  std::string path;        // Admin API path of the object
  Json fields;  // never the key itself: that stays in `key` until the request is built
  KeySecret key;  // a key-auth credential whose key we send
  bool carries_key() const { return key != nullptr; }
};

struct Desired {
  std::vector<KongObject> present;  // in dependency order (create order)
  std::vector<KongObject> absent;   // in reverse dependency order (delete order)
  std::optional<double> next_change;  // epoch seconds when this row's objects change by time
};

// Thrown for a row that cannot be mapped (a bad upstream URL setting, for instance).
struct MappingError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

Desired desired_for_interface(const InterfaceRow& row, const MappingSettings& settings);
Desired desired_for_key(const KeyRow& row, const MappingSettings& settings, double now);

// Every Kong object a row of this kind (public_interface, api_key) can ever have, whatever its
// state: reconciliation attributes a tagged object to its row by these ids.
std::vector<KongObject> objects_of(const std::string& kind, const std::string& row_id);

// The Kong acl group of an interface: a key of interface A is never in B's group.
std::string acl_group(const std::string& interface_id);

// True when `remote` (as Kong returns it) has every field `wanted` sets, with equal values.
bool fields_match(const Json& wanted, const Json& remote);

// A short fingerprint of the fields we own (without the key and its ttl), recorded after a
// successful sync so the next job sends only what changed.
std::string fingerprint(const KongObject& object);

// Splits an http(s) URL into Kong's service fields protocol, host, port and path.
Json service_target(const std::string& url);

}  // namespace gateway::kong
