#include "audit_retention.hpp"

#include <string>

#include "postgres.hpp"
#include "settings.hpp"
#include "worker_transaction.hpp"

namespace gateway::pg {
namespace {

// A batch deletes at most this many records: a short transaction, short locks, a bounded WAL
// burst; a full batch is followed by the next at the worker's next turn.
constexpr int kBatchRows = 10000;
constexpr long kEveryMs = 10 * 60 * 1000;

TimestampTz next_due = 0;
int applied_retention_s = 0;  // the setting the schedule was made for
long long pruned_this_run = 0;
bool failing = false;

}  // namespace

long audit_retention_wait_ms() {
  if (settings.audit_retention_s <= 0) return -1;
  if (settings.audit_retention_s != applied_retention_s) return 0;
  long ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), next_due);
  return ms < 0 ? 0 : ms;
}

void apply_audit_retention() {
  if (settings.audit_retention_s <= 0) {
    applied_retention_s = 0;
    return;
  }
  const TimestampTz now = GetCurrentTimestamp();
  if (settings.audit_retention_s == applied_retention_s && now < next_due) return;
  applied_retention_s = settings.audit_retention_s;

  long long deleted = 0;
  std::string error;
  const bool ok = try_transaction("pg_gateway: applying gateway.audit_retention", error, [&] {
    auto probe = spi_query("SELECT to_regprocedure('gateway._audit_prune(timestamp with time zone,integer,text)') IS NOT NULL");
    if (probe.empty() || probe[0][0] != std::optional<std::string>("t")) return;  // older schema
    auto rows = spi_query(
        "SELECT gateway._audit_prune(now() - make_interval(secs => $1::bigint), $2::int, 'gateway.audit_retention')",
        {std::to_string(settings.audit_retention_s), std::to_string(kBatchRows)});
    if (!rows.empty() && rows[0][0]) deleted = std::stoll(*rows[0][0]);
  });
  if (!ok) {
    if (!failing) {
      ereport(LOG, (errmsg("pg_gateway worker: applying gateway.audit_retention failed: %s", error.c_str()),
                    errhint("The worker tries again in 10 minutes and logs again once it succeeds.")));
    }
    failing = true;
    next_due = TimestampTzPlusMilliseconds(now, kEveryMs);
    return;
  }
  if (failing) ereport(LOG, (errmsg("pg_gateway worker: gateway.audit_retention is applied again")));
  failing = false;
  pruned_this_run += deleted;
  if (deleted >= kBatchRows) {
    next_due = now;  // more to do: the next batch at the worker's next turn
    return;
  }
  if (pruned_this_run > 0) {
    ereport(LOG, (errmsg("pg_gateway worker: gateway.audit_retention deleted %lld audit records older than %d s",
                         pruned_this_run, settings.audit_retention_s)));
  }
  pruned_this_run = 0;
  next_due = TimestampTzPlusMilliseconds(now, kEveryMs);
}

}  // namespace gateway::pg
