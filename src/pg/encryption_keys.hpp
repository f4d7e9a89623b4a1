// The backend's view of gateway.encryption_keys, cached until a committed change to that table
// (signalled through shared memory by a trigger), so encrypting and decrypting run no query.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace gateway::pg {

struct EncryptionKey {
  std::uint32_t id = 0;
  std::string state;               // active, decrypt_only, retired
  std::string master_fingerprint;  // the master key it is derived from
};

std::optional<EncryptionKey> find_encryption_key(std::uint32_t id);

// The active key; the very first one is created (as key 1) on first use. Throws GW004 when it
// belongs to another master key than the server's.
EncryptionKey active_encryption_key();

}  // namespace gateway::pg
