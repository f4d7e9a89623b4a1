#include "usage_flush.hpp"

#include <algorithm>
#include <vector>

#include "../core/verify_decision.hpp"
#include "settings.hpp"
#include "shared_state.hpp"
#include "uuid.hpp"

extern "C" {
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
}

namespace gateway::pg {
namespace {

ArrayType* array_of(Datum* values, bool* nulls, int count, Oid type) {
  int16 typlen;
  bool typbyval;
  char typalign;
  get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
  int dims[1] = {count};
  int lbs[1] = {1};
  return construct_md_array(values, nulls, 1, dims, lbs, type, typlen, typbyval, typalign);
}

void execute(const char* sql, int nargs, Oid* types, Datum* args, int expected) {
  int rc = SPI_execute_with_args(sql, nargs, types, args, nullptr, false, 0);
  if (rc != expected) elog(ERROR, "pg_gateway usage flush failed: %s", SPI_result_code_string(rc));
}

// Runs inside a transaction with SPI connected. Plain C style: no C++ object lives in these
// frames, so a PostgreSQL error may longjmp through them.
void write_last_used(const UsageRecord* records, int count) {
  if (count == 0) return;
  Datum* ids = static_cast<Datum*>(palloc(sizeof(Datum) * count));
  Datum* times = static_cast<Datum*>(palloc(sizeof(Datum) * count));
  for (int i = 0; i < count; ++i) {
    ids[i] = id_to_uuid(records[i].key);
    times[i] = TimestampTzGetDatum(records[i].last_used_us);
  }
  // A row already within the resolution is not rewritten (the slot may have been evicted and
  // come back, forgetting what it had written).
  auto* resolution = static_cast<Interval*>(palloc0(sizeof(Interval)));
  resolution->time = static_cast<int64>(settings.last_used_resolution_s) * USECS_PER_SEC;
  Oid types[3] = {UUIDARRAYOID, TIMESTAMPTZARRAYOID, INTERVALOID};
  Datum args[3] = {PointerGetDatum(array_of(ids, nullptr, count, UUIDOID)),
                   PointerGetDatum(array_of(times, nullptr, count, TIMESTAMPTZOID)),
                   IntervalPGetDatum(resolution)};
  execute(
      "UPDATE gateway.api_keys AS k SET last_used_at = u.at"
      "  FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, at)"
      " WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.at - $3)",
      3, types, args, SPI_OK_UPDATE);
}

void write_failures(const VerifyFailure* failures, int count, uint64 dropped) {
  if (count > 0) {
    Datum* at = static_cast<Datum*>(palloc(sizeof(Datum) * count));
    Datum* keys = static_cast<Datum*>(palloc(sizeof(Datum) * count));
    Datum* owners = static_cast<Datum*>(palloc(sizeof(Datum) * count));
    Datum* projects = static_cast<Datum*>(palloc(sizeof(Datum) * count));
    Datum* reasons = static_cast<Datum*>(palloc(sizeof(Datum) * count));
    Datum* prefixes = static_cast<Datum*>(palloc(sizeof(Datum) * count));
    bool* no_key = static_cast<bool*>(palloc(sizeof(bool) * count));
    bool* no_prefix = static_cast<bool*>(palloc(sizeof(bool) * count));
    for (int i = 0; i < count; ++i) {
      const VerifyFailure& f = failures[i];
      at[i] = TimestampTzGetDatum(f.at);
      no_key[i] = !f.has_key;
      keys[i] = id_to_uuid(f.key_id);
      owners[i] = id_to_uuid(f.user_id);
      projects[i] = id_to_uuid(f.project_id);
      auto reason = api_key::reason_name(static_cast<api_key::Reason>(f.reason));
      reasons[i] = PointerGetDatum(cstring_to_text_with_len(reason.data(), (int) reason.size()));
      no_prefix[i] = f.key_prefix[0] == '\0';
      prefixes[i] = PointerGetDatum(cstring_to_text(f.key_prefix));
    }
    Oid types[6] = {TIMESTAMPTZARRAYOID, UUIDARRAYOID, UUIDARRAYOID,
                    UUIDARRAYOID,        TEXTARRAYOID, TEXTARRAYOID};
    Datum args[6] = {PointerGetDatum(array_of(at, nullptr, count, TIMESTAMPTZOID)),
                     PointerGetDatum(array_of(keys, no_key, count, UUIDOID)),
                     PointerGetDatum(array_of(owners, no_key, count, UUIDOID)),
                     PointerGetDatum(array_of(projects, no_key, count, UUIDOID)),
                     PointerGetDatum(array_of(reasons, nullptr, count, TEXTOID)),
                     PointerGetDatum(array_of(prefixes, no_prefix, count, TEXTOID))};
    execute(
        "INSERT INTO gateway.audit_log"
        "       (occurred_at, action, object_type, object_id, project_id, subject_user_id, details)"
        "SELECT f.at, 'api_key.verify_failed', 'api_key', f.key_id, f.project_id, f.owner,"
        "       jsonb_strip_nulls(jsonb_build_object('reason', f.reason, 'key_prefix', f.prefix))"
        "  FROM unnest($1::timestamptz[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[],"
        "              $6::text[]) AS f(at, key_id, owner, project_id, reason, prefix)",
        6, types, args, SPI_OK_INSERT);
  }
  if (dropped > 0) {
    Oid types[1] = {INT8OID};
    Datum args[1] = {Int64GetDatum(static_cast<int64>(dropped))};
    execute(
        "INSERT INTO gateway.audit_log (action, object_type, details)"
        "VALUES ('api_key.verify_failures_dropped', 'api_key', jsonb_build_object('count', $1))",
        1, types, args, SPI_OK_INSERT);
  }
}

// Keeps only what belongs to this database; the rest cannot be recorded by this worker.
template <typename Record, typename DatabaseOf>
std::size_t keep_own(std::vector<Record>& records, DatabaseOf database_of) {
  std::size_t before = records.size();
  records.erase(std::remove_if(records.begin(), records.end(),
                               [&](const Record& r) { return database_of(r) != MyDatabaseId; }),
                records.end());
  return before - records.size();
}

bool warned_other_database = false;

}  // namespace

void flush_usage() {
  std::vector<UsageRecord> usage;
  std::vector<VerifyFailure> failures;
  drain_usage(usage, static_cast<std::int64_t>(settings.last_used_resolution_s) * USECS_PER_SEC);
  uint64 dropped = drain_verify_failures(failures);

  std::size_t foreign = keep_own(usage, [](const UsageRecord& r) { return r.database; }) +
                        keep_own(failures, [](const VerifyFailure& f) { return f.database; });
  if (foreign > 0 && !warned_other_database) {
    warned_other_database = true;
    ereport(WARNING,
            (errmsg("pg_gateway keys are used in a database other than gateway.database"),
             errdetail("Their last use and failed verifications are not recorded."),
             errhint("Create the extension only in the database named by gateway.database.")));
  }
  if (usage.empty() && failures.empty() && dropped == 0) return;

  MemoryContext caller_context = CurrentMemoryContext;
  volatile bool failed = false;  // assigned after longjmp
  PG_TRY();
  {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    PushActiveSnapshot(GetTransactionSnapshot());
    pgstat_report_activity(STATE_RUNNING, "pg_gateway: recording API key usage");
    // Without the extension there is nothing to record into; the batch is discarded.
    if (OidIsValid(get_extension_oid("pg_gateway", true))) {
      if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
      write_last_used(usage.data(), static_cast<int>(usage.size()));
      write_failures(failures.data(), static_cast<int>(failures.size()), dropped);
      SPI_finish();
    }
    PopActiveSnapshot();
    CommitTransactionCommand();
    pgstat_report_activity(STATE_IDLE, nullptr);
  }
  PG_CATCH();
  {
    MemoryContextSwitchTo(caller_context);
    EmitErrorReport();
    FlushErrorState();
    AbortCurrentTransaction();
    pgstat_report_activity(STATE_IDLE, nullptr);
    failed = true;
  }
  PG_END_TRY();

  // Last-use times are kept for the next attempt; failure records are not retried, so a record
  // that makes the insert fail cannot block usage recording forever.
  if (failed) restore_usage(usage);
}

}  // namespace gateway::pg
