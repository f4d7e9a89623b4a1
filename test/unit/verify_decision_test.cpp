#include "core/verify_decision.hpp"

#include <gtest/gtest.h>

namespace ak = gateway::api_key;
using ak::Reason;

namespace {
constexpr std::int64_t kNow = 1000;
gateway::KeyId interface_id(std::uint8_t n) {
  gateway::KeyId id{};
  id[0] = n;
  return id;
}
ak::KeyRow valid_row() {
  ak::KeyRow row;
  row.hash_matches = true;
  row.is_active = true;
  return row;
}
}  // namespace

TEST(VerifyDecision, ValidKeyIsOk) { EXPECT_EQ(ak::decide(valid_row(), {}, kNow), Reason::kOk); }

TEST(VerifyDecision, WrongSecretIsUnknownWhateverElseIsTrue) {
  ak::KeyRow row = valid_row();
  row.hash_matches = false;
  row.is_active = false;
  row.expires_at = 0;
  EXPECT_EQ(ak::decide(row, {}, kNow), Reason::kUnknown);
}

TEST(VerifyDecision, RevocationIsCheckedBeforeExpiry) {
  ak::KeyRow row = valid_row();
  row.is_active = false;
  row.revoked_at = kNow - 1;
  row.expires_at = kNow - 1;
  EXPECT_EQ(ak::decide(row, {}, kNow), Reason::kRevoked);
}

TEST(VerifyDecision, RotationGraceKeepsTheOldKeyValidUntilItEnds) {
  ak::KeyRow row = valid_row();
  row.revoked_at = kNow + 1;
  EXPECT_EQ(ak::decide(row, {}, kNow), Reason::kOk);
  row.revoked_at = kNow;
  EXPECT_EQ(ak::decide(row, {}, kNow), Reason::kRevoked);
}

TEST(VerifyDecision, ExpiryIsExclusive) {
  ak::KeyRow row = valid_row();
  row.expires_at = kNow + 1;
  EXPECT_EQ(ak::decide(row, {}, kNow), Reason::kOk);
  row.expires_at = kNow;
  EXPECT_EQ(ak::decide(row, {}, kNow), Reason::kExpired);
}

TEST(VerifyDecision, BoundKeysPassOnlyForTheirInterface) {
  ak::KeyRow row = valid_row();
  row.bound_interface = interface_id(1);
  EXPECT_EQ(ak::decide(row, interface_id(1), kNow), Reason::kOk);
  EXPECT_EQ(ak::decide(row, interface_id(2), kNow), Reason::kWrongInterface);
  EXPECT_EQ(ak::decide(row, std::nullopt, kNow), Reason::kWrongInterface);
}

// The reviewer's cross-tenant key: an unbound key of project P verified `ok` for an interface of
// project Q. It passes only for interfaces of its own project.
TEST(VerifyDecision, UnboundKeysPassOnlyForInterfacesOfTheirOwnProject) {
  ak::KeyRow unbound = valid_row();
  unbound.project = interface_id(7);
  EXPECT_TRUE(ak::needs_interface_project(unbound, interface_id(2)));
  EXPECT_EQ(ak::decide(unbound, interface_id(2), kNow, interface_id(7)), Reason::kOk);
  EXPECT_EQ(ak::decide(unbound, interface_id(2), kNow, interface_id(8)), Reason::kWrongInterface);
  EXPECT_EQ(ak::decide(unbound, interface_id(2), kNow, std::nullopt), Reason::kWrongInterface);
  EXPECT_EQ(ak::decide(unbound, std::nullopt, kNow), Reason::kOk);
  EXPECT_FALSE(ak::needs_interface_project(unbound, std::nullopt));
  ak::KeyRow bound = unbound;
  bound.bound_interface = interface_id(2);
  EXPECT_FALSE(ak::needs_interface_project(bound, interface_id(2)));
  ak::KeyRow wrong_secret = unbound;
  wrong_secret.hash_matches = false;
  EXPECT_FALSE(ak::needs_interface_project(wrong_secret, interface_id(2)));
}

TEST(VerifyDecision, ReasonNamesAreTheDocumentedOnes) {
  EXPECT_EQ(ak::reason_name(Reason::kOk), "ok");
  EXPECT_EQ(ak::reason_name(Reason::kMalformed), "malformed");
  EXPECT_EQ(ak::reason_name(Reason::kUnknown), "unknown");
  EXPECT_EQ(ak::reason_name(Reason::kRevoked), "revoked");
  EXPECT_EQ(ak::reason_name(Reason::kExpired), "expired");
  EXPECT_EQ(ak::reason_name(Reason::kWrongInterface), "wrong_interface");
  EXPECT_EQ(ak::reason_name(Reason::kRateLimited), "rate_limited");
}

TEST(VerifyDecision, NewReasonsHaveNames) {
  EXPECT_EQ(ak::reason_name(Reason::kInsufficientScope), "insufficient_scope");
  EXPECT_EQ(ak::reason_name(Reason::kUsageExceeded), "usage_exceeded");
  // Appended after rate_limited: audit rows store the number.
  EXPECT_EQ(static_cast<int>(Reason::kInsufficientScope), static_cast<int>(Reason::kRateLimited) + 1);
  EXPECT_EQ(static_cast<int>(Reason::kUsageExceeded), static_cast<int>(Reason::kRateLimited) + 2);
}

TEST(VerifyDecision, NoRequiredScopePassesAnyKey) {
  ak::ScopeSet none;
  EXPECT_EQ(ak::check_scope(none, std::nullopt), Reason::kOk);
}

TEST(VerifyDecision, RequiredScopeMustBeHeld) {
  ak::ScopeSet held;
  held.hashes[0] = 11;
  held.hashes[1] = 22;
  held.count = 2;
  EXPECT_EQ(ak::check_scope(held, std::uint64_t{22}), Reason::kOk);
  EXPECT_EQ(ak::check_scope(held, std::uint64_t{33}), Reason::kInsufficientScope);
  EXPECT_EQ(ak::check_scope(ak::ScopeSet{}, std::uint64_t{0}), Reason::kInsufficientScope)
      << "an empty set holds nothing, not even a hash equal to its zeroed storage";
}

TEST(VerifyDecision, ScopeCountBeyondCapacityIsClamped) {
  ak::ScopeSet held;
  held.hashes[ak::kMaxScopes - 1] = 7;
  held.count = 255;  // a corrupt count must not read past the array
  EXPECT_EQ(ak::check_scope(held, std::uint64_t{7}), Reason::kOk);
}
