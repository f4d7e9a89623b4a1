#include "worker.hpp"

#include <algorithm>
#include <csignal>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

// Core (nlohmann/json) headers before any PostgreSQL header: PostgreSQL redefines snprintf.
#include "kong_target.hpp"
#include "sync_engine.hpp"
#include "nexus_call_target.hpp"
#include "temporal_target.hpp"
#include "error_bridge.hpp"
#include "postgres.hpp"
#include "settings.hpp"
#include "shared_state.hpp"
#include "uuid.hpp"
#include "worker_transaction.hpp"
#include "rehash_flush.hpp"
#include "usage_flush.hpp"
#include "audit_retention.hpp"
#include "health.hpp"
#include "usage_limit_flush.hpp"

extern "C" {
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "tcop/tcopprot.h"
#include "utils/timeout.h"
}

extern "C" PGDLLEXPORT void gateway_worker_main(Datum);

namespace gateway::pg {
namespace {

void forget_latch(int, Datum) { register_worker_latch(nullptr); }

// pg_cancel_backend() on the worker. The default handler of a background worker sets
// QueryCancelPending, and the next CHECK_FOR_INTERRUPTS raises an ERROR that longjmps over C++
// frames and restarts the worker. A worker has no query to cancel: note the request and go on.
volatile sig_atomic_t cancel_requested = false;

// lock_timeout (see limit_lock_waits) is delivered as a SIGINT to ourselves too: that one must
// cancel the lock wait, as the default handler would (the ERROR is raised in the wait, inside
// pg_call or the usage flush's PG_TRY); without this the worker waited on, and the deadlock
// detector aborted the DDL it was meant to let through.
void handle_cancel(SIGNAL_ARGS) {
  int save_errno = errno;
  if (get_timeout_indicator(LOCK_TIMEOUT, false)) {
    QueryCancelPending = true;
    InterruptPending = true;
  } else {
    cancel_requested = true;
  }
  SetLatch(MyLatch);
  errno = save_errno;
}

// PostgreSQL's own interrupts (barriers, memory-context logging, a FATAL on termination) are
// processed where an ERROR cannot longjmp over a live C++ destructor: inside pg_call, which
// turns it into a PgError for guarded() to log.
void process_interrupts() {
  if (cancel_requested) {
    cancel_requested = false;
    ereport(LOG, (errmsg("pg_gateway worker ignores a cancel request"),
                  errdetail("The worker runs no query that could be cancelled; it goes on."),
                  errhint("Use pg_terminate_backend() to restart the worker.")));
  }
  if (!INTERRUPTS_PENDING_CONDITION()) return;
  try {
    pg_call([] { CHECK_FOR_INTERRUPTS(); });
  } catch (const PgError& e) {
    ereport(LOG, (errmsg("pg_gateway worker: interrupt: %s", e.data->message != nullptr ? e.data->message : "")));
  }
}

// Milliseconds from now until `due`, at least 0.
long ms_until(TimestampTz due) {
  long ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), due);
  return ms < 0 ? 0 : ms;
}

FlushResult worst(FlushResult a, FlushResult b) {
  if (a == FlushResult::kFailed || b == FlushResult::kFailed) return FlushResult::kFailed;
  return a == FlushResult::kLocked ? a : b;
}

// The worker's own exception boundary: flush_usage() reports PostgreSQL errors itself; a C++
// exception (out of memory while draining) is logged after unwinding, and the worker goes on.
FlushResult flush_usage_guarded() {
  const char* failure = nullptr;
  try {
    FlushResult usage = flush_usage();
    return worst(usage, flush_usage_limits());
  } catch (const std::bad_alloc&) {
    failure = "out of memory";
  } catch (const std::exception&) {
    failure = "internal error";
  }
  ereport(LOG, (errmsg("pg_gateway worker could not record API key usage: %s", failure)));
  return FlushResult::kFailed;
}

