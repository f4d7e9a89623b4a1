// gateway._sync_wake(): called by the enqueue triggers. Wakes the worker when the transaction
// commits, once per transaction, and not at all when it aborts, so the worker never looks for
// jobs that do not exist (yet) and never waits for a poll interval to find ones that do.
#include "error_bridge.hpp"
#include "shared_state.hpp"

extern "C" {
#include "access/xact.h"
#include "commands/trigger.h"
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
PG_FUNCTION_INFO_V1(gateway_sync_wake_trigger);
}

extern "C" Datum gateway_sync_wake(PG_FUNCTION_ARGS) {
  gateway::pg::wake_at_commit_of_this_transaction();
  PG_RETURN_VOID();
}

// The same as a statement-level trigger: one call per statement, no SQL.
extern "C" Datum gateway_sync_wake_trigger(PG_FUNCTION_ARGS) {
  if (!CALLED_AS_TRIGGER(fcinfo)) {
    ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                    errmsg("gateway._sync_wake_trigger() must be called as a trigger")));
  }
  gateway::pg::wake_at_commit_of_this_transaction();
  return PointerGetDatum(nullptr);
}
