#include "master_key.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "error.hpp"
#include "cpp_only.hpp"  // last: proves no PostgreSQL header came in above

namespace gateway {
namespace {

// The file is small; anything larger than this is not a key file.
constexpr std::size_t kMaxFileBytes = 4096;

[[noreturn]] void fail(const std::string& path, const std::string& what, std::string detail,
                       std::string hint) {
  throw Error(sqlstate::kConfigFileError, "master key file \"" + path + "\" " + what,
              std::move(detail), std::move(hint));
}

const char* kCreateHint =
    "Create it with: openssl rand -hex 32 > FILE && chmod 600 FILE, owned by the database server "
    "user, and point gateway.master_key_file at it.";

// Reads the whole file into guarded memory, so the key never sits in ordinary heap memory.
SecureBuffer read_file(const std::string& path, std::size_t* length) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    int err = errno;
    fail(path, "cannot be opened", std::string("open() failed: ") + std::strerror(err) + ".",
         kCreateHint);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "is not a regular file", "", kCreateHint);
  }
  if (st.st_uid != ::geteuid()) {
    ::close(fd);
    fail(path, "is not owned by the database server user",
         "The file is owned by uid " + std::to_string(st.st_uid) + ", the server runs as uid " +
             std::to_string(::geteuid()) + ".",
         "Change its owner to the database server user (chown).");
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    fail(path, "is accessible by group or others",
         std::string("Its permissions are ") + mode + "; a master key must be readable by the "
         "server user only.",
         "Run: chmod 600 on the file.");
  }
  if (st.st_size <= 0 || static_cast<std::size_t>(st.st_size) > kMaxFileBytes) {
    ::close(fd);
    fail(path, "does not hold a key",
         "It is " + std::to_string(st.st_size) + " bytes long; expected 64 hexadecimal "
         "characters or 32 raw bytes.",
         kCreateHint);
  }
  SecureBuffer buffer(static_cast<std::size_t>(st.st_size));
  std::size_t done = 0;
  while (done < buffer.size()) {
    ssize_t n = ::read(fd, buffer.data() + done, buffer.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  *length = done;
  return buffer;
}

bool is_space(std::uint8_t c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

}  // namespace

MasterKey MasterKey::load_file(const std::string& path) {
  if (path.empty()) {
    throw Error(sqlstate::kConfigFileError, "gateway.master_key_file is not set",
                "pg_gateway derives its hashing and encryption keys from a master key file.",
                kCreateHint);
  }
  std::size_t length = 0;
  SecureBuffer raw = read_file(path, &length);

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
      fail(path, "does not hold a valid key",
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
