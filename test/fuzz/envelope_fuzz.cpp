// libFuzzer target for the credential envelope parser and opener: any byte string must either
// fail cleanly (gateway::Error with GW001, or no parse) or open to exactly what was sealed; it
// never crashes or reads out of bounds. Seeds in test/fuzz/corpus/envelope.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "core/envelope.hpp"
#include "core/error.hpp"
#include "core/master_key.hpp"

namespace crypto = gateway::crypto;

namespace {
const gateway::SecureBuffer& fixed_key() {
  static const gateway::SecureBuffer key = [] {
    std::uint8_t bytes[32] = {42};
    return gateway::MasterKey::from_bytes(bytes, 32).derive("gwcreds1", 1);
  }();
  return key;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto view = crypto::parse_envelope(data, size);
  if (view) {
    try {
      crypto::open(fixed_key(), *view, "fuzz");
      std::abort();  // a forgery: only seal() can make an envelope that opens
    } catch (const gateway::Error& e) {
      if (std::strcmp(e.code(), crypto::kDecryptFailed) != 0) std::abort();
    }
  }
  // Whatever the input, sealing it and opening it gives it back.
  auto sealed = crypto::seal(fixed_key(), 1, std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  auto reopened = crypto::parse_envelope(sealed.data(), sealed.size());
  if (!reopened) std::abort();
  gateway::SecureBuffer plain = crypto::open(fixed_key(), *reopened, "fuzz");
  if (plain.size() != size || (size > 0 && std::memcmp(plain.data(), data, size) != 0)) std::abort();
  return 0;
}
