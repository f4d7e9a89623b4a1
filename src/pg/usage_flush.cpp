#include "usage_flush.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "../core/verify_decision.hpp"
#include "settings.hpp"
#include "shared_state.hpp"
#include "uuid.hpp"
#include "worker_transaction.hpp"

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
      " WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at <= u.at - $3)",
      3, types, args, SPI_OK_UPDATE);
}

struct AuditShape {
  const char* action;
  const char* object_type;
  const char* label_name;  // the details key the event's label goes under, or nullptr
};

AuditShape shape_of(AuditKind kind) {
  switch (kind) {
    case AuditKind::kVerifyFailed: return {"api_key.verify_failed", "api_key", "key_prefix"};
    case AuditKind::kCredentialsDecrypted: return {"credentials.decrypted", "credentials", "context"};
    case AuditKind::kConnectorDecrypted: return {"connector.credentials_decrypted", "connector", nullptr};
  }
  return {"unknown", "unknown", nullptr};
}

Datum text_or_null(const char* value, bool* isnull) {
  *isnull = value == nullptr || value[0] == '\0';
  return *isnull ? Datum(0) : PointerGetDatum(cstring_to_text(value));
}

// Identical events of one batch (same action, actor, object, context, key: everything but the
// time) become one record with a count and the time of the last, so a burst of decryptions or a
// flood of bad keys costs one row per distinct event per batch, while every event is counted.
struct GroupedEvent {
  AuditEvent event;  // the first of its group
  std::int64_t count;
  TimestampTz last_at;
};

std::vector<GroupedEvent> group_events(const std::vector<AuditEvent>& events) {
  std::vector<GroupedEvent> grouped;
  std::map<std::string, std::size_t> index;
  for (const AuditEvent& e : events) {
    std::string key;
    key.reserve(160);
    auto add = [&key](const void* data, std::size_t size) {
      key.append(static_cast<const char*>(data), size);
    };
    add(&e.database, sizeof e.database);
    add(&e.role, sizeof e.role);
    add(&e.kind, sizeof e.kind);
    add(&e.reason, sizeof e.reason);
    bool flags[3] = {e.has_object, e.has_project, e.has_actor};
    add(flags, sizeof flags);
    add(e.object_id.data(), e.object_id.size());
    add(e.subject_id.data(), e.subject_id.size());
    add(e.project_id.data(), e.project_id.size());
    add(e.actor_id.data(), e.actor_id.size());
    add(&e.key_number, sizeof e.key_number);
    key.append(e.label, strnlen(e.label, sizeof e.label));
    auto [it, inserted] = index.emplace(std::move(key), grouped.size());
    if (inserted) {
      grouped.push_back(GroupedEvent{e, 1, e.at});
    } else {
      GroupedEvent& g = grouped[it->second];
      ++g.count;
      g.last_at = std::max(g.last_at, e.at);
      g.event.at = std::min(g.event.at, e.at);
    }
  }
  return grouped;
}

