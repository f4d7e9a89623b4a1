#include "core/retry_policy.hpp"

#include <gtest/gtest.h>

#include <limits>

namespace gateway::sync {
namespace {

CallResult answer(long status, std::string body = "") {
  CallResult r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

TEST(RetryPolicy, ClassifiesAnswers) {
  EXPECT_EQ(classify(answer(200), false), Verdict::kDone);
  EXPECT_EQ(classify(answer(204), false), Verdict::kDone);
  EXPECT_EQ(classify(answer(404), true), Verdict::kDone);
  EXPECT_EQ(classify(answer(404), false), Verdict::kDead);
  EXPECT_EQ(classify(answer(400), false), Verdict::kDead);
  EXPECT_EQ(classify(answer(409), false), Verdict::kDead);
  EXPECT_EQ(classify(answer(405), false), Verdict::kDead);
  EXPECT_EQ(classify(answer(429), false), Verdict::kRetry);
  EXPECT_EQ(classify(answer(500), false), Verdict::kRetry);
  EXPECT_EQ(classify(answer(503), false), Verdict::kRetry);
  CallResult refused;
  refused.transport_error = "Connection refused";
  EXPECT_EQ(classify(refused, false), Verdict::kRetry);
  EXPECT_TRUE(target_failure(refused));
  EXPECT_FALSE(target_failure(answer(400)));
}

TEST(RetryPolicy, DescribesFailuresWithKongsMessage) {
  EXPECT_EQ(describe_failure(answer(400, R"j({"code":2,"message":"schema violation (x: bad)"})j")),
            "HTTP 400: schema violation (x: bad)");
  EXPECT_EQ(describe_failure(answer(502, "<html>bad gateway</html>")), "HTTP 502: <html>bad gateway</html>");
  CallResult refused;
  refused.transport_error = "Failed to connect";
  EXPECT_EQ(describe_failure(refused), "no answer: Failed to connect");
}

TEST(RetryPolicy, BackoffGrowsIsJitteredAndCapped) {
  BackoffSettings s{1000, 60000};
  EXPECT_EQ(backoff_ms(0, 0.0, s), 500);
  EXPECT_EQ(backoff_ms(0, 0.999999, s), 999);
  EXPECT_EQ(backoff_ms(3, 0.0, s), 4000);
  EXPECT_EQ(backoff_ms(30, 0.0, s), 30000);
  EXPECT_LE(backoff_ms(30, 0.999999, s), 60000);
  EXPECT_EQ(backoff_ms(1000, 0.5, s), backoff_ms(30, 0.5, s));
  EXPECT_EQ(backoff_ms(0, 0.0, s, 7), 7000);  // Retry-After asks for longer
  EXPECT_EQ(backoff_ms(5, 0.0, s, 1), 16000);  // but never shortens the step
  // A hostile Retry-After is held to the cap: no job parked for years, no overflow.
  EXPECT_EQ(backoff_ms(0, 0.0, s, 315360000), 60000);
  EXPECT_EQ(backoff_ms(0, 0.0, s, std::numeric_limits<long>::max()), 60000);
}

TEST(CircuitBreaker, OpensAfterThresholdThenProbesOnceAndBacksOffLonger) {
  CircuitBreaker breaker(3, 1000, 8000);
  for (int i = 0; i < 2; ++i) breaker.record_failure(0);
  EXPECT_TRUE(breaker.allow(0));
  breaker.record_failure(0);
  EXPECT_TRUE(breaker.open());
  EXPECT_FALSE(breaker.allow(999));
  EXPECT_TRUE(breaker.allow(1000));   // the probe
  EXPECT_FALSE(breaker.allow(1000));  // only one at a time
  breaker.record_failure(1000);       // probe failed: open for twice as long
  EXPECT_FALSE(breaker.allow(2999));
  EXPECT_TRUE(breaker.allow(3000));
  breaker.record_success();
  EXPECT_FALSE(breaker.open());
  EXPECT_TRUE(breaker.allow(3000));
  EXPECT_TRUE(breaker.allow(3000));
}

TEST(CircuitBreaker, OpenTimeIsCapped) {
  CircuitBreaker breaker(1, 1000, 4000);
  std::int64_t now = 0;
  for (int i = 0; i < 10; ++i) {
    breaker.record_failure(now);
    now = breaker.reopens_at_ms();
    ASSERT_TRUE(breaker.allow(now));
  }
  breaker.record_failure(now);
  EXPECT_EQ(breaker.reopens_at_ms() - now, 4000);
}

TEST(CircuitBreaker, SaysWhenItWillNextAllowACall) {
  CircuitBreaker breaker(1, 1000, 4000);
  EXPECT_EQ(breaker.next_allowed_ms(5), 5);       // closed: now
  breaker.record_failure(10);
  EXPECT_EQ(breaker.next_allowed_ms(20), 1010);   // open: the end of the pause
  EXPECT_EQ(breaker.next_allowed_ms(2000), 2000);  // the pause is over: now
  ASSERT_TRUE(breaker.allow(2000));
  EXPECT_EQ(breaker.next_allowed_ms(2000), -1);   // a probe is out: its answer decides
}

TEST(CircuitBreaker, AnUnusedProbeIsGrantedAgain) {
  CircuitBreaker breaker(1, 1000, 4000);
  breaker.record_failure(0);
  ASSERT_TRUE(breaker.allow(1000));
  EXPECT_FALSE(breaker.allow(1000));
  breaker.release_probe();  // nothing was waiting to be sent
  EXPECT_TRUE(breaker.allow(1000));
}

TEST(CircuitBreaker, AnAnswerInHalfOpenClosesIt) {
  CircuitBreaker breaker(1, 1000, 4000);
  breaker.record_failure(0);
  ASSERT_TRUE(breaker.allow(1000));
  breaker.record_neutral();  // e.g. a 400: Kong is up
  EXPECT_FALSE(breaker.open());
}

}  // namespace
}  // namespace gateway::sync
