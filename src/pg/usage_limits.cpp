#include "usage_limits.hpp"

#include "cached_relation.hpp"
#include "error_bridge.hpp"
#include "settings.hpp"
#include "shared_state.hpp"
#include "uuid.hpp"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
}

namespace gateway::pg {
namespace {

constexpr int kPartitions = 16;
constexpr const char* kTranche = "pg_gateway_usage_limits";

struct Header {
  // Bumped after every commit that refilled a key: a slot read at an older generation reads its
  // row again before spending, so a refill reaches memory exactly once (merge() is idempotent).
  pg_atomic_uint64 refill_generation;
  std::size_t sets;
};

Header* header = nullptr;
void* slots = nullptr;
LWLockPadded* locks = nullptr;

std::size_t memory_size() {
  return add_size(MAXALIGN(sizeof(Header)),
                  UsageLimitTable::bytes_for(static_cast<std::size_t>(settings.usage_slots)));
}

UsageLimitTable table() { return UsageLimitTable(slots, header->sets, false); }

class Locked {
 public:
  explicit Locked(const KeyId& key) {
    std::size_t set = table().set_of(key);
    lock_ = &locks[set % kPartitions].lock;
    LWLockAcquire(lock_, LW_EXCLUSIVE);
  }
  explicit Locked(std::size_t set) : lock_(&locks[set % kPartitions].lock) {
    LWLockAcquire(lock_, LW_EXCLUSIVE);
  }
  ~Locked() { LWLockRelease(lock_); }
  Locked(const Locked&) = delete;
  Locked& operator=(const Locked&) = delete;

 private:
  LWLock* lock_;
};

CachedRelation usage_rows("api_key_usage", "api_key_usage_pkey");
unsigned columns_generation = 0;
AttrNumber period_column, granted_column, spent_column;

// The key's row, read with the latest snapshot (not the statement's: a refill committed after
// this transaction began must not be missed once its generation was seen). No row: nothing left.
UsageCounters read_counters(const KeyId& key) {
  UsageCounters counters;
  pg_call([&] {
    Oid rel = usage_rows.table();
    if (usage_rows.generation() != columns_generation) {
      period_column = get_attnum(rel, "period");
      granted_column = get_attnum(rel, "granted");
      spent_column = get_attnum(rel, "spent");
      columns_generation = usage_rows.generation();
    }
    Datum value = id_to_uuid(key);
    RegProcedure eq = F_UUID_EQ;
    usage_rows.probe(&value, &eq, 1, GetLatestSnapshot(), [&](TupleTableSlot* slot) {
      bool isnull = false;
      counters.period = DatumGetInt64(slot_getattr(slot, period_column, &isnull));
      counters.granted = DatumGetInt64(slot_getattr(slot, granted_column, &isnull));
      counters.spent = DatumGetInt64(slot_getattr(slot, spent_column, &isnull));
      return false;
    });
  });
  return counters;
}

bool refilled_in_this_transaction = false;
bool callback_registered = false;

void on_transaction_end(XactEvent event, void*) {
  if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT) {
    if (refilled_in_this_transaction && header != nullptr) {
      pg_atomic_fetch_add_u64(&header->refill_generation, 1);
    }
  }
  if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
      event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT ||
      event == XACT_EVENT_PREPARE) {
    refilled_in_this_transaction = false;
  }
}

}  // namespace

void request_usage_limits_memory() {
  RequestAddinShmemSpace(memory_size());
  RequestNamedLWLockTranche(kTranche, kPartitions);
}

void init_usage_limits_memory() {
  bool found = false;
  char* base = static_cast<char*>(ShmemInitStruct("pg_gateway usage limits", memory_size(), &found));
  header = reinterpret_cast<Header*>(base);
  slots = base + MAXALIGN(sizeof(Header));
  if (!found) {
    pg_atomic_init_u64(&header->refill_generation, 1);
    header->sets = UsageLimitTable::sets_for(static_cast<std::size_t>(settings.usage_slots));
    UsageLimitTable(slots, header->sets, true);
  }
  locks = GetNamedLWLockTranche(kTranche);
}

