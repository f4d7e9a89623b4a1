// How one of the worker's batched writes went (no PostgreSQL header: usable before the core's).
#pragma once

namespace gateway::pg {

// kLocked: a lock wait was given up (see limit_lock_waits in worker_transaction.hpp): DDL or a
// transaction holds what the batch writes; the batch is kept for the next attempt.
enum class FlushResult { kDone, kFailed, kLocked };

}  // namespace gateway::pg
