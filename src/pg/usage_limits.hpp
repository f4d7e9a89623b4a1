// Usage-limited keys in shared memory: each key's remaining uses, loaded from
// gateway.api_key_usage on the key's first use, spent atomically by verify (one partition lock),
// and written back by the worker (usage_limit_flush.cpp). Verify itself never writes.
#pragma once

#include <cstdint>
#include <vector>

#include "../core/usage_limit.hpp"
#include "postgres.hpp"

namespace gateway::pg {

void request_usage_limits_memory();  // from shared_state's request hook
void init_usage_limits_memory();     // from shared_state's startup hook, under AddinShmemInitLock

struct UsageAnswer {
  bool allowed = false;
  std::int64_t remaining = 0;
};

// Spends `cost` uses of `key` if that many remain. On a hot standby nothing can be spent (no
// worker there persists it): a positive cost is refused, cost 0 answers from the table. May raise
// (reading the table): call from C++ code under pg_call rules.
UsageAnswer spend_usage(const KeyId& key, const UsageLimitConfig& config, std::int64_t cost,
                        TimestampTz now);
// Gives back a spend the rate limit then refused.
void refund_usage(const KeyId& key, std::int64_t cost);

// For the worker.
void drain_usage_limits(std::vector<UsageLimitRecord>& out);
void confirm_usage_limits(const std::vector<UsageLimitRecord>& records, bool written);

}  // namespace gateway::pg
