#include "core/token_bucket.hpp"

#include <gtest/gtest.h>

using gateway::take_token;
using gateway::TokenBucket;

constexpr std::int64_t kSecond = 1000000;
constexpr std::int64_t kStart = 1000 * kSecond;

TEST(TokenBucket, NewBucketAllowsAFullMinuteBurstThenRefuses) {
  TokenBucket bucket;
  for (int i = 0; i < 60; ++i) {
    auto d = take_token(bucket, 60, kStart);
    ASSERT_TRUE(d.allowed) << i;
    EXPECT_EQ(d.remaining, 59 - i);
  }
  auto refused = take_token(bucket, 60, kStart);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.remaining, 0);
  EXPECT_EQ(refused.retry_after_us, kSecond);  // 60 per minute: one token per second
}

TEST(TokenBucket, RefillsContinuouslyAndCapsAtTheLimit) {
  TokenBucket bucket;
  for (int i = 0; i < 6; ++i) take_token(bucket, 6, kStart);  // empty; 1 token per 10 s
  EXPECT_FALSE(take_token(bucket, 6, kStart + 9 * kSecond).allowed);
  EXPECT_TRUE(take_token(bucket, 6, kStart + 10 * kSecond).allowed);
  // An hour idle refills to the cap, not beyond.
  auto d = take_token(bucket, 6, kStart + 3600 * kSecond);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.remaining, 5);
}

TEST(TokenBucket, RetryAfterCountsDownAsTimePasses) {
  TokenBucket bucket;
  take_token(bucket, 1, kStart);
  EXPECT_EQ(take_token(bucket, 1, kStart).retry_after_us, 60 * kSecond);
  EXPECT_EQ(take_token(bucket, 1, kStart + 45 * kSecond).retry_after_us, 15 * kSecond);
}

TEST(TokenBucket, LoweringTheLimitScalesWhatIsLeft) {
  TokenBucket bucket;
  take_token(bucket, 100, kStart);  // 99 left of 100
  auto d = take_token(bucket, 10, kStart);  // 9.9 of 10, minus one
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.remaining, 8);
}

TEST(TokenBucket, ClockSteppingBackRefillsNothing) {
  TokenBucket bucket;
  take_token(bucket, 1, kStart);
  EXPECT_FALSE(take_token(bucket, 1, kStart - 3600 * kSecond).allowed);
  EXPECT_FALSE(take_token(bucket, 1, kStart + 30 * kSecond).allowed);
  EXPECT_TRUE(take_token(bucket, 1, kStart + 60 * kSecond).allowed);
}
