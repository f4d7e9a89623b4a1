#include "core/failure_streak.hpp"

#include <gtest/gtest.h>

namespace gateway::sync {
namespace {

TEST(FailureStreak, BacksOffExponentiallyUpToTheCap) {
  FailureStreak streak;
  BackoffSettings backoff{100, 1000};
  EXPECT_FALSE(streak.failing());
  EXPECT_EQ(streak.fail(0, 0.0, backoff, "read-only"), FailureStreak::News::kStarted);
  EXPECT_EQ(streak.retry_at_ms(), 50);   // half of 100 with no jitter
  EXPECT_TRUE(streak.waiting(49));
  EXPECT_FALSE(streak.waiting(50));
  EXPECT_EQ(streak.fail(50, 0.0, backoff, "read-only"), FailureStreak::News::kNone);
  EXPECT_EQ(streak.retry_at_ms(), 150);  // 200 / 2
  std::int64_t now = 150;
  for (int i = 0; i < 20; ++i) {
    streak.fail(now, 0.999, backoff, "read-only");
    EXPECT_LE(streak.retry_at_ms() - now, 1000);
    now = streak.retry_at_ms();
  }
  EXPECT_GE(streak.retry_at_ms() - now + 1000, 500);
  EXPECT_EQ(streak.failures(), 22);
  EXPECT_EQ(streak.since_ms(), 0);
}

TEST(FailureStreak, ReportsOnlyChanges) {
  FailureStreak streak;
  BackoffSettings backoff{100, 1000};
  int logged = 0;
  for (int i = 0; i < 1000; ++i) logged += streak.fail(i, 0.5, backoff, "read-only") != FailureStreak::News::kNone;
  EXPECT_EQ(logged, 1);
  EXPECT_EQ(streak.fail(2000, 0.5, backoff, "disk full"), FailureStreak::News::kChanged);
  EXPECT_EQ(streak.succeed(), 1001);
  EXPECT_FALSE(streak.failing());
  EXPECT_EQ(streak.retry_at_ms(), 0);
  EXPECT_EQ(streak.succeed(), 0);
  EXPECT_EQ(streak.fail(3000, 0.5, backoff, "disk full"), FailureStreak::News::kStarted);
}

}  // namespace
}  // namespace gateway::sync
