// The worker's usage duty: writes batched last_used_at times and queued verify failures to the
// tables, so api_key_verify itself never writes.
#pragma once

#include "flush_result.hpp"

namespace gateway::pg {

// Drains shared memory and records it in one transaction. On failure the usage times go back to
// shared memory for the next attempt and the error is logged (a lock wait given up is not: it
// returns kLocked, and the caller logs and backs off); it never raises.
FlushResult flush_usage();

}  // namespace gateway::pg
