#include "shared_state.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "../core/set_assoc.hpp"
#include "error_bridge.hpp"
#include "rehash_queue.hpp"
#include "settings.hpp"
#include "target_health.hpp"
#include "verify_cache.hpp"
#include "usage_limits.hpp"

extern "C" {
#include "pgstat.h"
#include "commands/dbcommands.h"
#include "storage/spin.h"
#include "storage/condition_variable.h"
}

namespace gateway::pg {
namespace {

// Lock partitions for the usage table; verify touches one, the worker walks them all.
constexpr int kUsagePartitions = 16;
constexpr int kAuditRingCapacity = 16384;
constexpr const char* kTrancheName = "pg_gateway";
constexpr int kTestRequestSlots = 64;

struct SharedHeader {
  pg_atomic_uint32 work_pending;
  // Once the audit queue is full, further verify failures are only counted, without its lock,
  // so a flood of bad keys cannot make verifying good ones wait.
  pg_atomic_uint32 failures_full;
  // Set when the audit queue is half full: the worker writes it at once instead of waiting for
  // the end of its batch window.
  pg_atomic_uint32 flush_now;
  // Set at commit of a transaction that queued sync jobs; the worker claims when it sees it.
  pg_atomic_uint32 sync_wanted;
  pg_atomic_uint64 keys_generation;
  pg_atomic_uint64 failures_dropped;
  // Durable decrypt audits: every queued event gets the next sequence number (under the ring
  // lock); the worker publishes the highest one it has committed, and counts events it gave up
  // on, so a waiter whose event was lost fails instead of waiting for its timeout.
  std::uint64_t audit_next_seq;
  pg_atomic_uint64 audit_committed_seq;
  pg_atomic_uint64 audit_lost;
  ConditionVariable audit_committed;
  Latch* worker_latch;
  std::size_t usage_sets;
  // Connector tests a backend waits for (gateway.connector_test with a timeout): the worker
  // queues their jobs in its own transaction, since the caller's is not committed while it waits.
  slock_t test_lock;
  int test_count;
  KeyId test_connectors[kTestRequestSlots];
};

SharedHeader* header = nullptr;
LWLockPadded* locks = nullptr;  // kUsagePartitions usage locks, then the failure ring lock
void* usage_memory = nullptr;
void* ring_memory = nullptr;

shmem_request_hook_type previous_request_hook = nullptr;
shmem_startup_hook_type previous_startup_hook = nullptr;

std::size_t shared_size() {
  std::size_t size = MAXALIGN(sizeof(SharedHeader));
  size = add_size(size, MAXALIGN(UsageTable::bytes_for(static_cast<std::size_t>(settings.usage_slots))));
  size = add_size(size, MAXALIGN(EventRing<AuditEvent>::bytes_for(kAuditRingCapacity)));
  return size;
}

void shmem_request() {
  if (previous_request_hook != nullptr) previous_request_hook();
  RequestAddinShmemSpace(shared_size());
  RequestAddinShmemSpace(target_health_size());
  RequestAddinShmemSpace(rehash_queue_shmem_size());
  RequestNamedLWLockTranche(kTrancheName, kUsagePartitions + 1);
  request_verify_cache_shmem();
  request_usage_limits_memory();
}

void shmem_startup() {
  if (previous_startup_hook != nullptr) previous_startup_hook();

  LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
  bool found = false;
  char* base = static_cast<char*>(ShmemInitStruct("pg_gateway", shared_size(), &found));
  header = reinterpret_cast<SharedHeader*>(base);
  usage_memory = base + MAXALIGN(sizeof(SharedHeader));
  ring_memory = static_cast<char*>(usage_memory) +
                MAXALIGN(UsageTable::bytes_for(static_cast<std::size_t>(settings.usage_slots)));
  if (!found) {
    pg_atomic_init_u32(&header->work_pending, 0);
    pg_atomic_init_u32(&header->failures_full, 0);
    pg_atomic_init_u32(&header->flush_now, 0);
    pg_atomic_init_u32(&header->sync_wanted, 0);
    pg_atomic_init_u64(&header->keys_generation, 1);
    pg_atomic_init_u64(&header->failures_dropped, 0);
    header->audit_next_seq = 0;
    pg_atomic_init_u64(&header->audit_committed_seq, 0);
    pg_atomic_init_u64(&header->audit_lost, 0);
    ConditionVariableInit(&header->audit_committed);
    header->worker_latch = nullptr;
    SpinLockInit(&header->test_lock);
    header->test_count = 0;
    header->usage_sets = UsageTable::sets_for(static_cast<std::size_t>(settings.usage_slots));
    UsageTable(usage_memory, header->usage_sets, true);
    EventRing<AuditEvent>(ring_memory, kAuditRingCapacity, true);
  }
  locks = GetNamedLWLockTranche(kTrancheName);
  target_health_init();
  init_verify_cache_shmem();
  rehash_queue_shmem_init();
  init_usage_limits_memory();
  LWLockRelease(AddinShmemInitLock);
}

// Holds an LWLock for a scope, so a C++ exception (bad_alloc while draining) cannot leak it.
class LockGuard {
 public:
  explicit LockGuard(LWLock* lock) : lock_(lock) { LWLockAcquire(lock_, LW_EXCLUSIVE); }
  ~LockGuard() { LWLockRelease(lock_); }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;

