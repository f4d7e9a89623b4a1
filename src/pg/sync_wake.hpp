// The commit-time wake of the worker (see sync_wake.cpp).
#pragma once

namespace gateway::pg {

// From _PG_init: wakes the worker after COMMIT PREPARED too.
void install_sync_wake_hook();

// Wakes the worker when the current transaction commits; nothing happens if it aborts.
void wake_at_commit_of_this_transaction();

}  // namespace gateway::pg
