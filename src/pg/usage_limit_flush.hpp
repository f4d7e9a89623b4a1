// The worker's duty for usage-limited keys: writes the counters verify spent in shared memory to
// gateway.api_key_usage (never to gateway.api_keys, whose rows a verify cache watches).
#pragma once

#include "flush_result.hpp"

namespace gateway::pg {

// One transaction for the whole batch. On failure the counters stay marked unpersisted (so their
// slots are not evicted) for the next attempt, and the error is logged (a lock wait given up is
// not: it returns kLocked); it never raises.
FlushResult flush_usage_limits();

}  // namespace gateway::pg
