#include "token_bucket.hpp"

#include <algorithm>
#include "cpp_only.hpp"  // last: proves no PostgreSQL header came in above

namespace gateway {
namespace {
constexpr std::int64_t kUnitsPerToken = 60'000'000;  // microseconds per minute
}  // namespace

BucketDecision take_token(TokenBucket& bucket, std::int32_t limit_per_minute, std::int64_t now_us) {
  const std::int64_t limit = limit_per_minute;
  const std::int64_t capacity = limit * kUnitsPerToken;

  if (bucket.updated_us == 0 || bucket.limit_per_minute <= 0) {
    bucket.units = capacity;
  } else {
    if (bucket.limit_per_minute != limit_per_minute) {
      bucket.units = static_cast<std::int64_t>(static_cast<__int128>(bucket.units) * limit /
                                               bucket.limit_per_minute);
    }
    // Anything past a minute refills to the cap anyway; capping first keeps the product small.
    const std::int64_t elapsed = std::clamp<std::int64_t>(now_us - bucket.updated_us, 0,
                                                          kUnitsPerToken);
    bucket.units = std::min(capacity, bucket.units + elapsed * limit);
  }
  bucket.limit_per_minute = limit_per_minute;
  bucket.updated_us = std::max(bucket.updated_us, now_us);

  BucketDecision decision;
  if (bucket.units >= kUnitsPerToken) {
    bucket.units -= kUnitsPerToken;
    decision.allowed = true;
    decision.remaining = static_cast<std::int32_t>(bucket.units / kUnitsPerToken);
  } else {
    decision.retry_after_us = (kUnitsPerToken - bucket.units + limit - 1) / limit;
  }
  return decision;
}

}  // namespace gateway