 private:
  LWLock* lock_;
};

UsageTable usage_table() { return UsageTable(usage_memory, header->usage_sets, false); }
EventRing<AuditEvent> failure_ring() {
  return EventRing<AuditEvent>(ring_memory, kAuditRingCapacity, false);
}
LWLock* usage_lock(std::size_t partition) { return &locks[partition].lock; }
LWLock* ring_lock() { return &locks[kUsagePartitions].lock; }

}  // namespace

void request_shared_memory() {
  previous_request_hook = shmem_request_hook;
  shmem_request_hook = shmem_request;
}

void install_shmem_hooks() {
  previous_startup_hook = shmem_startup_hook;
  shmem_startup_hook = shmem_startup;
}

void notify_worker() {
  if (pg_atomic_read_u32(&header->work_pending) != 0) return;
  if (pg_atomic_exchange_u32(&header->work_pending, 1) != 0) return;
  Latch* latch = header->worker_latch;
  if (latch != nullptr) SetLatch(latch);
}

namespace {

// Per backend: when this backend last put each recently used key's use into the shared table. A
// key without a rate limit needs that only for last_used_at, which has a resolution of
// gateway.last_used_resolution (15 min by default), and the worker writes a use only when it lies
// that far past the row's last_used_at: a backend that recorded a key's use within the resolution
// skips the shared table's lock, its cache line and the worker's wake-up (a hot key's verify spent
// more there than anywhere else of its own). The row still trails the last use by at most the
// resolution; by twice that only if the recorded use was lost before the worker wrote it (its
// slot taken by another key, gateway.usage_slots). This matters most for keys in the verify
// cache: their cached last_used_at is the row's when it was filled (the worker's writes do not
// invalidate it), so once that is older than the resolution only this table spares them a record
// per call. 4-way sets of 2,048 (192 KiB, allocated on first use) hold a working set of thousands
// of keys.
struct RecentUse {
  KeyId key{};
  TimestampTz at = 0;  // 0: free
};
constexpr std::size_t kRecentUseSets = 2048;
constexpr std::size_t kRecentUseWays = 4;
std::vector<RecentUse> recent_uses;

RecentUse* recent_use_set(const KeyId& key) {
  if (recent_uses.empty()) recent_uses.resize(kRecentUseSets * kRecentUseWays);
  std::uint32_t h = 0;
  std::memcpy(&h, key.data(), sizeof(h));  // key ids are random (gen_random_uuid)
  return &recent_uses[(h % kRecentUseSets) * kRecentUseWays];
}

TimestampTz recency(const RecentUse& e) { return e.at; }

// Whether this backend recorded `key`'s use within the window before `now`.
bool recently_recorded(const KeyId& key, TimestampTz now, TimestampTz window) {
  const RecentUse* found = find_way(recent_use_set(key), kRecentUseWays,
                                    [&](const RecentUse& e) { return e.key == key; }, recency);
  return found != nullptr && now >= found->at && now - found->at < window;
}

// Remembers a recorded use, in the key's own way or else the oldest.
void remember_recorded(const KeyId& key, TimestampTz now) {
  *way_to_fill(recent_use_set(key), kRecentUseWays, [&](const RecentUse& e) { return e.key == key; },
               recency) = RecentUse{key, now};
}

}  // namespace

void prefetch_use(const KeyId& key) {
  if (header != nullptr) usage_table().prefetch(key);
}

BucketDecision record_use(const KeyId& key, std::int32_t limit_per_minute, TimestampTz now,
                          std::optional<TimestampTz> row_last_used) {
  const TimestampTz resolution = static_cast<TimestampTz>(settings.last_used_resolution_s) * USECS_PER_SEC;
  if (limit_per_minute <= 0 && resolution > 0) {
    // The worker's UPDATE skips a row whose last_used_at is within the resolution of the use
    // (usage_flush.cpp): recording such a use would only cost a cache miss here and a no-op there.
    if (row_last_used && now - *row_last_used < resolution) return BucketDecision{true, 0, 0};
    // Before anything shared; may allocate (C++ code: outside pg_call, like the callers).
    if (recently_recorded(key, now, resolution)) return BucketDecision{true, 0, 0};
  }
  UsageTable table = usage_table();
  LWLock* lock = usage_lock(UsageTable::partition_of(table.set_of(key), kUsagePartitions));
  BucketDecision decision{true, 0, 0};
  bool wake = false;
  // What this backend remembers as recorded: `now`, unless this use lies within the resolution of
  // the one the worker last took from the slot (perhaps another backend's): the row then stays at
  // that one, so this backend must record again a resolution after it, not after now (else the
  // row trails a second backend's uses by up to twice the resolution, no slot lost).
  TimestampTz remembered = now;
  {
    LockGuard guard(lock);
    UsageSlot& slot = table.find_or_claim(key, MyDatabaseId, now);
    if (limit_per_minute > 0) decision = take_token(slot.bucket, limit_per_minute, now);
    if (decision.allowed) {
      slot.last_used_us = now;
      // The worker writes a use only a resolution past the one it last took from this slot
      // (UsageTable::drain_set): a use before that needs no batch. A rate-limited key comes here
      // on every call, and marking it woke the worker to scan the whole table every flush
      // interval for nothing. Already dirty: the wake that marked it is still to be taken.
      if (!slot.dirty) {
        if (slot.flushed_us == 0 || now - slot.flushed_us >= resolution) {
          slot.dirty = true;
          wake = true;
        } else if (now >= slot.flushed_us) {
          remembered = slot.flushed_us;
        }
      }
    }
  }

  if (wake) notify_worker();
  if (decision.allowed && limit_per_minute <= 0) remember_recorded(key, remembered);
  return decision;
}

bool queue_audit(const AuditEvent& event, bool required, AuditTicket* ticket) {
  if (!required && pg_atomic_read_u32(&header->failures_full) != 0) {
    pg_atomic_fetch_add_u64(&header->failures_dropped, 1);
    return false;
  }
  bool queued;
  bool urgent;
  {
    LockGuard guard(ring_lock());
    EventRing<AuditEvent> ring = failure_ring();
    AuditEvent queued_event = event;
    if (queued_event.seq == 0) queued_event.seq = header->audit_next_seq + 1;
    if (ticket != nullptr) queued_event.durable = true;
    queued = ring.push(queued_event, /*count_drop=*/!required);
    if (queued && event.seq == 0) header->audit_next_seq = queued_event.seq;
    if (queued && ticket != nullptr) {
      ticket->seq = queued_event.seq;
      ticket->lost = pg_atomic_read_u64(&header->audit_lost);
    }
    if (ring.size() == ring.capacity()) pg_atomic_write_u32(&header->failures_full, 1);
    // Only events that must not be lost hurry the worker; verify failures are sampled instead.
    // A durable one is waited for: it is written at once.
    urgent = (required && ring.size() >= ring.capacity() / 2) || (queued && ticket != nullptr);
  }
  notify_worker();
  if (urgent && pg_atomic_exchange_u32(&header->flush_now, 1) == 0) {
    Latch* latch = header->worker_latch;
    if (latch != nullptr) SetLatch(latch);
  }
  return queued;
}

bool worker_running() { return header != nullptr && header->worker_latch != nullptr; }

AuditWait wait_audit_committed(const AuditTicket& ticket, int timeout_ms) {
  TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
  AuditWait result = AuditWait::kCommitted;
  ConditionVariablePrepareToSleep(&header->audit_committed);
  for (;;) {
    if (pg_atomic_read_u64(&header->audit_committed_seq) >= ticket.seq) break;
    if (pg_atomic_read_u64(&header->audit_lost) != ticket.lost) {
      // Something was given up since we queued; it may have been ours. Committed after all?
      result = pg_atomic_read_u64(&header->audit_committed_seq) >= ticket.seq ? AuditWait::kCommitted
                                                                              : AuditWait::kLost;
      break;
    }
    long left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
    if (left <= 0 || ConditionVariableTimedSleep(&header->audit_committed, left, PG_WAIT_EXTENSION)) {
      result = pg_atomic_read_u64(&header->audit_committed_seq) >= ticket.seq ? AuditWait::kCommitted
                                                                              : AuditWait::kTimedOut;
      break;
    }
  }
  ConditionVariableCancelSleep();
  return result;
}

void register_worker_latch(Latch* latch) { header->worker_latch = latch; }

std::uint64_t encryption_keys_generation() { return pg_atomic_read_u64(&header->keys_generation); }

void bump_encryption_keys_generation() { pg_atomic_fetch_add_u64(&header->keys_generation, 1); }

void notify_sync() {
  if (header == nullptr) return;
  // A wake the worker has not taken yet covers this commit too: skip the signal (a kill() per
  // commit under a burst of publishes, and a context switch in the worker).
  if (pg_atomic_exchange_u32(&header->sync_wanted, 1) != 0) return;
  Latch* latch = header->worker_latch;
  if (latch != nullptr) SetLatch(latch);
}

bool worker_serves_this_database() {
  static int serves = -1;  // -1: not known yet; a connected database cannot be renamed
  if (serves < 0) {
    std::string here;
    pg_call([&] {
      const char* name = get_database_name(MyDatabaseId);
      here = name != nullptr ? name : "";
    });
    serves = settings.database != nullptr && here == settings.database ? 1 : 0;
  }
  return serves == 1;
}

bool request_connector_test(const KeyId& connector) {
  if (header == nullptr || header->worker_latch == nullptr) return false;
  bool queued = false;
  SpinLockAcquire(&header->test_lock);
  for (int i = 0; i < header->test_count; ++i) {
    if (header->test_connectors[i] == connector) queued = true;  // one test covers both callers
  }
  if (!queued && header->test_count < kTestRequestSlots) {
    header->test_connectors[header->test_count++] = connector;
    queued = true;
  }
  SpinLockRelease(&header->test_lock);
  if (queued) {
    pg_atomic_write_u32(&header->sync_wanted, 1);
    Latch* latch = header->worker_latch;
    if (latch != nullptr) SetLatch(latch);
  }
  return queued;
}

void take_connector_tests(std::vector<KeyId>& out) {
  out.clear();
  if (header == nullptr) return;
  SpinLockAcquire(&header->test_lock);
  out.assign(header->test_connectors, header->test_connectors + header->test_count);
  header->test_count = 0;
  SpinLockRelease(&header->test_lock);
}

void return_connector_tests(const std::vector<KeyId>& tests) {
  if (header == nullptr) return;
  SpinLockAcquire(&header->test_lock);
  for (const KeyId& connector : tests) {
    bool queued = false;
    for (int i = 0; i < header->test_count; ++i) {
      if (header->test_connectors[i] == connector) queued = true;
    }
    if (!queued && header->test_count < kTestRequestSlots) header->test_connectors[header->test_count++] = connector;
  }
  SpinLockRelease(&header->test_lock);
}

bool take_sync_wanted() { return pg_atomic_exchange_u32(&header->sync_wanted, 0) != 0; }
bool sync_wanted_pending() { return pg_atomic_read_u32(&header->sync_wanted) != 0; }

void request_flush_now() {
  if (header == nullptr || pg_atomic_exchange_u32(&header->flush_now, 1) != 0) return;
  Latch* latch = header->worker_latch;
  if (latch != nullptr) SetLatch(latch);
}

bool take_flush_now() { return pg_atomic_exchange_u32(&header->flush_now, 0) != 0; }

bool work_pending() { return pg_atomic_read_u32(&header->work_pending) != 0; }

void clear_pending_work() { pg_atomic_write_u32(&header->work_pending, 0); }

void drain_usage(std::vector<UsageRecord>& out, std::int64_t resolution_us) {
  UsageTable table = usage_table();
  for (std::size_t set = 0; set < table.sets(); ++set) {
    LockGuard guard(usage_lock(UsageTable::partition_of(set, kUsagePartitions)));
    table.drain_set(set, out, resolution_us);
  }
}

void restore_usage(const std::vector<UsageRecord>& records) {
  UsageTable table = usage_table();
  TimestampTz now = GetCurrentTimestamp();
  for (const UsageRecord& record : records) {
    LockGuard guard(usage_lock(UsageTable::partition_of(table.set_of(record.key), kUsagePartitions)));
    table.restore(record, now);
  }
}

void confirm_audit_committed(std::uint64_t seq) {
  std::uint64_t seen = pg_atomic_read_u64(&header->audit_committed_seq);
  // Monotonic: a batch of requeued (older) events must not move it back.
  while (seen < seq && !pg_atomic_compare_exchange_u64(&header->audit_committed_seq, &seen, seq)) {
  }
  ConditionVariableBroadcast(&header->audit_committed);
}

void report_audit_lost() {
  pg_atomic_fetch_add_u64(&header->audit_lost, 1);
  ConditionVariableBroadcast(&header->audit_committed);
}

std::uint64_t drain_audit_events(std::vector<AuditEvent>& out) {
  LockGuard guard(ring_lock());
  std::uint64_t dropped = failure_ring().drain(out);
  pg_atomic_write_u32(&header->failures_full, 0);
  return dropped + pg_atomic_exchange_u64(&header->failures_dropped, 0);
}

}  // namespace gateway::pg
