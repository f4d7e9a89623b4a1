// API keys across a master-key rotation, on the verify side: which master key's pepper a stored
// hash is checked under (one hash for keys on the current master key), and the hand-off of a new
// hash to the worker when a key matched under the previous master key or carried no marker.
#pragma once

#include <string_view>

#include "key_lookup.hpp"

namespace gateway::pg {

struct SecretMatch {
  bool matches = false;
  bool rehash = false;  // matched, but the row should move to the current master key
};

// Throws gateway::Error when a master key file it needs is missing or unsafe. With `memoize`
// (the row came from the verify cache: a key in use), a key this backend saw match before is not
// hashed again (core/hash_memo.hpp).
SecretMatch match_secret(std::string_view key, const StoredKey& stored, bool memoize);

// Computes the key's hash under the current master key and queues it for the worker. Writes
// nothing itself; does nothing on a hot standby (the primary rehashes the key on a verify there)
// or when this backend queued the same key moments ago.
void request_rehash(std::string_view key, const StoredKey& stored);

}  // namespace gateway::pg
