#include "usage_limit_flush.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include "usage_limits.hpp"
#include "uuid.hpp"
#include "worker_transaction.hpp"

extern "C" {
#include "access/xact.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/snapmgr.h"
}

namespace gateway::pg {
namespace {

ArrayType* int8_array(Datum* values, int count) {
  return construct_array(values, count, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
}

// Plain C style: no C++ object lives in this frame, so an error may longjmp through it.
void write_counters(const UsageLimitRecord* records, int count) {
  Datum* ids = static_cast<Datum*>(palloc(sizeof(Datum) * count));
  Datum* periods = static_cast<Datum*>(palloc(sizeof(Datum) * count));
  Datum* granted = static_cast<Datum*>(palloc(sizeof(Datum) * count));
  Datum* spent = static_cast<Datum*>(palloc(sizeof(Datum) * count));
  for (int i = 0; i < count; ++i) {
    ids[i] = id_to_uuid(records[i].key);
    periods[i] = Int64GetDatum(records[i].counters.period);
    granted[i] = Int64GetDatum(records[i].counters.granted);
    spent[i] = Int64GetDatum(records[i].counters.spent);
  }
  Oid types[4] = {UUIDARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID};
  Datum args[4] = {
      PointerGetDatum(construct_array(ids, count, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR)),
      PointerGetDatum(int8_array(periods, count)), PointerGetDatum(int8_array(granted, count)),
      PointerGetDatum(int8_array(spent, count))};
  // Within one period both counters only grow, so GREATEST makes a late or repeated write
  // harmless; a row already in a later period (a manual refill moved it on) is left alone.
  int rc = SPI_execute_with_args(
      "UPDATE gateway.api_key_usage AS u"
      "   SET granted = CASE WHEN u.period = r.period THEN GREATEST(u.granted, r.granted) ELSE r.granted END,"
      "       spent = CASE WHEN u.period = r.period THEN GREATEST(u.spent, r.spent) ELSE r.spent END,"
      "       period = r.period, updated_at = now()"
      "  FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[]) AS r(id, period, granted, spent)"
      " WHERE u.key_id = r.id AND u.period <= r.period",
      4, types, args, nullptr, false, 0);
  if (rc != SPI_OK_UPDATE) elog(ERROR, "pg_gateway usage limit flush failed: %s", SPI_result_code_string(rc));
}

}  // namespace

FlushResult flush_usage_limits() {
  std::vector<UsageLimitRecord> records;
  drain_usage_limits(records);
  if (records.empty()) return FlushResult::kDone;
  // Another database's keys cannot be written from here (see flush_usage's warning): they count
  // as written, so their slots do not fill the table forever.
  auto foreign = std::stable_partition(records.begin(), records.end(), [](const UsageLimitRecord& r) {
    return r.database == MyDatabaseId;
  });
  std::vector<UsageLimitRecord> others(foreign, records.end());
  records.erase(foreign, records.end());
  confirm_usage_limits(others, /*written=*/true);
  if (records.empty()) return FlushResult::kDone;

  std::string error;
  const bool written = try_transaction("pg_gateway: recording API key usage limits", error, [&] {
    pg_call([&] {
      if (OidIsValid(get_extension_oid("pg_gateway", true))) {
        write_counters(records.data(), static_cast<int>(records.size()));
      }
    });
  });
  // Without the extension there is nowhere to write: the counters are dropped like last-use times.
  confirm_usage_limits(records, written);
  if (written) return FlushResult::kDone;
  // A lock wait given up is logged by the worker's loop, once per run of them.
  if (failed_on_lock()) return FlushResult::kLocked;
  log_worker_transaction_failure("pg_gateway: recording API key usage limits", error);
  return FlushResult::kFailed;
}

}  // namespace gateway::pg
