// The worker's sync of one target (Kong, Temporal): claims the target's due jobs from
// gateway.sync_jobs in a short transaction, makes the target match the rows over libcurl multi
// outside any transaction, records outcomes in another, retries with backoff, stops calling a
// target that is down (its own circuit breaker), and reconciles drift. The worker runs one engine
// per target, each with its own client, so one target being down never slows the other.
// Driven by the worker's loop: it never blocks and never polls.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "../core/failure_streak.hpp"
#include "../core/http_client.hpp"
#include "../core/retry_policy.hpp"
#include "sync_target.hpp"

namespace gateway::pg {

class SyncEngine {
 public:
  explicit SyncEngine(std::unique_ptr<SyncTarget> target);
  ~SyncEngine();

  // Called after every wake-up. `commit_seen`: a transaction that queued jobs committed.
  void step(bool commit_seen);
  // Settings changed (SIGHUP): the client is rebuilt once nothing is in flight.
  void reload();
  // No URL set: commits need not wake us (the wake they leave behind is taken after a reload).
  bool paused() const { return warned_paused_; }
  // What to wait on before the next step: client sockets and a timeout (-1: none), and the
  // generation of that socket set (it changes whenever the sockets or their events do).
  void wait_spec(std::vector<http::WaitSocket>& sockets, long& timeout_ms,
                 std::uint64_t& generation);
  // A socket from wait_spec() is ready.
  void socket_ready(int fd, bool readable, bool writable);

 private:
  struct Finished {
    std::int64_t job_id;
    sync::JobOutcome outcome;
    int attempts;
    std::optional<double> next_change;
  };

  bool ready();                 // extension installed at 0.2.0+, URL set, client built
  void build_client();
  void claim_and_start();
  void start_job(std::int64_t job_id, const std::string& kind, const std::string& object_id,
                 int attempts, const std::string& state_json);
  void record_finished();
  bool record_one(const nlohmann::json& row, std::string& error);
  nlohmann::json outcome_row(const Finished& f, std::int64_t now);
  bool record_due() const;
  // The worker's own transactions: a failure backs off (gateway.sync_retry_base/max) and is
  // logged once per run of failures, with the count when it ends.
  template <typename Body>
  bool db_transaction(const char* what, Body&& body);
  void db_failed(const char* what, const std::string& error);
  void db_succeeded();
  void finished(Finished&& f);
  void failed_inside(std::int64_t job_id, int attempts, const char* what);
  int capacity() const;
  void judge_target(const sync::CallResult& answer);
  void maybe_schedule_reconcile();
  std::int64_t now_ms() const;
  void publish_health();  // for gateway.health (target_health.hpp)

  std::unique_ptr<http::Client> client_;
  std::unique_ptr<SyncTarget> target_;
  sync::CircuitBreaker breaker_;
  std::mt19937_64 random_;
  std::vector<Finished> finished_;
  int jobs_running_ = 0;
  // Job id -> object id of every job claimed and not yet recorded: the claim skips these objects,
  // so one object never has two jobs in flight (this worker is the only one of its database).
  std::unordered_map<std::int64_t, std::string> running_objects_;
  bool reload_pending_ = false;
  bool claim_wanted_ = true;        // look for due jobs at the next step
  std::int64_t next_due_ms_ = -1;   // when the earliest waiting job is due (-1: none)
  std::int64_t next_reconcile_ms_ = 0;
  sync::FailureStreak db_streak_;   // failed claim, record, recover transactions in a row
  std::int64_t first_finished_ms_ = 0;   // when the oldest unrecorded outcome arrived
  bool schema_checked_ = false, schema_ready_ = false;
  bool per_target_schema_ = false;  // 0.4.0+: _sync_recover(target), sync_reconcile(target)
  bool recovered_ = false;
  bool warned_paused_ = false;
  bool file_error_ = false;         // the client waits for a fixed header or key file and a reload
  bool busy_since_trim_ = false;    // jobs ran since the heap was last trimmed
  std::int64_t last_answer_ms_ = 0, last_failure_ms_ = 0;  // for gateway.health
  int failures_in_row_ = 0;
};

}  // namespace gateway::pg
