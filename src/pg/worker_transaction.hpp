// Transactions and SPI for the worker's C++ code. PostgreSQL errors become PgError exceptions
// (pg_call), so C++ objects in the caller unwind normally; a failed transaction is logged and
// rolled back, and the caller decides what to retry.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "error_bridge.hpp"

namespace gateway::pg {

// One row of a query result, as text (NULL: nullopt).
using TextRow = std::vector<std::optional<std::string>>;

// Runs `body` in its own transaction with SPI connected and a snapshot. Returns false (after
// logging `what` and the error at LOG level, and rolling back) when anything in it failed.
template <typename Body>
bool in_transaction(const char* what, Body&& body);

// As in_transaction, but logs nothing: on failure `error` says why, and the caller decides what
// is worth a log line (the sync engine logs a run of failures once, not each of them).
template <typename Body>
bool try_transaction(const char* what, std::string& error, Body&& body);

// Every worker transaction waits at most this long for a lock, well below deadlock_timeout (1 s
// by default). DDL on the gateway's tables (DROP EXTENSION, ALTER EXTENSION UPDATE, ALTER TABLE)
// takes ACCESS EXCLUSIVE locks one table at a time in its own order; a worker transaction holding
// one of them and waiting for another closes a deadlock cycle, and the deadlock detector may
// abort the DDL. With a shorter lock_timeout the worker gives up first: it rolls back (releasing
// what the DDL waits for), keeps its batch and tries again after a backoff. Only lowers a
// lock_timeout set for the worker; needs a transaction.
constexpr int kWorkerLockTimeoutMs = 200;
void limit_lock_waits();

// Whether the last failed try_transaction gave up waiting for a lock (SQLSTATE 55P03): the
// database is busy, not refusing the work; callers keep it for the next attempt.
bool failed_on_lock();
void note_transaction_failure(int sqlerrcode);

// Runs a statement with text parameters (NULL: nullopt); returns its rows as text.
std::vector<TextRow> spi_query(const char* sql, const std::vector<std::optional<std::string>>& args = {});

// Implementation details of in_transaction.
void begin_worker_transaction(const char* what);
void commit_worker_transaction();
void log_worker_transaction_failure(const char* what, const std::string& message);
void rollback_worker_transaction();

template <typename Body>
bool try_transaction(const char* what, std::string& error, Body&& body) {
  try {
    begin_worker_transaction(what);
    body();
    commit_worker_transaction();
    return true;
  } catch (const PgError& e) {
    error = e.data->message != nullptr ? e.data->message : "unknown error";
    note_transaction_failure(e.data->sqlerrcode);
  } catch (const std::exception& e) {
    error = e.what();
    note_transaction_failure(0);
  }
  rollback_worker_transaction();
  return false;
}

template <typename Body>
bool in_transaction(const char* what, Body&& body) {
  std::string error;
  if (try_transaction(what, error, std::forward<Body>(body))) return true;
  log_worker_transaction_failure(what, error);
  return false;
}

}  // namespace gateway::pg