UsageAnswer spend_usage(const KeyId& key, const UsageLimitConfig& config, std::int64_t cost,
                        TimestampTz now) {
  const std::int64_t period = refill_period(config, now);
  if (RecoveryInProgress()) {
    // A standby cannot count: it may only say what the primary last persisted.
    UsageCounters counters = read_counters(key);
    roll_to(counters, config, period);
    return UsageAnswer{cost == 0, remaining(counters)};
  }
  const std::uint64_t generation = pg_atomic_read_u64(&header->refill_generation);
  {
    Locked guard(key);
    UsageLimitSlot* slot = table().find(key, MyDatabaseId, now);
    if (slot != nullptr && slot->loaded_generation == generation) {
      roll_to(slot->counters, config, period);
      SpendDecision d = try_spend(slot->counters, cost);
      if (d.allowed && cost > 0) notify_worker();
      return UsageAnswer{d.allowed, d.remaining};
    }
  }
  // First use here, or a refill committed since the slot was read: read the row (outside the
  // lock), then fold it in.
  UsageCounters stored = read_counters(key);
  bool allowed = false;
  std::int64_t left = 0;
  bool claimed = true;
  {
    Locked guard(key);
    UsageLimitTable t = table();
    UsageLimitSlot* slot = t.find(key, MyDatabaseId, now);
    if (slot == nullptr) {
      slot = t.claim(key, MyDatabaseId, now);
      if (slot != nullptr) slot->counters = slot->persisted = stored;
    } else {
      merge(slot->counters, stored);
    }
    if (slot == nullptr) {
      claimed = false;
    } else {
      if (slot->loaded_generation < generation) slot->loaded_generation = generation;
      roll_to(slot->counters, config, period);
      SpendDecision d = try_spend(slot->counters, cost);
      allowed = d.allowed;
      left = d.remaining;
    }
  }
  if (!claimed) {
    // Every slot of the set holds uses not yet written: refuse rather than forget one, and ask
    // the worker to write now so slots free up.
    request_flush_now();
    roll_to(stored, config, period);
    return UsageAnswer{false, remaining(stored)};
  }
  if (allowed && cost > 0) notify_worker();
  return UsageAnswer{allowed, left};
}

void refund_usage(const KeyId& key, std::int64_t cost) {
  if (cost == 0 || RecoveryInProgress()) return;
  Locked guard(key);
  UsageLimitSlot* slot = table().find(key, MyDatabaseId, GetCurrentTimestamp());
  if (slot != nullptr) refund(slot->counters, cost);
}

void drain_usage_limits(std::vector<UsageLimitRecord>& out) {
  UsageLimitTable t = table();
  for (std::size_t set = 0; set < t.sets(); ++set) {
    Locked guard(set);
    t.drain_set(set, out);
  }
}

void confirm_usage_limits(const std::vector<UsageLimitRecord>& records, bool written) {
  UsageLimitTable t = table();
  for (const UsageLimitRecord& record : records) {
    Locked guard(t.set_of(record.key));
    t.confirm(record, written);
  }
}

}  // namespace gateway::pg

extern "C" {
PG_FUNCTION_INFO_V1(gateway_usage_refilled);
}

// gateway._usage_refilled(): called by api_key_refill. At commit (never on abort) backends learn
// that some key's row gained uses and read it again before their next spend.
extern "C" Datum gateway_usage_refilled(PG_FUNCTION_ARGS) {
  using namespace gateway::pg;
  if (!callback_registered) {
    RegisterXactCallback(on_transaction_end, nullptr);
    callback_registered = true;
  }
  refilled_in_this_transaction = true;
  PG_RETURN_VOID();
}
