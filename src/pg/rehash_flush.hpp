// The worker's rehash duty: moves API keys that verified under the previous master key (or had no
// marker) to the current one, writing the hashes the verifying backends queued.
#pragma once

#include "flush_result.hpp"

namespace gateway::pg {

// Drains the rehash queue and writes it in one transaction of its own. A row whose hash changed
// since the verify (revoked and re-keyed, restored, rehashed already) is left alone. On failure
// the batch is dropped and logged without any hash: the keys' next verifies queue them again.
// Never raises or throws.
// A lock wait given up is not logged: it returns kLocked.
FlushResult flush_rehash() noexcept;

}  // namespace gateway::pg
