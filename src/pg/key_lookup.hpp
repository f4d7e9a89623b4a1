// The verify hot path's one index probe: finds an API key row by its public prefix by scanning
// the unique index directly, without SPI, a plan or an executor. Reading the table at this level
// needs no privilege of the caller, so api_key_verify does not have to be SECURITY DEFINER (and
// pay for switching user and search_path on every call); EXECUTE on it is the only gate.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "../core/key_hash.hpp"
#include "../core/master_key_choice.hpp"
#include "../core/usage_limit.hpp"
#include "../core/verify_decision.hpp"

namespace gateway::pg {

struct StoredKey {
  KeyId id{};
  KeyId user_id{};
  KeyId project_id{};
  api_key::KeyRow row;  // hash_matches is left for the caller to fill
  std::array<std::uint8_t, api_key::kHashBytes> hash{};
  std::size_t hash_len = 0;
  int hash_version = 0;
  std::int32_t rate_limit_per_minute = 0;  // 0: no limit
  // The master key the hash was made under (api_keys.master_fingerprint, 0.6.0); rows issued
  // before 0.6.0 have none (see master_key_choice.hpp for what verify does with them).
  api_key::Fingerprint master_fingerprint{};
  bool has_master_fingerprint = false;
  // last_used_at when the row was read (the worker changes it without invalidating the verify
  // cache, so a cached value may be older than the row's: record_use then records once more).
  std::optional<std::int64_t> last_used_at;
  // The usage limit (usage_limits.hpp), and scopes as keyed hashes (key_scopes.hpp).
  bool usage_limited = false;
  UsageLimitConfig usage;
  api_key::ScopeSet scopes;  // last: the verify cache copies only the scopes a key holds
};

// Throws PgError if PostgreSQL raises (e.g. the table is missing).
std::optional<StoredKey> find_key_by_prefix(std::string_view prefix);

// The project of a public interface, by one probe of its primary key; nullopt when there is no
// such interface. Verify needs it only for unbound keys asked about an interface.
std::optional<KeyId> find_interface_project(const KeyId& interface_id);

// As find_key_by_prefix, but under a snapshot taken now (GetLatestSnapshot), not the statement's:
// the verify cache fills only from a read that began after it checked the set's generation.
std::optional<StoredKey> find_key_by_prefix_latest(std::string_view prefix);

}  // namespace gateway::pg
