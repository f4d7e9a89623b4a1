// What api_key_verify answers once the key's row is found: the rules in one pure function, so
// the order of checks (and what each reason means) is written and tested in one place.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "usage_table.hpp"

namespace gateway::api_key {

enum class Reason : std::uint8_t {
  kOk = 0,
  kMalformed,
  kUnknown,
  kRevoked,
  kExpired,
  kWrongInterface,
  kRateLimited,
  kInsufficientScope,
  kUsageExceeded,
};

// A key's scopes as verify holds them: keyed 64-bit hashes of the scope strings (never the
// strings), fixed-size so a key row stays trivially copyable. api_key_issue allows at most
// kMaxScopes per key.
inline constexpr std::size_t kMaxScopes = 32;
struct ScopeSet {
  std::uint8_t count = 0;
  std::array<std::uint64_t, kMaxScopes> hashes{};  // last: a copy may stop after `count` of them
};

std::string_view reason_name(Reason reason) noexcept;

// The row as verify sees it. Times are microseconds on the caller's clock.
struct KeyRow {
  bool hash_matches = false;
  bool is_active = false;
  std::optional<std::int64_t> revoked_at;  // may lie in the future: end of a rotation grace
  std::optional<std::int64_t> expires_at;
  std::optional<KeyId> bound_interface;
  KeyId project{};
};

// Order: a wrong secret is `unknown` (never reveals that the prefix exists), then revoked, then
// expired, then the interface binding. A key bound to an interface passes only for exactly that
// interface, so a caller that forgets to name the interface fails closed. An unbound key passes
// for any interface of its own project and for none of another: `requested_project` is the
// requested interface's project (nullopt when no such interface exists). Rate limiting comes
// after, and only for keys that are otherwise valid.
Reason decide(const KeyRow& row, const std::optional<KeyId>& requested_interface,
              std::int64_t now, const std::optional<KeyId>& requested_project = std::nullopt) noexcept;

// The checks after decide() said ok, in this order (each only when the previous passed):
//   1. insufficient_scope: a scope is required (`required` holds its hash) and the key lacks it;
//   2. usage_exceeded: the key has a usage limit and fewer uses remain than the call costs;
//   3. rate_limited: the key's bucket is empty.
// Usage is checked before the rate limit so that an exhausted key says so (a retry would not
// help) instead of sending the client to wait. A refused call spends neither: usage is only
// taken when the rate limit admits the call too (see usage_limit.hpp).
Reason check_scope(const ScopeSet& held, const std::optional<std::uint64_t>& required) noexcept;

// Whether decide() needs the requested interface's project: only for an unbound key with a
// matching secret asked about an interface (bound keys compare ids; nothing else gets that far).
bool needs_interface_project(const KeyRow& row,
                             const std::optional<KeyId>& requested_interface) noexcept;

}  // namespace gateway::api_key
