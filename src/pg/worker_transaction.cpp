#include "worker_transaction.hpp"

#include <algorithm>

extern "C" {
#include "pgstat.h"
#include "storage/proc.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
}

namespace gateway::pg {
namespace {
bool last_failure_on_lock = false;
}

void limit_lock_waits() {
  int ms = std::min(kWorkerLockTimeoutMs, std::max(1, DeadlockTimeout / 2));
  if (LockTimeout > 0 && LockTimeout < ms) return;
  char value[16];
  snprintf(value, sizeof value, "%d", ms);
  (void)set_config_option("lock_timeout", value, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
                          true, 0, false);
}

bool failed_on_lock() { return last_failure_on_lock; }

void note_transaction_failure(int sqlerrcode) {
  last_failure_on_lock = sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE;
}

void begin_worker_transaction(const char* what) {
  pg_call([&] {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    limit_lock_waits();
    PushActiveSnapshot(GetTransactionSnapshot());
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    pgstat_report_activity(STATE_RUNNING, what);
  });
}

void commit_worker_transaction() {
  // Two calls: an error at commit (a deferred constraint) must not be copied into SPI's
  // context, which SPI_finish has already freed; the second call copies it into the
  // transaction's context, which lives until the caller has logged it and rolled back.
  pg_call([] { SPI_finish(); });
  pg_call([] {
    PopActiveSnapshot();
    CommitTransactionCommand();
    pgstat_report_activity(STATE_IDLE, nullptr);
  });
}

void log_worker_transaction_failure(const char* what, const std::string& message) {
  ereport(LOG, (errmsg("pg_gateway worker: %s failed: %s", what, message.c_str())));
}

void rollback_worker_transaction() {
  AbortCurrentTransaction();
  pgstat_report_activity(STATE_IDLE, nullptr);
}

std::vector<TextRow> spi_query(const char* sql, const std::vector<std::optional<std::string>>& args) {
  // Inside pg_call only PostgreSQL values (palloc'd, freed with the transaction); the C++ result
  // is built afterwards, so an error cannot longjmp over a live destructor.
  const int n = static_cast<int>(args.size());
  std::vector<const char*> arg_text;
  for (const auto& a : args) arg_text.push_back(a ? a->c_str() : nullptr);
  char** cells = nullptr;
  uint64 row_count = 0;
  int columns = 0;
  pg_call([&] {
    Oid* types = static_cast<Oid*>(palloc(sizeof(Oid) * (n + 1)));
    Datum* values = static_cast<Datum*>(palloc(sizeof(Datum) * (n + 1)));
    char* nulls = static_cast<char*>(palloc(n + 1));
    for (int i = 0; i < n; ++i) {
      types[i] = TEXTOID;
      nulls[i] = arg_text[i] != nullptr ? ' ' : 'n';
      values[i] = arg_text[i] != nullptr ? CStringGetTextDatum(arg_text[i]) : Datum(0);
    }
    int rc = SPI_execute_with_args(sql, n, types, values, nulls, false, 0);
    if (rc < 0) elog(ERROR, "pg_gateway worker query failed: %s", SPI_result_code_string(rc));
    if (SPI_tuptable == nullptr) return;
    TupleDesc desc = SPI_tuptable->tupdesc;
    row_count = SPI_processed;
    columns = desc->natts;
    cells = static_cast<char**>(palloc0(sizeof(char*) * (row_count * columns + 1)));
    for (uint64 r = 0; r < row_count; ++r) {
      for (int c = 0; c < columns; ++c) {
        cells[r * columns + c] = SPI_getvalue(SPI_tuptable->vals[r], desc, c + 1);
      }
    }
  });
  std::vector<TextRow> rows(row_count);
  for (uint64 r = 0; r < row_count; ++r) {
    rows[r].reserve(columns);
    for (int c = 0; c < columns; ++c) {
      const char* cell = cells[r * columns + c];
      rows[r].push_back(cell != nullptr ? std::optional<std::string>(cell) : std::nullopt);
    }
  }
  return rows;
}

}  // namespace gateway::pg
