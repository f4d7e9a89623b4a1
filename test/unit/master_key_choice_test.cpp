#include "core/master_key_choice.hpp"

#include <gtest/gtest.h>

namespace ak = gateway::api_key;

namespace {

ak::Fingerprint fp(const char* text) {
  ak::Fingerprint out{};
  EXPECT_TRUE(ak::parse_fingerprint(text, out)) << text;
  return out;
}

}  // namespace

TEST(MasterKeyChoice, ParsesOnlySixteenLowerCaseHexCharacters) {
  ak::Fingerprint out{};
  EXPECT_TRUE(ak::parse_fingerprint("0123456789abcdef", out));
  EXPECT_EQ(std::string(out.begin(), out.end()), "0123456789abcdef");
  ak::Fingerprint untouched = out;
  EXPECT_FALSE(ak::parse_fingerprint("0123456789ABCDEF", out));
  EXPECT_FALSE(ak::parse_fingerprint("0123456789abcde", out));
  EXPECT_FALSE(ak::parse_fingerprint("0123456789abcdef0", out));
  EXPECT_FALSE(ak::parse_fingerprint("0123456789abcdeg", out));
  EXPECT_FALSE(ak::parse_fingerprint("", out));
  EXPECT_EQ(out, untouched);
}

TEST(MasterKeyChoice, ClassifiesByMarker) {
  ak::Fingerprint current = fp("1111111111111111"), previous = fp("2222222222222222"),
                  other = fp("3333333333333333");
  EXPECT_EQ(ak::classify(&current, current, &previous), ak::HashedUnder::kCurrent);
  EXPECT_EQ(ak::classify(&current, current, nullptr), ak::HashedUnder::kCurrent);
  EXPECT_EQ(ak::classify(&previous, current, &previous), ak::HashedUnder::kPrevious);
  EXPECT_EQ(ak::classify(nullptr, current, &previous), ak::HashedUnder::kUnmarked);
  EXPECT_EQ(ak::classify(nullptr, current, nullptr), ak::HashedUnder::kUnmarked);
  EXPECT_EQ(ak::classify(&other, current, &previous), ak::HashedUnder::kOther);
  // Once the previous key file is gone, its rows are on an unknown key.
  EXPECT_EQ(ak::classify(&previous, current, nullptr), ak::HashedUnder::kOther);
}

TEST(MasterKeyChoice, CurrentKeysCostOneHashAndNoRehash) {
  for (bool previous : {false, true}) {
    ak::VerifyPlan plan = ak::plan_verify(ak::HashedUnder::kCurrent, previous);
    ASSERT_EQ(plan.count, 1);
    EXPECT_EQ(plan.tries[0], ak::Master::kCurrent);
    EXPECT_FALSE(plan.rehash_on_match);
  }
}

TEST(MasterKeyChoice, PreviousKeysTryOnlyThePreviousKeyAndMove) {
  ak::VerifyPlan plan = ak::plan_verify(ak::HashedUnder::kPrevious, true);
  ASSERT_EQ(plan.count, 1);
  EXPECT_EQ(plan.tries[0], ak::Master::kPrevious);
  EXPECT_TRUE(plan.rehash_on_match);
  EXPECT_EQ(ak::plan_verify(ak::HashedUnder::kPrevious, false).count, 0);
}

TEST(MasterKeyChoice, UnmarkedKeysTryCurrentThenPrevious) {
  ak::VerifyPlan plan = ak::plan_verify(ak::HashedUnder::kUnmarked, true);
  ASSERT_EQ(plan.count, 2);
  EXPECT_EQ(plan.tries[0], ak::Master::kCurrent);
  EXPECT_EQ(plan.tries[1], ak::Master::kPrevious);
  EXPECT_TRUE(plan.rehash_on_match);
  plan = ak::plan_verify(ak::HashedUnder::kUnmarked, false);
  ASSERT_EQ(plan.count, 1);
  EXPECT_EQ(plan.tries[0], ak::Master::kCurrent);
  EXPECT_TRUE(plan.rehash_on_match);  // written back with its marker
}

TEST(MasterKeyChoice, KeysUnderAnUnknownMasterKeyMatchNothing) {
  EXPECT_EQ(ak::plan_verify(ak::HashedUnder::kOther, true).count, 0);
  EXPECT_EQ(ak::plan_verify(ak::HashedUnder::kOther, false).count, 0);
}
