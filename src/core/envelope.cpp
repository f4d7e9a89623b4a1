#include "envelope.hpp"

#include <sodium.h>

#include <cstring>

#include "error.hpp"
#include "cpp_only.hpp"  // last: proves no PostgreSQL header came in above

namespace gateway::crypto {
namespace {

static_assert(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES == kNonceBytes);
static_assert(crypto_aead_xchacha20poly1305_ietf_ABYTES == kTagBytes);
static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == kKeyBytes);

// Associated data: header || context, in one buffer because libsodium takes one.
std::vector<std::uint8_t> associated_data(const std::uint8_t* header, std::string_view context) {
  std::vector<std::uint8_t> ad(kHeaderBytes + context.size());
  std::memcpy(ad.data(), header, kHeaderBytes);
  if (!context.empty()) std::memcpy(ad.data() + kHeaderBytes, context.data(), context.size());
  return ad;
}

void check_key(const SecureBuffer& key) {
  if (key.size() != kKeyBytes) throw Error(sqlstate::kInternalError, "encryption key has the wrong size");
}

}  // namespace

std::optional<EnvelopeView> parse_envelope(const std::uint8_t* data, std::size_t len) noexcept {
  if (data == nullptr || len < kOverheadBytes || data[0] != kEnvelopeVersion) return std::nullopt;
  EnvelopeView view{};
  view.version = data[0];
  view.key_id = (std::uint32_t{data[1]} << 24) | (std::uint32_t{data[2]} << 16) |
                (std::uint32_t{data[3]} << 8) | std::uint32_t{data[4]};
  view.header = data;
  view.nonce = data + kHeaderBytes;
  view.sealed = data + kHeaderBytes + kNonceBytes;
  view.sealed_len = len - kHeaderBytes - kNonceBytes;
  return view;
}

std::vector<std::uint8_t> seal(const SecureBuffer& key, std::uint32_t key_id,
                               std::string_view plaintext, std::string_view context) {
  check_key(key);
  ensure_sodium();
  std::vector<std::uint8_t> out(kOverheadBytes + plaintext.size());
  out[0] = kEnvelopeVersion;
  out[1] = static_cast<std::uint8_t>(key_id >> 24);
  out[2] = static_cast<std::uint8_t>(key_id >> 16);
  out[3] = static_cast<std::uint8_t>(key_id >> 8);
  out[4] = static_cast<std::uint8_t>(key_id);
  randombytes_buf(out.data() + kHeaderBytes, kNonceBytes);
  std::vector<std::uint8_t> ad = associated_data(out.data(), context);
  unsigned long long sealed_len = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(
      out.data() + kHeaderBytes + kNonceBytes, &sealed_len,
      reinterpret_cast<const unsigned char*>(plaintext.data()), plaintext.size(), ad.data(),
      ad.size(), nullptr, out.data() + kHeaderBytes, key.data());
  out.resize(kHeaderBytes + kNonceBytes + sealed_len);
  return out;
}

void open_into(const SecureBuffer& key, const EnvelopeView& envelope, std::string_view context,
               std::uint8_t* out) {
  check_key(key);
  std::vector<std::uint8_t> ad = associated_data(envelope.header, context);
  unsigned long long plain_len = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, &plain_len, nullptr, envelope.sealed,
                                                 envelope.sealed_len, ad.data(), ad.size(),
                                                 envelope.nonce, key.data()) != 0) {
    sodium_memzero(out, plaintext_size(envelope));
    throw Error(kDecryptFailed, "could not decrypt credentials",
                "The ciphertext was altered or truncated, or it belongs to another context (it "
                "was copied from another row).",
                "Decrypt with the context it was encrypted with; a damaged value must be set "
                "again from its source.");
  }
}

SecureBuffer open(const SecureBuffer& key, const EnvelopeView& envelope, std::string_view context) {
  // One spare byte so an empty plaintext still gets a buffer.
  SecureBuffer plaintext(plaintext_size(envelope) + 1);
  open_into(key, envelope, context, plaintext.data());
  plaintext.truncate(plaintext_size(envelope));
  return plaintext;
}

}  // namespace gateway::crypto
