// The master key: 32 bytes read from a file that only the server user may read. Every key the
// extension uses (API key peppers, and later the credential encryption keys) is derived from it
// with libsodium's KDF, so the master key itself is never used directly.
#pragma once

#include <cstdint>
#include <string>

#include "secure_buffer.hpp"

namespace gateway {

inline constexpr std::size_t kMasterKeyBytes = 32;

// Derivation contexts (exactly 8 characters, libsodium's crypto_kdf contract). Changing one
// invalidates everything derived under it, so they are fixed forever.
inline constexpr const char kApiKeyPepperContext[] = "gwapikey";

class MasterKey {
 public:
  // Reads the key from `path`. The file must be a regular file owned by the current user with no
  // group or other permission bits, holding 64 hexadecimal characters (surrounding whitespace
  // allowed) or exactly 32 raw bytes. Throws gateway::Error with a hint on every other case.
  static MasterKey load_file(const std::string& path);

  // The file checks of load_file (set, a regular file, owner, mode) without reading the key:
  // throws the same gateway::Error. For the health check, which must never load a secret.
  static void check_file(const std::string& path);

  // For tests and tools: a key from its 32 bytes.
  static MasterKey from_bytes(const std::uint8_t* bytes, std::size_t size);

  // A 32-byte subkey for (context, id); e.g. the API key pepper of version `id`.
  SecureBuffer derive(const char (&context)[9], std::uint64_t id) const;

  // A short public fingerprint of the key, safe to store and to show in errors, so a server
  // started with another key can say so instead of failing obscurely.
  std::string fingerprint() const;

 private:
  explicit MasterKey(SecureBuffer key) : key_(std::move(key)) {}
  SecureBuffer key_;
};

}  // namespace gateway
