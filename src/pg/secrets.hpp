// The master keys as each backend sees them: loaded on first use from gateway.master_key_file
// (and, while a master key rotation is under way, gateway.previous_master_key_file), kept in
// guarded memory for the life of the process, with the keys derived from them.
#pragma once

#include <cstdint>
#include <string>

#include "../core/key_hash.hpp"
#include "../core/secure_buffer.hpp"

namespace gateway::pg {

// Throws gateway::Error (with a hint) when the key file is missing or unsafe.
api_key::Hasher& api_key_hasher();

// Public fingerprint of the current master key.
const std::string& master_key_fingerprint();

// While a master key rotation runs (gateway.previous_master_key_file set): the hasher of API keys
// issued under the previous master key, and that key's fingerprint. nullptr otherwise. Throws
// gateway::Error when the file is set but missing or unsafe.
api_key::Hasher* previous_api_key_hasher();
const std::string* previous_master_key_fingerprint();

// The credential encryption key `key_id`, derived from the master key whose fingerprint is
// `master_fingerprint` (the current one, or the previous one during a rotation). Throws
// gateway::Error(GW004) when neither master key has that fingerprint.
const SecureBuffer& credential_key(std::uint32_t key_id, const std::string& master_fingerprint);

// The key that seals API keys on their way to Kong (see key_handoff.cpp).
const SecureBuffer& handoff_key();

// The key of the per-call tokens that Nexus completion callbacks carry (callback_listener.cpp).
const SecureBuffer& callback_key();

// The key of the hashes verify compares scopes by (key_scopes.cpp). Only hashes in memory, never
// stored: a new master key changes them all, harmlessly.
const SecureBuffer& scope_hash_key();

}  // namespace gateway::pg
