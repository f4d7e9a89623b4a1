// Deterministic identities for everything pg_gateway creates in Kong. Ids are name-based UUIDs
// (RFC 4122 version 5) of our own row ids, so a replayed or re-reconciled job upserts the same
// objects instead of creating duplicates, and an object found in Kong names the row it came from.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace gateway::kong {

using Uuid = std::array<std::uint8_t, 16>;

std::string to_string(const Uuid& id);
// Parses the canonical 36-character form (any case); false when it is not one.
bool parse_uuid(std::string_view text, Uuid& out);

// RFC 4122 version 5 (SHA-1) UUID of `name` in `space`.
Uuid uuid_v5(const Uuid& space, std::string_view name);

// The namespace of all our Kong ids.
inline constexpr Uuid kNamespace = {0x6b, 0x1f, 0x3c, 0x52, 0x9e, 0x0d, 0x4a, 0x8b,
                                    0xa7, 0x31, 0x5c, 0x2e, 0x80, 0x44, 0x19, 0xd3};

// "service:<row id>" and so on: one id per (kind, row).
inline std::string object_id(std::string_view kind, std::string_view row_id) {
  return to_string(uuid_v5(kNamespace, std::string(kind) + ":" + std::string(row_id)));
}

}  // namespace gateway::kong
