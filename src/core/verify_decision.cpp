#include "verify_decision.hpp"
#include "cpp_only.hpp"  // last: proves no PostgreSQL header came in above

namespace gateway::api_key {

std::string_view reason_name(Reason reason) noexcept {
  switch (reason) {
    case Reason::kOk: return "ok";
    case Reason::kMalformed: return "malformed";
    case Reason::kUnknown: return "unknown";
    case Reason::kRevoked: return "revoked";
    case Reason::kExpired: return "expired";
    case Reason::kWrongInterface: return "wrong_interface";
    case Reason::kRateLimited: return "rate_limited";
    case Reason::kInsufficientScope: return "insufficient_scope";
    case Reason::kUsageExceeded: return "usage_exceeded";
  }
  return "unknown";
}

Reason check_scope(const ScopeSet& held, const std::optional<std::uint64_t>& required) noexcept {
  if (!required) return Reason::kOk;
  const std::size_t n = held.count < kMaxScopes ? held.count : kMaxScopes;
  for (std::size_t i = 0; i < n; ++i) {
    if (held.hashes[i] == *required) return Reason::kOk;
  }
  return Reason::kInsufficientScope;
}

bool needs_interface_project(const KeyRow& row,
                             const std::optional<KeyId>& requested_interface) noexcept {
  return row.hash_matches && requested_interface.has_value() && !row.bound_interface.has_value();
}

Reason decide(const KeyRow& row, const std::optional<KeyId>& requested_interface,
              std::int64_t now, const std::optional<KeyId>& requested_project) noexcept {
  if (!row.hash_matches) return Reason::kUnknown;
  if (!row.is_active || (row.revoked_at && *row.revoked_at <= now)) return Reason::kRevoked;
  if (row.expires_at && *row.expires_at <= now) return Reason::kExpired;
  if (row.bound_interface && row.bound_interface != requested_interface) {
    return Reason::kWrongInterface;
  }
  if (!row.bound_interface && requested_interface && requested_project != row.project) {
    return Reason::kWrongInterface;  // another project's interface, or none at all
  }
  return Reason::kOk;
}

}  // namespace gateway::api_key
