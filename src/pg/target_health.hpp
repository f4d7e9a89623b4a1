// What the worker knows about each sync target's reachability (its circuit breaker, the last
// answer and the last failure), published in shared memory so gateway.health can show it: a
// backend never calls Kong or Temporal itself.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gateway::pg {

struct TargetHealth {
  bool published = false;     // the worker has reported on this target since it started
  bool paused = false;        // no URL set
  bool file_error = false;    // its header or TLS key file cannot be used
  bool circuit_open = false;  // the worker stopped calling it for now
  std::int32_t failures_in_row = 0;
  std::int64_t last_answer_ms = 0;   // Unix ms of the last answer (any HTTP status but 5xx/429); 0: none
  std::int64_t last_failure_ms = 0;  // Unix ms of the last failed call (no answer, 5xx, 429); 0: none
};

// Shared memory, hooked in by shared_state.cpp.
std::size_t target_health_size();
void target_health_init();  // under AddinShmemInitLock

// The worker, for target `name` (kong, temporal, nexus).
void publish_target_health(const char* name, const TargetHealth& health);
// Anyone: false when `name` is unknown.
bool read_target_health(const char* name, TargetHealth* out);

}  // namespace gateway::pg
