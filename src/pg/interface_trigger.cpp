// gateway._public_interfaces_change(): the BEFORE row trigger on gateway.public_interfaces. In C
// because it runs on every publish, and bench/sync weighs it against the same three writes made
// by a single statement. For each change it
//  - takes project_id from the service interface (a given one is left to the composite foreign
//    key: pg_restore loads this table before service_interfaces) and fills a default http_path;
//  - marks an update of anything Kong sees as pending (an UPDATE naming those columns without
//    changing them queues nothing);
//  - queues the interface's sync job, its bound keys' jobs when they join or leave Kong, and the
//    audit record, in one prepared statement;
//  - arms the worker's wake at commit.
// It runs as the table owner (SECURITY DEFINER): application roles have no rights on
// gateway.sync_jobs. A job queued for a row that then fails a constraint rolls back with it.
#include <array>
#include <optional>
#include <string>

#include "cached_relation.hpp"
#include "error_bridge.hpp"
#include "interface_paths.hpp"
#include "sync_wake.hpp"
#include "request_identity.hpp"
#include "uuid.hpp"

extern "C" {
#include "access/xact.h"
#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
}

namespace gateway::pg {
namespace {

CachedRelation service_interfaces("service_interfaces", "service_interfaces_pkey");

struct ServiceInterface {
  KeyId project_id, workflow_id;
  std::string name;
};

// One probe of the primary key under the active snapshot. Call inside pg_call.
std::optional<ServiceInterface> find_service_interface(Datum id) {
  std::optional<ServiceInterface> found;
  RegProcedure eq = F_UUID_EQ;
  service_interfaces.probe(&id, &eq, 1, GetActiveSnapshot(), [&](TupleTableSlot* slot) {
    TupleDesc desc = slot->tts_tupleDescriptor;
    bool project_null = false, workflow_null = false, name_null = false;
    Datum project = slot_getattr(slot, SPI_fnumber(desc, "project_id"), &project_null);
    Datum workflow = slot_getattr(slot, SPI_fnumber(desc, "workflow_id"), &workflow_null);
    Datum name = slot_getattr(slot, SPI_fnumber(desc, "name"), &name_null);
    if (!project_null && !workflow_null && !name_null) {
      found = ServiceInterface{uuid_to_id(project), uuid_to_id(workflow),
                               std::string(text_view(DatumGetTextPP(name)))};
    }
    return false;
  });
  return found;
}

// The jobs and the audit record, in one statement, planned once per backend. The plan source
// survives the extension being dropped and created again: its names are schema-qualified and it
// is replanned when the relations change.
constexpr const char* kQueueSql =
    "WITH jobs AS ("
    "  INSERT INTO gateway.sync_jobs AS j (target, object_kind, object_id)"
    "  SELECT 'kong', 'public_interface', $1"
    "  UNION ALL"
    "  SELECT 'kong', 'api_key', k.id FROM gateway.api_keys AS k"
    "   WHERE $4 AND k.public_interface_id = $1"
    "  ON CONFLICT (object_id, object_kind, target) WHERE state = 'pending'"
    "  DO UPDATE SET run_after = LEAST(j.run_after, now()), updated_at = now()"
    ")"
    "INSERT INTO gateway.audit_log (action, object_type, object_id, project_id, details)"
    "SELECT 'public_interface.' || $3, 'public_interface', $1, $2,"
    "       jsonb_strip_nulls(jsonb_build_object('http_method', $5, 'http_path', $6,"
    "                                            'auth_type', $7, 'rate_limit_per_minute', $8))"
    " WHERE NOT $9";  // a restore's replay: the restored audit log holds the originals
SPIPlanPtr queue_plan = nullptr;

// Columns of the trigger's row this code reads or sets.
struct Columns {
  int id, service_interface_id, project_id, http_method, http_path, auth_type, auth_config,
      rate_limit_per_minute, sync_state, updated_at;
  explicit Columns(TupleDesc desc)
      : id(SPI_fnumber(desc, "id")),
        service_interface_id(SPI_fnumber(desc, "service_interface_id")),
        project_id(SPI_fnumber(desc, "project_id")),
        http_method(SPI_fnumber(desc, "http_method")),
        http_path(SPI_fnumber(desc, "http_path")),
        auth_type(SPI_fnumber(desc, "auth_type")),
        auth_config(SPI_fnumber(desc, "auth_config")),
        rate_limit_per_minute(SPI_fnumber(desc, "rate_limit_per_minute")),
        sync_state(SPI_fnumber(desc, "sync_state")),
        updated_at(SPI_fnumber(desc, "updated_at")) {}
};

// A column of `tuple`, or nullopt when NULL.
std::optional<Datum> column(HeapTuple tuple, TupleDesc desc, int attnum) {
  bool isnull = false;
  Datum value = heap_getattr(tuple, attnum, desc, &isnull);
  if (isnull) return std::nullopt;
  return value;
}

bool same_value(HeapTuple a, HeapTuple b, TupleDesc desc, int attnum) {
  std::optional<Datum> x = column(a, desc, attnum), y = column(b, desc, attnum);
  if (!x || !y) return !x && !y;
  Form_pg_attribute attr = TupleDescAttr(desc, attnum - 1);
  return datum_image_eq(*x, *y, attr->attbyval, attr->attlen);
}

[[noreturn]] void missing_service_interface(Datum id) {
  ereport(ERROR, (errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
                  errmsg("service interface %s does not exist",
                         DatumGetCString(DirectFunctionCall1(uuid_out, id))),
                  errhint("Create the row in gateway.service_interfaces first.")));
}

}  // namespace
}  // namespace gateway::pg

