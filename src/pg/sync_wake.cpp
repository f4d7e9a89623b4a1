// gateway._sync_wake(): called by the enqueue triggers. Wakes the worker when the transaction
// commits, once per transaction, and not at all when it aborts, so the worker never looks for
// jobs that do not exist (yet) and never waits for a poll interval to find ones that do.
// A prepared transaction's commit happens later, in COMMIT PREPARED, where no transaction
// callback of ours runs: a utility hook wakes the worker after it.
#include "error_bridge.hpp"
#include "shared_state.hpp"
#include "sync_wake.hpp"

extern "C" {
#include "access/xact.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
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
      // A prepared transaction commits later, maybe in another session: on_utility wakes the
      // worker then.
      wake_at_commit = false;
      break;
    default:
      break;
  }
}

ProcessUtility_hook_type previous_utility_hook = nullptr;

// No C++ object lives in this frame: an ERROR from the statement may longjmp through it.
void on_utility(PlannedStmt* statement, const char* query, bool read_only_tree,
                ProcessUtilityContext context, ParamListInfo params, QueryEnvironment* env,
                DestReceiver* dest, QueryCompletion* completion) {
  Node* node = statement->utilityStmt;
  // Any prepared transaction may hold jobs (which ones did is not recorded): a wake costs the
  // worker one claim query, and COMMIT PREPARED is rare.
  const bool commit_prepared = node != nullptr && IsA(node, TransactionStmt) &&
                               castNode(TransactionStmt, node)->kind == TRANS_STMT_COMMIT_PREPARED;
  if (previous_utility_hook != nullptr) {
    previous_utility_hook(statement, query, read_only_tree, context, params, env, dest, completion);
  } else {
    standard_ProcessUtility(statement, query, read_only_tree, context, params, env, dest, completion);
  }
  // Reached only when it committed: its rows are visible to the worker's next claim.
  if (commit_prepared) notify_sync();
}

}  // namespace

void install_sync_wake_hook() {
  previous_utility_hook = ProcessUtility_hook;
  ProcessUtility_hook = on_utility;
}

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
