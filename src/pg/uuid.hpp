// Conversions between PostgreSQL Datums (uuid, bytea, text) and the plain values src/core works
// with.
#pragma once

#include <cstring>
#include <string>
#include <string_view>

#include "../core/usage_table.hpp"
#include "postgres.hpp"

namespace gateway::pg {

inline KeyId uuid_to_id(Datum value) {
  KeyId out;
  std::memcpy(out.data(), DatumGetUUIDP(value)->data, out.size());
  return out;
}

// The canonical text form (8-4-4-4-12 lowercase hex).
inline std::string id_to_text(const KeyId& id) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < id.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += kHex[id[i] >> 4];
    out += kHex[id[i] & 0xf];
  }
  return out;
}

// A palloc'd uuid in the current memory context.
inline Datum id_to_uuid(const KeyId& id) {
  auto* uuid = static_cast<pg_uuid_t*>(palloc(sizeof(pg_uuid_t)));
  std::memcpy(uuid->data, id.data(), id.size());
  return UUIDPGetDatum(uuid);
}

// A palloc'd bytea holding a copy of `size` bytes.
inline bytea* bytes_to_bytea(const void* data, std::size_t size) {
  auto* out = static_cast<bytea*>(palloc(VARHDRSZ + size));
  SET_VARSIZE(out, VARHDRSZ + size);
  std::memcpy(VARDATA(out), data, size);
  return out;
}

// The characters of a (detoasted) text value, valid as long as the value is.
inline std::string_view text_view(const text* value) {
  return std::string_view(VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value));
}

}  // namespace gateway::pg