// After a failed flush the kept batch is tried again (restored work wakes nobody) after a backoff
// that doubles up to kFlushBackoffMaxMs: a table a long ALTER TABLE holds costs a lock wait per
// retry, not a busy loop. A run of lock waits given up is logged once, and its end.
constexpr long kFlushBackoffMinMs = 250;
constexpr long kFlushBackoffMaxMs = 5000;
long flush_backoff_ms = 0;  // 0: the last flush succeeded
bool flush_locked_out = false;

// Returns when the next flush is due (0: when there is work).
TimestampTz after_flush(FlushResult result) {
  if (result == FlushResult::kLocked && !flush_locked_out) {
    ereport(LOG, (errmsg("pg_gateway worker: a gateway table is locked; batched writes wait"),
                  errdetail("A lock wait longer than %d ms was given up: DDL (ALTER TABLE, DROP or "
                            "ALTER EXTENSION) holds a table, or a transaction holds rows the batch "
                            "updates.", kWorkerLockTimeoutMs),
                  errhint("Nothing is lost: the batch is kept and written once the lock is gone.")));
  }
  if (result == FlushResult::kDone) {
    if (flush_locked_out) ereport(LOG, (errmsg("pg_gateway worker: batched writes are recorded again")));
    flush_locked_out = false;
    flush_backoff_ms = 0;
    return 0;
  }
  flush_locked_out = flush_locked_out || result == FlushResult::kLocked;
  flush_backoff_ms = std::min(kFlushBackoffMaxMs, std::max(kFlushBackoffMinMs, flush_backoff_ms * 2));
  return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), flush_backoff_ms);
}

// The sync engine's own exception boundary: a C++ error in one step is logged and the worker
// goes on (the jobs involved stay claimed and run again after a restart at worst).
template <typename Body>
void guarded(const char* what, Body&& body) {
  const char* failure = nullptr;
  std::string message;
  try {
    body();
  } catch (const std::bad_alloc&) {
    failure = "out of memory";
  } catch (const PgError& e) {
    message = e.data->message != nullptr ? e.data->message : "";
    failure = message.c_str();
  } catch (const std::exception& e) {
    message = e.what();
    failure = message.c_str();
  }
  if (failure != nullptr) ereport(LOG, (errmsg("pg_gateway worker: %s: %s", what, failure)));
}

// Sleeps until the latch is set, a socket of an engine's HTTP client is ready, or the timeout
// passes (-1: no timeout); hands ready sockets to the engine they belong to.
// The set is kept while libcurl's socket sets stay the same (their generations, bumped by every
// socket callback; keep-alive connections make that the usual case), so a busy worker does not
// create an epoll set for every wait. Socket numbers are never compared: a connection libcurl
// closed and a new one that took its number are different sockets to watch.
struct EngineWait {
  SyncEngine* engine = nullptr;
  std::vector<gateway::http::WaitSocket> sockets;
  std::uint64_t generation = 0;
  long timeout_ms = -1;
};

WaitEventSet* wait_set = nullptr;
std::vector<std::uint64_t> wait_set_generations;

void wait_for_events(std::vector<EngineWait>& engines, long timeout_ms) {
  std::vector<std::uint64_t> generations;
  std::size_t total = 0;
  for (const EngineWait& w : engines) {
    generations.push_back(w.generation);
    total += w.sockets.size();
  }
  if (wait_set == nullptr || generations != wait_set_generations) {
    if (wait_set != nullptr) FreeWaitEventSet(wait_set);
    wait_set = CreateWaitEventSet(TopMemoryContext, static_cast<int>(total) + 2);
    AddWaitEventToSet(wait_set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, nullptr);
    AddWaitEventToSet(wait_set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, nullptr, nullptr);
    for (EngineWait& w : engines) {
      for (const auto& s : w.sockets) {
        int events = (s.read ? WL_SOCKET_READABLE : 0) | (s.write ? WL_SOCKET_WRITEABLE : 0);
        AddWaitEventToSet(wait_set, events, s.fd, nullptr, w.engine);
      }
    }
    wait_set_generations = std::move(generations);
  }
  constexpr int kMaxEvents = 64;
  WaitEvent occurred[kMaxEvents];
  int n = WaitEventSetWait(wait_set, timeout_ms, occurred, kMaxEvents, PG_WAIT_EXTENSION);
  ResetLatch(MyLatch);
  for (int i = 0; i < n; ++i) {
    const WaitEvent& e = occurred[i];
    if ((e.events & (WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE)) == 0) continue;
    const bool readable = (e.events & WL_SOCKET_READABLE) != 0;
    const bool writable = (e.events & WL_SOCKET_WRITEABLE) != 0;
    auto* engine = static_cast<SyncEngine*>(e.user_data);
    guarded("reading a target's answers", [&] { engine->socket_ready(e.fd, readable, writable); });
  }
}

