#include "key_hash.hpp"

#include <sodium.h>

#include "error.hpp"
#include "cpp_only.hpp"  // last: proves no PostgreSQL header came in above

namespace gateway::api_key {

const SecureBuffer& Hasher::pepper(int version) {
  if (version < kMinPepperVersion || version > kMaxPepperVersion) {
    throw Error(sqlstate::kInvalidParameterValue,
                "API key pepper version " + std::to_string(version) + " is out of range",
                "Versions run from 1 to 32767.");
  }
  auto it = peppers_.find(version);
  if (it == peppers_.end()) {
    it = peppers_.emplace(version, master_.derive(kApiKeyPepperContext,
                                                  static_cast<std::uint64_t>(version)))
             .first;
  }
  return it->second;
}

Hash Hasher::hash(std::string_view key, int pepper_version) {
  const SecureBuffer& key_pepper = pepper(pepper_version);
  Hash out{};
  crypto_generichash(out.data(), out.size(), reinterpret_cast<const unsigned char*>(key.data()),
                     key.size(), key_pepper.data(), key_pepper.size());
  return out;
}

bool Hasher::matches(const Hash& computed, const std::uint8_t* stored, std::size_t stored_len) {
  static_assert(kHashBytes == crypto_verify_32_BYTES);
  if (stored == nullptr || stored_len != computed.size()) return false;
  // Constant time, like sodium_memcmp, but vectorised: sodium_memcmp's byte loop through volatile
  // pointers cost a hot verify about 60 ns.
  return crypto_verify_32(computed.data(), stored) == 0;
}

}  // namespace gateway::api_key
