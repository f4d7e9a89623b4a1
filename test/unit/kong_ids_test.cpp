#include "core/kong_ids.hpp"

#include <gtest/gtest.h>

namespace gateway::kong {
namespace {

Uuid parsed(const char* text) {
  Uuid id{};
  EXPECT_TRUE(parse_uuid(text, id)) << text;
  return id;
}

// Expected values from Python's uuid.uuid5, the reference implementation of RFC 4122.
TEST(KongIds, MatchesRfc4122VersionFiveVectors) {
  EXPECT_EQ(to_string(uuid_v5(parsed("6ba7b810-9dad-11d1-80b4-00c04fd430c8"), "python.org")),
            "886313e1-3b8a-5372-9b90-0c9aee199e5d");
  EXPECT_EQ(to_string(uuid_v5(kNamespace, "")), "32738a65-d420-50e5-bb6a-e89cda628338");
  EXPECT_EQ(object_id("service", "0b5c7d6e-1111-4222-8333-944455556666"),
            "3aed34d8-fcfa-5e3d-9a00-b38eb77fef83");
}

TEST(KongIds, DifferentKindsOfOneRowGetDifferentIds) {
  const char* row = "0b5c7d6e-1111-4222-8333-944455556666";
  EXPECT_NE(object_id("service", row), object_id("route", row));
  EXPECT_EQ(object_id("route", row), object_id("route", row));
}

TEST(KongIds, ParsesOnlyCanonicalUuids) {
  Uuid id{};
  EXPECT_TRUE(parse_uuid("6BA7B810-9DAD-11D1-80B4-00C04FD430C8", id));
  EXPECT_EQ(to_string(id), "6ba7b810-9dad-11d1-80b4-00c04fd430c8");
  EXPECT_FALSE(parse_uuid("6ba7b8109dad11d180b400c04fd430c8", id));
  EXPECT_FALSE(parse_uuid("6ba7b810-9dad-11d1-80b4-00c04fd430cg", id));
  EXPECT_FALSE(parse_uuid("6ba7b810-9dad-11d1-80b4-00c04fd430c", id));
  EXPECT_FALSE(parse_uuid("", id));
}

}  // namespace
}  // namespace gateway::kong
