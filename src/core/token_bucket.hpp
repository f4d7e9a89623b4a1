// Per-key rate limiting: a token bucket that holds up to one minute's allowance and refills
// continuously, so a key limited to N per minute may burst N at once and then N per minute.
// Integer arithmetic throughout: a token is 60,000,000 units and a limit of N per minute refills
// N units per microsecond, so refills are exact and retry times never drift by rounding.
#pragma once

#include <cstdint>

namespace gateway {

struct TokenBucket {
  std::int64_t units = 0;
  std::int64_t updated_us = 0;  // 0: never used, starts full
  std::int32_t limit_per_minute = 0;
};

struct BucketDecision {
  bool allowed = false;
  std::int32_t remaining = 0;       // whole tokens left after this request
  std::int64_t retry_after_us = 0;  // when refused: time until one token is available
};

// Takes one token at time `now_us` (microseconds, any fixed epoch). A changed limit rescales what
// is left instead of resetting it, so lowering a limit takes effect at once. A clock that steps
// backwards refills nothing. `limit_per_minute` must be > 0.
BucketDecision take_token(TokenBucket& bucket, std::int32_t limit_per_minute, std::int64_t now_us);

}  // namespace gateway