extern "C" {
PG_FUNCTION_INFO_V1(gateway_public_interfaces_change);
}

extern "C" Datum gateway_public_interfaces_change(PG_FUNCTION_ARGS) {
  using namespace gateway;
  using namespace gateway::pg;
  return sql_function([&]() -> Datum {
    pg_call([&] {
      if (!CALLED_AS_TRIGGER(fcinfo)) {
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("gateway._public_interfaces_change() must be called as a trigger")));
      }
    });
    auto* trigger = reinterpret_cast<TriggerData*>(fcinfo->context);
    const TriggerEvent event = trigger->tg_event;
    const bool inserting = TRIGGER_FIRED_BY_INSERT(event);
    const bool updating = TRIGGER_FIRED_BY_UPDATE(event);
    TupleDesc desc = trigger->tg_relation->rd_att;
    HeapTuple old_row = inserting ? nullptr : trigger->tg_trigtuple;
    HeapTuple row = inserting ? trigger->tg_trigtuple : updating ? trigger->tg_newtuple : old_row;
    const char* op = inserting ? "insert" : updating ? "update" : "delete";
    Datum result = PointerGetDatum(row);

    // Column values, and what needs a service interface, are read in PostgreSQL code; the path
    // is derived in C++ between the calls (it wraps its own).
    std::optional<Columns> cols;
    bool needs_service_interface = false, needs_path = false;
    std::optional<Datum> method;
    Datum row_id = 0, service_interface_id = 0;
    bool without_id = false;
    pg_call([&] {
      cols.emplace(desc);
      std::optional<Datum> id = column(row, desc, cols->id);
      if (!id) {
        without_id = true;  // the primary key says so after us
        return;
      }
      row_id = *id;
      if (inserting || updating) {
        std::optional<Datum> si = column(row, desc, cols->service_interface_id);
        if (!si) return;  // NOT NULL says so after us
        service_interface_id = *si;
        needs_path = !column(row, desc, cols->http_path);
        needs_service_interface =
            (inserting && !column(row, desc, cols->project_id)) || needs_path ||
            (updating && !same_value(old_row, row, desc, cols->service_interface_id));
        method = column(row, desc, cols->http_method);
      }
    });

    if (without_id) return result;
    // Reads see this transaction's own earlier writes, including those of the statement firing
    // us (an INSERT ... SELECT from a CTE that created the service interface), as they would
    // from a plpgsql trigger: advance the command counter and read under a fresh snapshot.
    // An error before the pop aborts the (sub)transaction, which drops the snapshot with it.
    if (needs_service_interface) {
      pg_call([&] {
        CommandCounterIncrement();
        PushActiveSnapshot(GetTransactionSnapshot());
      });
      std::optional<ServiceInterface> s;
      pg_call([&] {
        s = find_service_interface(service_interface_id);
        if (!s) missing_service_interface(service_interface_id);
      });
      std::optional<std::string> path;
      if (needs_path && method) {
        std::string method_text;
        pg_call([&] { method_text = std::string(text_view(DatumGetTextPP(*method))); });
        path = default_http_path(method_text, s->project_id, s->workflow_id, s->name,
                                 [&] {
                                   KeyId id;
                                   pg_call([&] { id = uuid_to_id(row_id); });
                                   return id;
                                 }());
      }
      pg_call([&] {
        std::array<int, 2> changed{};
        std::array<Datum, 2> values{};
        std::array<bool, 2> nulls{};
        int n = 0;
        if (updating || !column(row, desc, cols->project_id)) {
          changed[n] = cols->project_id;
          values[n++] = id_to_uuid(s->project_id);
        }
        if (path) {
          changed[n] = cols->http_path;
          values[n++] = PointerGetDatum(cstring_to_text(path->c_str()));
        }
        if (n > 0) row = heap_modify_tuple_by_cols(row, desc, n, changed.data(), values.data(), nulls.data());
        PopActiveSnapshot();
      });
    }

    bool unchanged = false;
    pg_call([&] {
      if (updating) {
        // Named in the SET list but unchanged: nothing for Kong.
        unchanged = true;
        for (int attnum : {cols->http_method, cols->http_path, cols->auth_type, cols->auth_config,
                           cols->rate_limit_per_minute, cols->service_interface_id}) {
          unchanged = unchanged && same_value(old_row, row, desc, attnum);
        }
        if (!unchanged) {
          int changed[2] = {cols->sync_state, cols->updated_at};
          Datum values[2] = {PointerGetDatum(cstring_to_text("pending")),
                             TimestampTzGetDatum(GetCurrentTransactionStartTimestamp())};
          bool nulls[2] = {false, false};
          row = heap_modify_tuple_by_cols(row, desc, 2, changed, values, nulls);
        }
      }
      result = PointerGetDatum(inserting || updating ? row : old_row);
      if (unchanged) return;

      // Bound keys join or leave Kong with the interface, or when its auth type changes.
      const bool with_keys = !updating || !same_value(old_row, row, desc, cols->auth_type);
      Oid types[9] = {UUIDOID, UUIDOID, TEXTOID, BOOLOID, TEXTOID, TEXTOID, TEXTOID, INT4OID, BOOLOID};
      Datum values[9];
      char nulls[9];
      auto set = [&](int i, std::optional<Datum> v) {
        values[i] = v.value_or(Datum(0));
        nulls[i] = v ? ' ' : 'n';
      };
      set(0, column(row, desc, cols->id));
      set(1, column(row, desc, cols->project_id));
      set(2, PointerGetDatum(cstring_to_text(op)));
      set(3, BoolGetDatum(with_keys));
      set(4, column(row, desc, cols->http_method));
      set(5, column(row, desc, cols->http_path));
      set(6, column(row, desc, cols->auth_type));
      set(7, column(row, desc, cols->rate_limit_per_minute));
      set(8, BoolGetDatum(restoring()));
      if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
      if (queue_plan == nullptr) {
        SPIPlanPtr plan = SPI_prepare(kQueueSql, 9, types);
        if (plan == nullptr) elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
        if (SPI_keepplan(plan) != 0) elog(ERROR, "SPI_keepplan failed");
        queue_plan = plan;
      }
      int rc = SPI_execute_plan(queue_plan, values, nulls, false, 0);
      if (rc != SPI_OK_INSERT) elog(ERROR, "queueing the sync job failed: %s", SPI_result_code_string(rc));
      SPI_finish();
    });
    if (!unchanged) wake_at_commit_of_this_transaction();
    return result;
  });
}
