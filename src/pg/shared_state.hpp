// Cluster-wide state in shared memory: per-key usage (rate-limit buckets, last use), the queue of
// audit events the worker writes (failed verifications, decryptions), and the worker's latch.
#pragma once

#include <optional>

#include <vector>

#include "../core/event_ring.hpp"
#include "../core/usage_table.hpp"
#include "postgres.hpp"

namespace gateway::pg {

// An audit record written by the worker rather than by the statement that caused it: verify
// must not write, and a decryption must stay audited even if its transaction rolls back. Holds
// no secret.
enum class AuditKind : std::uint8_t {
  kVerifyFailed = 0,         // label: key prefix; reason: api_key::Reason
  kCredentialsDecrypted,     // label: context; key_number: encryption key id
  kConnectorDecrypted,       // object_id: connector; key_number: encryption key id
};

struct AuditEvent {
  TimestampTz at;
  Oid database;
  Oid role;                // the role that acted (outside any SECURITY DEFINER function)
  AuditKind kind;
  std::uint8_t reason;
  bool has_object;         // object_id/subject_id are known
  bool has_project;
  bool has_actor;
  KeyId object_id;
  KeyId subject_id;        // whose object it is (a key's owner)
  KeyId project_id;
  KeyId actor_id;          // gateway.current_user_id() when known
  std::int32_t key_number;
  char label[64];          // NUL-terminated, may be empty
  std::uint64_t seq;       // set when first queued; kept when the worker queues it again
  bool durable;            // a backend waits for its commit (gateway.audit_decrypt_durable)
};

// What a backend needs to wait for the commit of an event it queued.
struct AuditTicket {
  std::uint64_t seq = 0;
  std::uint64_t lost = 0;  // the lost-event counter when it was queued
};

enum class AuditWait { kCommitted, kTimedOut, kLost };

void request_shared_memory();  // from _PG_init
void install_shmem_hooks();

// Wakes the worker once per batch: the first caller after a flush sets its latch, later callers
// only find the flag already set. Cheap enough for the verify hot path.
void notify_worker();

// Records a successful use; returns the rate-limit decision when `limit_per_minute` > 0.
// `row_last_used` is the key row's last_used_at as verify read it: a key without a rate limit whose
// row is already within gateway.last_used_resolution of `now` is not recorded at all (the worker
// would not rewrite that row), nor is one this backend recorded within that resolution.
// Starts loading the key's slot of the usage table (UsageTable::prefetch): verify calls it as soon
// as it knows a rate-limited key's id, so the slot's miss overlaps the secret's check. A
// rate-limited key not in the CPU's caches otherwise waited on memory for its slot on every call.
void prefetch_use(const KeyId& key);

BucketDecision record_use(const KeyId& key, std::int32_t limit_per_minute, TimestampTz now,
                          std::optional<TimestampTz> row_last_used);

// Queues an audit event. A `required` event (a decryption) is never dropped: if the queue is
// full the call returns false and the caller must refuse the operation. Others (verify
// failures) are counted instead of recorded when the queue is full.
// With `ticket`, the event is durable: the worker is hurried to write it at once, and the caller
// may wait_audit_committed().
bool queue_audit(const AuditEvent& event, bool required, AuditTicket* ticket = nullptr);

// True while the worker runs (it has registered its latch).
bool worker_running();

// Sleeps on the latch until the worker has committed the event of `ticket`, the event was lost
// (the worker gave up on a batch), or `timeout_ms` passes. PostgreSQL code that may raise
// (interrupts): call inside pg_call.
AuditWait wait_audit_committed(const AuditTicket& ticket, int timeout_ms);

// Tells the worker that sync jobs were committed (called at commit, never before).
void notify_sync();

// The worker works only in gateway.database: what it does for backends (audit, tests) is for
// backends of that database. May raise (catalog lookup): call from C++ code under pg_call rules.
bool worker_serves_this_database();

// Asks the worker to test a connector now (gateway.connector_test waiting for its result). False
// when no worker runs or 64 requests already wait.
bool request_connector_test(const KeyId& connector);

// For the worker.
void register_worker_latch(Latch* latch);
void take_connector_tests(std::vector<KeyId>& out);  // the requests since the last call
// Requests taken but not queued (the worker's transaction failed): kept for its next try, without
// a wake-up (the worker tries again at its next one, not in a busy loop).
void return_connector_tests(const std::vector<KeyId>& tests);
bool take_sync_wanted();  // true once after each notify_sync()
bool sync_wanted_pending();  // the same flag, left as it is
bool take_flush_now();
void request_flush_now();  // asks the worker to write its batch at once  // true when the audit queue asked to be written at once

// Bumped when a change to gateway.encryption_keys commits; backends compare it with the
// generation their cached copy was read at.
std::uint64_t encryption_keys_generation();
void bump_encryption_keys_generation();
// The wake flag stays set from the first use after a flush until the worker starts the next
// flush, so a busy server wakes the worker once per batch, not once per verify.
bool work_pending();
void clear_pending_work();  // called by the worker right before it drains
void drain_usage(std::vector<UsageRecord>& out, std::int64_t resolution_us);
void restore_usage(const std::vector<UsageRecord>& records);
std::uint64_t drain_audit_events(std::vector<AuditEvent>& out);
// After the commit that recorded events up to `seq`: wakes the backends waiting for them.
void confirm_audit_committed(std::uint64_t seq);
// After events were given up (logged instead of recorded, or not this database's): their waiters
// fail rather than wait for a commit that will not come.
void report_audit_lost();

}  // namespace gateway::pg
