#include "key_scopes.hpp"

#include <sodium.h>

#include <cstring>


extern "C" {
#include "utils/array.h"
}

namespace gateway::pg {

std::uint64_t scope_hash(std::string_view scope, const SecureBuffer& key) noexcept {
  static_assert(crypto_shorthash_BYTES == sizeof(std::uint64_t));
  // The key is 32 bytes; SipHash takes the first 16.
  unsigned char out[crypto_shorthash_BYTES];
  crypto_shorthash(out, reinterpret_cast<const unsigned char*>(scope.data()), scope.size(),
                   key.data());
  std::uint64_t hash;
  std::memcpy(&hash, out, sizeof hash);
  return hash;
}

void hash_scope_array(Datum array, const SecureBuffer& key, api_key::ScopeSet& out) {
  ArrayType* scopes = DatumGetArrayTypeP(array);
  Datum* elements = nullptr;
  bool* nulls = nullptr;
  int count = 0;
  deconstruct_array(scopes, TEXTOID, -1, false, TYPALIGN_INT, &elements, &nulls, &count);
  out.count = 0;
  for (int i = 0; i < count && out.count < api_key::kMaxScopes; ++i) {
    if (nulls[i]) continue;
    text* scope = DatumGetTextPP(elements[i]);
    out.hashes[out.count++] =
        scope_hash(std::string_view(VARDATA_ANY(scope), VARSIZE_ANY_EXHDR(scope)), key);
  }
}

}  // namespace gateway::pg
