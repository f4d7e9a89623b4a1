#include "token_bucket.hpp"

#include <algorithm>
#include <cmath>
#include "cpp_only.hpp"  // last: proves no PostgreSQL header came in above

namespace gateway {

BucketDecision take_token(TokenBucket& bucket, std::int32_t limit_per_minute, std::int64_t now_us) {
  const double capacity = static_cast<double>(limit_per_minute);
  const double per_us = capacity / 60e6;

  if (bucket.updated_us == 0 || bucket.limit_per_minute <= 0) {
    bucket.tokens = capacity;
  } else {
    if (bucket.limit_per_minute != limit_per_minute) {
      bucket.tokens *= capacity / static_cast<double>(bucket.limit_per_minute);
    }
    const std::int64_t elapsed = std::max<std::int64_t>(0, now_us - bucket.updated_us);
    bucket.tokens = std::min(capacity, bucket.tokens + static_cast<double>(elapsed) * per_us);
  }
  bucket.limit_per_minute = limit_per_minute;
  bucket.updated_us = std::max(bucket.updated_us, now_us);

  BucketDecision decision;
  if (bucket.tokens >= 1.0) {
    bucket.tokens -= 1.0;
    decision.allowed = true;
    decision.remaining = static_cast<std::int32_t>(std::floor(bucket.tokens));
  } else {
    decision.retry_after_us = static_cast<std::int64_t>(std::ceil((1.0 - bucket.tokens) / per_us));
  }
  return decision;
}

}  // namespace gateway
