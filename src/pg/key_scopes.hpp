// Scopes as verify compares them: a keyed 64-bit hash (SipHash via crypto_shorthash, keyed from
// the master key) per scope string, so a key row in memory stays fixed-size. Keyed, so nobody
// can choose two scope names that collide.
#pragma once

#include <cstdint>
#include <string_view>

#include "../core/secure_buffer.hpp"
#include "../core/verify_decision.hpp"
#include "postgres.hpp"

namespace gateway::pg {

// `key` is scope_hash_key(), fetched by the caller outside any pg_call (loading it may throw).
std::uint64_t scope_hash(std::string_view scope, const SecureBuffer& key) noexcept;

// Hashes the elements of a text[] into `out` (at most kMaxScopes; NULL elements skipped).
// PostgreSQL code: call inside pg_call.
void hash_scope_array(Datum array, const SecureBuffer& key, api_key::ScopeSet& out);

}  // namespace gateway::pg
