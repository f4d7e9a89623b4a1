#include "master_key.hpp"

#include <sodium.h>

#include <cerrno>
#include <cstring>

#include "error.hpp"
#include "private_file.hpp"
#include "cpp_only.hpp"  // last: proves no PostgreSQL header came in above

namespace gateway {
namespace {

// The file is small; anything larger than this is not a key file.
constexpr std::size_t kMaxFileBytes = 4096;

const char* kCreateHint =
    "Create it with: openssl rand -hex 32 > FILE && chmod 600 FILE, owned by the database server "
    "user, and point gateway.master_key_file at it.";

bool is_space(std::uint8_t c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

void require_path(const std::string& path) {
  if (path.empty()) {
    throw Error(sqlstate::kConfigFileError, "gateway.master_key_file is not set",
                "pg_gateway derives its hashing and encryption keys from a master key file.",
                kCreateHint);
  }
}

}  // namespace

void MasterKey::check_file(const std::string& path) {
  require_path(path);
  check_private_file(path, "master key file", kCreateHint);
}

MasterKey MasterKey::load_file(const std::string& path) {
  require_path(path);
  std::size_t length = 0;
  // Read into guarded memory, so the key never sits in ordinary heap memory.
  SecureBuffer raw = read_private_file(path, "master key file", "a key", kCreateHint, kMaxFileBytes, &length);

  SecureBuffer key(kMasterKeyBytes);
  if (length == kMasterKeyBytes) {
    std::memcpy(key.data(), raw.data(), kMasterKeyBytes);
  } else {
    std::size_t begin = 0;
    std::size_t end = length;
    while (begin < end && is_space(raw.data()[begin])) ++begin;
    while (end > begin && is_space(raw.data()[end - 1])) --end;
    std::size_t decoded = 0;
    const char* hex_end = nullptr;
    int rc = sodium_hex2bin(key.data(), kMasterKeyBytes,
                            reinterpret_cast<const char*>(raw.data() + begin), end - begin,
                            nullptr, &decoded, &hex_end);
    bool consumed_all = hex_end == reinterpret_cast<const char*>(raw.data() + end);
    if (rc != 0 || decoded != kMasterKeyBytes || !consumed_all) {
      throw Error(sqlstate::kConfigFileError, "master key file \"" + path + "\" does not hold a valid key",
                  "Expected 64 hexadecimal characters (32 bytes) or exactly 32 raw bytes.", kCreateHint);
    }
  }
  key.make_read_only();
  return MasterKey(std::move(key));
}

MasterKey MasterKey::from_bytes(const std::uint8_t* bytes, std::size_t size) {
  if (size != kMasterKeyBytes) {
    throw Error(sqlstate::kInvalidParameterValue, "a master key must be 32 bytes");
  }
  SecureBuffer key(kMasterKeyBytes);
  std::memcpy(key.data(), bytes, kMasterKeyBytes);
  key.make_read_only();
  return MasterKey(std::move(key));
}

SecureBuffer MasterKey::derive(const char (&context)[9], std::uint64_t id) const {
  static_assert(crypto_kdf_CONTEXTBYTES == 8, "libsodium KDF contexts are 8 bytes");
  static_assert(crypto_kdf_KEYBYTES == kMasterKeyBytes, "master key size is the KDF key size");
  SecureBuffer subkey(32);
  if (crypto_kdf_derive_from_key(subkey.data(), subkey.size(), id, context, key_.data()) != 0) {
    throw Error(sqlstate::kInternalError, "key derivation failed");
  }
  subkey.make_read_only();
  return subkey;
}

std::string MasterKey::fingerprint() const {
  // A fingerprint is a KDF output under its own context: it reveals nothing about other subkeys.
  SecureBuffer digest = derive("gwfinger", 1);
  char hex[17];
  sodium_bin2hex(hex, sizeof hex, digest.data(), 8);
  return hex;
}

}  // namespace gateway
