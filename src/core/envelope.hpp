// The credential envelope: what encrypt_credentials returns and decrypt_credentials reads.
//
//   byte 0      format version (1)
//   bytes 1-4   key id, big-endian: which derived key sealed it
//   bytes 5-28  XChaCha20-Poly1305 nonce (random)
//   bytes 29-   ciphertext followed by the 16-byte Poly1305 tag
//
// The associated data is the 5 header bytes followed by the caller's context (e.g. the connector
// id), so changing the version, the key id, the context, or any byte at all makes opening fail.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "secure_buffer.hpp"

namespace gateway::crypto {

inline constexpr std::uint8_t kEnvelopeVersion = 1;
inline constexpr std::size_t kHeaderBytes = 5;
inline constexpr std::size_t kNonceBytes = 24;
inline constexpr std::size_t kTagBytes = 16;
inline constexpr std::size_t kOverheadBytes = kHeaderBytes + kNonceBytes + kTagBytes;
inline constexpr std::size_t kKeyBytes = 32;

// SQLSTATEs of decryption failures (class GW, documented in docs/credentials.md).
inline constexpr const char* kDecryptFailed = "GW001";    // tampered, truncated or wrong context
inline constexpr const char* kUnknownKeyId = "GW002";     // no such encryption key
inline constexpr const char* kKeyRetired = "GW003";       // the key was retired
inline constexpr const char* kMasterKeyChanged = "GW004";  // sealed under another master key

// A structurally valid envelope; pointers point into the parsed buffer.
struct EnvelopeView {
  std::uint8_t version;
  std::uint32_t key_id;
  const std::uint8_t* header;  // kHeaderBytes
  const std::uint8_t* nonce;   // kNonceBytes
  const std::uint8_t* sealed;  // ciphertext + tag
  std::size_t sealed_len;
};

// Checks the shape only (length, version); authenticity is checked by open().
std::optional<EnvelopeView> parse_envelope(const std::uint8_t* data, std::size_t len) noexcept;

std::vector<std::uint8_t> seal(const SecureBuffer& key, std::uint32_t key_id,
                               std::string_view plaintext, std::string_view context);

inline std::size_t plaintext_size(const EnvelopeView& envelope) noexcept {
  return envelope.sealed_len - kTagBytes;
}

// Opens into `out` (plaintext_size() bytes, owned by the caller, who wipes it after use).
// Throws gateway::Error(kDecryptFailed) when the envelope was not sealed with this key for this
// context; `out` is zeroed then.
void open_into(const SecureBuffer& key, const EnvelopeView& envelope, std::string_view context,
               std::uint8_t* out);

// The same, into guarded memory that is wiped when freed.
SecureBuffer open(const SecureBuffer& key, const EnvelopeView& envelope, std::string_view context);

}  // namespace gateway::crypto