void write_audit_events(const GroupedEvent* events, int count, uint64 dropped) {
  if (count > 0) {
    constexpr int kColumns = 14;
    Datum* columns[kColumns];
    bool* nulls[kColumns];
    for (int c = 0; c < kColumns; ++c) {
      columns[c] = static_cast<Datum*>(palloc(sizeof(Datum) * count));
      nulls[c] = static_cast<bool*>(palloc0(sizeof(bool) * count));
    }
    for (int i = 0; i < count; ++i) {
      const AuditEvent& e = events[i].event;
      AuditShape shape = shape_of(e.kind);
      columns[0][i] = TimestampTzGetDatum(e.at);
      columns[1][i] = text_or_null(shape.action, &nulls[1][i]);
      columns[2][i] = text_or_null(shape.object_type, &nulls[2][i]);
      columns[3][i] = id_to_uuid(e.object_id);
      nulls[3][i] = !e.has_object;
      columns[4][i] = id_to_uuid(e.project_id);
      nulls[4][i] = !e.has_project;
      columns[5][i] = id_to_uuid(e.subject_id);
      nulls[5][i] = !e.has_object || e.kind != AuditKind::kVerifyFailed;
      columns[6][i] = id_to_uuid(e.actor_id);
      nulls[6][i] = !e.has_actor;
      columns[7][i] = text_or_null(GetUserNameFromId(e.role, true), &nulls[7][i]);
      const char* reason = e.kind == AuditKind::kVerifyFailed
                               ? api_key::reason_name(static_cast<api_key::Reason>(e.reason)).data()
                               : nullptr;
      columns[8][i] = text_or_null(reason, &nulls[8][i]);
      columns[9][i] = text_or_null(shape.label_name, &nulls[9][i]);
      columns[10][i] = text_or_null(e.label, &nulls[10][i]);
      columns[11][i] = Int32GetDatum(e.key_number);
      nulls[11][i] = e.kind == AuditKind::kVerifyFailed;
      columns[12][i] = Int64GetDatum(events[i].count);
      nulls[12][i] = events[i].count == 1;
      columns[13][i] = TimestampTzGetDatum(events[i].last_at);
      nulls[13][i] = events[i].count == 1;
    }
    const Oid element_types[kColumns] = {TIMESTAMPTZOID, TEXTOID, TEXTOID, UUIDOID, UUIDOID,
                                         UUIDOID,        UUIDOID, TEXTOID, TEXTOID, TEXTOID,
                                         TEXTOID,        INT4OID, INT8OID, TIMESTAMPTZOID};
    Oid types[kColumns];
    Datum args[kColumns];
    for (int c = 0; c < kColumns; ++c) {
      types[c] = get_array_type(element_types[c]);
      args[c] = PointerGetDatum(array_of(columns[c], nulls[c], count, element_types[c]));
    }
    // reason_name() returns views of string literals, so .data() above is NUL-terminated.
    execute(
        "INSERT INTO gateway.audit_log (occurred_at, action, object_type, object_id, project_id,"
        "                               subject_user_id, actor_user_id, actor_role, details)"
        "SELECT f.at, f.action, f.object_type, f.object_id, f.project_id, f.subject, f.actor,"
        "       coalesce(f.role, 'unknown'),"
        "       jsonb_strip_nulls(jsonb_build_object('reason', f.reason, 'key_id', f.key_number,"
        "                                            'count', f.n, 'last_at', f.last_at)"
        "         || CASE WHEN f.label_name IS NULL OR f.label IS NULL THEN '{}'::jsonb"
        "                 ELSE jsonb_build_object(f.label_name, f.label) END)"
        "  FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::uuid[], $5::uuid[],"
        "              $6::uuid[], $7::uuid[], $8::text[], $9::text[], $10::text[], $11::text[],"
        "              $12::int[], $13::bigint[], $14::timestamptz[])"
        "    AS f(at, action, object_type, object_id, project_id, subject, actor, role, reason,"
        "         label_name, label, key_number, n, last_at)",
        kColumns, types, args, SPI_OK_INSERT);
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
int failed_audit_flushes = 0;

// Puts events back after a failed write; after three failures in a row they go to the server
// log instead (they hold no secret), so one bad record cannot stop auditing.
std::size_t count_durable(const std::vector<AuditEvent>& events) {
  return static_cast<std::size_t>(
      std::count_if(events.begin(), events.end(), [](const AuditEvent& e) { return e.durable; }));
}

// A lock wait given up (`locked`) says nothing about the events: they go back without counting
// towards the three, however long a DDL holds the table.
void requeue_or_log(const std::vector<AuditEvent>& events, bool locked) {
  if (locked || ++failed_audit_flushes < 3) {
    for (const AuditEvent& e : events) {
      if (!queue_audit(e, /*required=*/true)) {
        report_audit_lost();
        break;
      }
    }
    return;
  }
  for (const AuditEvent& e : events) {
    ereport(LOG, (errmsg("pg_gateway audit event not recorded: %s object_type=%s label=%s",
                         shape_of(e.kind).action, shape_of(e.kind).object_type, e.label)));
  }
  if (count_durable(events) > 0) report_audit_lost();
  failed_audit_flushes = 0;
}

}  // namespace

FlushResult flush_usage() {
  std::vector<UsageRecord> usage;
  std::vector<AuditEvent> events;
  drain_usage(usage, static_cast<std::int64_t>(settings.last_used_resolution_s) * USECS_PER_SEC);
  uint64 dropped = drain_audit_events(events);

  // Durable waiters elsewhere learn at once that nobody will record their event.
  const std::size_t durable_before = count_durable(events);
  std::size_t foreign = keep_own(usage, [](const UsageRecord& r) { return r.database; }) +
                        keep_own(events, [](const AuditEvent& e) { return e.database; });
  if (count_durable(events) != durable_before) report_audit_lost();
  std::uint64_t highest = 0;
  for (const AuditEvent& e : events) highest = std::max(highest, e.seq);
  volatile std::uint64_t last_seq = highest;  // volatile: read after a longjmp
  const volatile bool durable = count_durable(events) > 0;
  if (foreign > 0 && !warned_other_database) {
    warned_other_database = true;
    ereport(WARNING,
            (errmsg("pg_gateway is used in a database other than gateway.database"),
             errdetail("Key usage and audit events from there are not recorded."),
             errhint("Create the extension only in the database named by gateway.database.")));
  }
  if (usage.empty() && events.empty() && dropped == 0) return FlushResult::kDone;

  // Built before PG_TRY: no C++ object may be created where a PostgreSQL error can longjmp.
  std::vector<GroupedEvent> grouped = group_events(events);
  MemoryContext caller_context = CurrentMemoryContext;
  volatile bool failed = false;  // assigned after longjmp
  volatile bool recorded = false;
  volatile bool locked = false;
  PG_TRY();
  {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    limit_lock_waits();  // see there: DDL on api_keys and audit_log must not deadlock with us
    PushActiveSnapshot(GetTransactionSnapshot());
    pgstat_report_activity(STATE_RUNNING, "pg_gateway: recording API key usage");
    // Without the extension there is nothing to record into; the batch is discarded.
    if (OidIsValid(get_extension_oid("pg_gateway", true))) {
      if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
      // Both tables up front, in one statement: the only lock wait is here, before the batch
      // holds anything for long, so lock_timeout always ends it before a DDL that waits for
      // us reaches deadlock_timeout (a long UPDATE holding api_keys and then waiting for
      // audit_log could lose that race).
      execute("LOCK TABLE gateway.api_keys, gateway.audit_log IN ROW EXCLUSIVE MODE", 0, nullptr, nullptr,
              SPI_OK_UTILITY);
      write_last_used(usage.data(), static_cast<int>(usage.size()));
      write_audit_events(grouped.data(), static_cast<int>(grouped.size()), dropped);
      SPI_finish();
      // A waiting decrypt returns once we confirm: the commit must reach the WAL on disk even
      // under synchronous_commit = off.
      if (durable) ForceSyncCommit();
      recorded = true;
    }
    PopActiveSnapshot();
    CommitTransactionCommand();
    pgstat_report_activity(STATE_IDLE, nullptr);
    failed_audit_flushes = 0;
  }
  PG_CATCH();
  {
    MemoryContextSwitchTo(caller_context);
    ErrorData* error = CopyErrorData();
    // A lock wait given up is logged by the worker's loop, once per run of them.
    locked = error->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE;
    if (!locked) EmitErrorReport();
    FlushErrorState();
    FreeErrorData(error);
    AbortCurrentTransaction();
    pgstat_report_activity(STATE_IDLE, nullptr);
    failed = true;
  }
  PG_END_TRY();

  // Last-use times are kept for the next attempt; audit events too, unless they are what makes
  // the insert fail (then they are logged, so a bad record cannot block recording forever).
  if (failed) {
    restore_usage(usage);
    requeue_or_log(events, locked);
    return locked ? FlushResult::kLocked : FlushResult::kFailed;
  }
  if (recorded) {
    if (last_seq > 0) confirm_audit_committed(last_seq);
  } else if (durable) {
    report_audit_lost();  // no extension here: the batch was discarded
  }
  return FlushResult::kDone;
}

}  // namespace gateway::pg
