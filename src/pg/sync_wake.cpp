// gateway._sync_wake(): called by the enqueue triggers. Wakes the worker when the transaction
// commits, once per transaction, and not at all when it aborts, so the worker never looks for
// jobs that do not exist (yet) and never waits for a poll interval to find ones that do.
#include "error_bridge.hpp"
#include "shared_state.hpp"
#include "sync_wake.hpp"

extern "C" {
#include "access/xact.h"
}

namespace gateway::pg {
namespace {

bool callback_registered = false;
bool wake_at_commit = false;

void on_transaction_end(XactEvent event, void*) {
  switch (event) {
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_PARALLEL_COMMIT:
      if (wake_at_commit) notify_sync();
      wake_at_commit = false;
      break;
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
    case XACT_EVENT_PREPARE:
      // A prepared transaction commits later, in another session (COMMIT PREPARED): the
      // worker's periodic look for due jobs picks its jobs up.
      wake_at_commit = false;
      break;
    default:
      break;
  }
}

}  // namespace

void wake_at_commit_of_this_transaction() {
  if (!callback_registered) {
    RegisterXactCallback(on_transaction_end, nullptr);
    callback_registered = true;
  }
  wake_at_commit = true;
}

}  // namespace gateway::pg

extern "C" {
PG_FUNCTION_INFO_V1(gateway_sync_wake);
}

extern "C" Datum gateway_sync_wake(PG_FUNCTION_ARGS) {
  gateway::pg::wake_at_commit_of_this_transaction();
  PG_RETURN_VOID();
}
