// The commit-time wake of the worker (see sync_wake.cpp).
#pragma once

namespace gateway::pg {

// Wakes the worker when the current transaction commits; nothing happens if it aborts.
void wake_at_commit_of_this_transaction();

}  // namespace gateway::pg