// Connector tests a backend is waiting for (gateway.connector_test with a timeout) become jobs
// in the worker's own transaction: the backend's is not committed while it waits.
bool queue_connector_tests() {
  std::vector<KeyId> tests;
  take_connector_tests(tests);
  if (tests.empty()) return false;
  std::string ids = "{";
  for (const KeyId& id : tests) ids += (ids.size() > 1 ? "," : "") + id_to_text(id);
  ids += "}";
  std::string error;
  const bool queued = try_transaction("pg_gateway: queueing connector tests", error, [&] {
    spi_query("SELECT gateway._sync_enqueue('temporal', 'connector_test', t)"
              "  FROM unnest($1::uuid[]) AS t WHERE to_regclass('gateway.project_connectors') IS NOT NULL",
              {ids});
  });
  // Not queued: the callers were told the result would land, so the requests are kept and tried
  // again at the next wake-up; logged once per run of failures, not at every try.
  static bool failing = false;
  if (!queued) {
    return_connector_tests(tests);
    if (!failing) {
      ereport(LOG, (errmsg("pg_gateway worker: queueing connector tests failed: %s", error.c_str()),
                    errhint("The requests are kept and queued once the worker's transactions succeed.")));
    }
  } else if (failing) {
    ereport(LOG, (errmsg("pg_gateway worker: connector tests are queued again")));
  }
  failing = !queued;
  return queued;
}

long earliest(long a, long b) {
  if (a < 0) return b;
  if (b < 0) return a;
  return a < b ? a : b;
}

}  // namespace

void register_worker() {
  BackgroundWorker worker{};
  worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
  worker.bgw_restart_time = 5;
  snprintf(worker.bgw_library_name, BGW_MAXLEN, "pg_gateway");
  snprintf(worker.bgw_function_name, BGW_MAXLEN, "gateway_worker_main");
  snprintf(worker.bgw_name, BGW_MAXLEN, "pg_gateway worker");
  snprintf(worker.bgw_type, BGW_MAXLEN, "pg_gateway worker");
  RegisterBackgroundWorker(&worker);
}

}  // namespace gateway::pg

using namespace gateway::pg;

