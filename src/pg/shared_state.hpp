// Cluster-wide state in shared memory: per-key usage (rate-limit buckets, last use), the queue of
// failed verifications waiting to be audited, and the worker's latch.
#pragma once

#include <vector>

#include "../core/event_ring.hpp"
#include "../core/usage_table.hpp"
#include "postgres.hpp"

namespace gateway::pg {

// One failed verification, as queued for the audit log. Holds no secret: for a malformed or
// unknown key only the public lookup prefix, if the key had one.
struct VerifyFailure {
  TimestampTz at;
  Oid database;
  std::uint8_t reason;   // api_key::Reason
  bool has_key;          // key_id/user_id/project_id are known
  KeyId key_id;
  KeyId user_id;
  KeyId project_id;
  char key_prefix[16];   // NUL-terminated, empty if none
};

void request_shared_memory();  // from _PG_init
void install_shmem_hooks();

// Wakes the worker once per batch: the first caller after a flush sets its latch, later callers
// only find the flag already set. Cheap enough for the verify hot path.
void notify_worker();

// Records a successful use; returns the rate-limit decision when `limit_per_minute` > 0.
BucketDecision record_use(const KeyId& key, std::int32_t limit_per_minute, TimestampTz now);

void queue_verify_failure(const VerifyFailure& failure);

// For the worker.
void register_worker_latch(Latch* latch);
// The wake flag stays set from the first use after a flush until the worker starts the next
// flush, so a busy server wakes the worker once per batch, not once per verify.
bool work_pending();
void clear_pending_work();  // called by the worker right before it drains
void drain_usage(std::vector<UsageRecord>& out, std::int64_t resolution_us);
void restore_usage(const std::vector<UsageRecord>& records);
std::uint64_t drain_verify_failures(std::vector<VerifyFailure>& out);

}  // namespace gateway::pg
