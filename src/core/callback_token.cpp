#include "callback_token.hpp"

#include <sodium.h>

#include <stdexcept>

namespace gateway::callback {

std::string token(const SecureBuffer& key, std::string_view call_id) {
  ensure_sodium();
  if (key.size() != crypto_generichash_KEYBYTES) {
    throw std::invalid_argument("callback token key must be 32 bytes");
  }
  unsigned char mac[32];
  crypto_generichash(mac, sizeof mac, reinterpret_cast<const unsigned char*>(call_id.data()),
                     call_id.size(), key.data(), key.size());
  const std::size_t encoded =
      sodium_base64_ENCODED_LEN(sizeof mac, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  std::string out(encoded, '\0');
  sodium_bin2base64(out.data(), out.size(), mac, sizeof mac,
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out.resize(out.size() - 1);  // the terminating NUL
  sodium_memzero(mac, sizeof mac);
  return out;
}

bool token_valid(const SecureBuffer& key, std::string_view call_id, std::string_view presented) {
  const std::string expected = token(key, call_id);
  if (presented.size() != expected.size()) return false;
  return sodium_memcmp(expected.data(), presented.data(), expected.size()) == 0;
}

}  // namespace gateway::callback