// Sleeps on its latch and the sockets of its Kong requests. Backends set the latch when there is
// something to record (the worker then waits gateway.usage_flush_interval to gather a batch and
// writes it in one transaction) and when a transaction that queued sync jobs commits. Otherwise
// it wakes only when a retry or a reconcile is due; with nothing to do it sleeps without a
// timeout: no polling.
extern "C" void gateway_worker_main(Datum) {
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
  pqsignal(SIGINT, handle_cancel);
  BackgroundWorkerUnblockSignals();
  BackgroundWorkerInitializeConnection(settings.database, nullptr, 0);
  pgstat_report_appname("pg_gateway worker");

  register_worker_latch(MyLatch);
  on_shmem_exit(forget_latch, 0);
  ereport(LOG, (errmsg("pg_gateway worker started in database \"%s\"", settings.database)));

  // Never destroyed: the process exits with it (an orderly stop abandons requests in flight;
  // their jobs run again after the restart).
  // One engine per target, each with its own client and breaker. Never destroyed: the process
  // exits with them (an orderly stop abandons requests in flight; their jobs run again after the
  // restart).
  std::vector<EngineWait> engines;
  for (auto* target : {make_kong_target().release(), make_temporal_target().release(),
                       make_nexus_call_target().release()}) {
    EngineWait wait;
    wait.engine = new SyncEngine(std::unique_ptr<SyncTarget>(target));
    engines.push_back(std::move(wait));
  }
  TimestampTz flush_due = 0;  // 0: no batch pending
  guarded("running the self-check", run_self_check);
  // The first round runs at once, not at the first commit: jobs a previous incarnation claimed
  // are recovered, and connector tests kept in shared memory for it are queued.
  SetLatch(MyLatch);
  for (;;) {
    // Work pending is looked at before sleeping too, not only after a wake: a lock wait inside
    // one of our transactions (ProcSleep) waits on and resets this same latch, so a backend's
    // wake-up that arrived then was consumed, and notify_worker() sends no other while
    // work_pending stays set: the worker slept with uses unwritten until some other wake.
    if (flush_due == 0 && work_pending()) {
      flush_due = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), settings.usage_flush_interval_ms);
    }
    long timeout = flush_due != 0 ? ms_until(flush_due) : -1L;
    for (EngineWait& w : engines) {
      w.timeout_ms = -1;
      guarded("preparing to wait", [&] { w.engine->wait_spec(w.sockets, w.timeout_ms, w.generation); });
      timeout = earliest(timeout, w.timeout_ms);
    }
    // A background worker reports its own statistics: without this its inserts, updates and
    // deletes of sync_jobs never reach pg_stat_user_tables, and autovacuum never sees the churn.
    // Unforced (at most once a second); it says when to try again if some are still pending.
    long stats_due = pgstat_report_stat(false);
    timeout = earliest(timeout, stats_due > 0 ? stats_due : -1L);
    timeout = earliest(timeout, audit_retention_wait_ms());
    // The same for a commit that queued sync jobs: its wake may have been consumed by a lock wait
    // later in the last round, and later commits find the flag set and wake nobody. (With every
    // target paused the flag is left set on purpose: then it must not keep us awake.)
    bool any_running = false;
    for (EngineWait& w : engines) any_running = any_running || !w.engine->paused();
    if (any_running && sync_wanted_pending()) timeout = 0;
    wait_for_events(engines, timeout);
    process_interrupts();

    if (ShutdownRequestPending) break;
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
      for (EngineWait& w : engines) w.engine->reload();
      guarded("running the self-check", run_self_check);
    }
    // During a backoff (flush_backoff_ms > 0) the retry is already due: nothing hurries it.
    if (take_flush_now() && flush_backoff_ms == 0) flush_due = GetCurrentTimestamp();
    if (flush_due == 0 && work_pending()) {
      flush_due = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
                                              settings.usage_flush_interval_ms);
    }
    if (flush_due != 0 && GetCurrentTimestamp() >= flush_due) {
      // Cleared before draining: a use recorded during the flush sets it again and is picked up
      // by the next batch.
      clear_pending_work();
      FlushResult usage = flush_usage_guarded();
      flush_due = after_flush(worst(usage, flush_rehash()));
    }
    // With every target paused, the wake is left untaken: later commits see it pending and
    // signal nobody. Otherwise each engine hears of the commit (jobs are per target).
    any_running = false;
    for (EngineWait& w : engines) any_running = any_running || !w.engine->paused();
    bool commit_seen = any_running && take_sync_wanted();
    if (queue_connector_tests()) commit_seen = true;
    for (EngineWait& w : engines) {
      guarded("syncing", [&] { w.engine->step(commit_seen); });
    }
    guarded("applying gateway.audit_retention", apply_audit_retention);
  }

  // A clean stop records what is batched so far, so a restart loses no last-use times (a table
  // locked meanwhile is waited for a few seconds: the batch dies with the process).
  clear_pending_work();
  for (int i = 0; i < 20 && flush_usage_guarded() == FlushResult::kLocked; ++i) pg_usleep(250 * 1000L);
  ereport(LOG, (errmsg("pg_gateway worker stopped")));
  // Exit code 1 asks the postmaster to start the worker again after bgw_restart_time, so an
  // administrator's pg_terminate_backend() is a restart, not a silent end of key bookkeeping.
  // During server shutdown the postmaster restarts nothing anyway.
  proc_exit(1);
}
