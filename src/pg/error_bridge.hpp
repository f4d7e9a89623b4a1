// The one bridge between C++ exceptions and PostgreSQL errors (longjmp). Two rules hold:
//  - no C++ exception leaves a function PostgreSQL calls: sql_function() catches it and reports it
//    with ereport only after every C++ destructor in the body has run;
//  - no PostgreSQL error longjmps over a live C++ destructor: pg_call() runs PostgreSQL code that
//    may raise, turns the error into a PgError exception, and lets C++ unwind normally.
#pragma once

#include "postgres.hpp"

namespace gateway::pg {

// A PostgreSQL error caught inside C++; rethrown unchanged by sql_function().
struct PgError {
  ErrorData* data;
};

// Runs `body` (a void callable of PostgreSQL code); any PostgreSQL error becomes a PgError.
template <typename Body>
void pg_call(Body&& body) {
  MemoryContext caller_context = CurrentMemoryContext;
  ErrorData* volatile error = nullptr;  // volatile: assigned after longjmp
  PG_TRY();
  {
    body();
  }
  PG_CATCH();
  {
    MemoryContextSwitchTo(caller_context);
    error = CopyErrorData();
    FlushErrorState();
  }
  PG_END_TRY();
  if (error != nullptr) throw PgError{error};
}

// Reports an error captured by sql_function(). Never returns.
[[noreturn]] void report_captured(ErrorData* pg_error, const char* sqlstate, const char* message,
                                  const char* detail, const char* hint);

// Captures whatever `body` throws into palloc'd strings; the caller reports after the try block.
struct CapturedError {
  ErrorData* pg_error = nullptr;
  const char* sqlstate = nullptr;
  char* message = nullptr;
  char* detail = nullptr;
  char* hint = nullptr;
};
void capture_current_exception(CapturedError& out) noexcept;

// Wraps the body of every SQL-callable C++ function.
template <typename Body>
Datum sql_function(Body&& body) {
  CapturedError captured;
  try {
    return body();
  } catch (...) {
    capture_current_exception(captured);
  }
  // Out of the try block: every destructor of the body has run, so a longjmp is safe now.
  report_captured(captured.pg_error, captured.sqlstate, captured.message, captured.detail,
                  captured.hint);
}

}  // namespace gateway::pg
