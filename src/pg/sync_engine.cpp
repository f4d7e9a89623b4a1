#include "sync_engine.hpp"

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <iterator>
#include <cstring>

#include "../core/error.hpp"
#include "../core/safe_text.hpp"
#include "settings.hpp"
#include "target_health.hpp"
#include "worker_transaction.hpp"

namespace gateway::pg {
namespace {

using Json = nlohmann::json;

const char* verdict_name(sync::Verdict v) {
  switch (v) {
    case sync::Verdict::kDone: return "done";
    case sync::Verdict::kRetry: return "retry";
    case sync::Verdict::kDead: return "dead";
  }
  return "dead";
}

}  // namespace

SyncEngine::SyncEngine(std::unique_ptr<SyncTarget> target)
    : target_(std::move(target)), random_(std::random_device{}()) {}
SyncEngine::~SyncEngine() = default;

std::int64_t SyncEngine::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

template <typename Body>
bool SyncEngine::db_transaction(const char* what, Body&& body) {
  std::string error;
  if (try_transaction(what, error, std::forward<Body>(body))) {
    db_succeeded();
    return true;
  }
  db_failed(what, error);
  return false;
}

void SyncEngine::db_failed(const char* what, const std::string& error) {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  sync::BackoffSettings backoff{settings.sync_retry_base_ms, settings.sync_retry_max_ms};
  const std::string message = std::string(what) + ": " + error;
  const char* target = target_->title();
  switch (db_streak_.fail(now_ms(), unit(random_), backoff, message)) {
    case sync::FailureStreak::News::kStarted:
      ereport(LOG, (errmsg("pg_gateway worker (%s sync): %s failed: %s", target, what, error.c_str()),
                    errhint("The worker tries again with backoff up to gateway.sync_retry_max and "
                            "logs again when the error changes or ends.")));
      break;
    case sync::FailureStreak::News::kChanged:
      ereport(LOG, (errmsg("pg_gateway worker (%s sync): database work failed %d times since %s; now %s failed: %s",
                           target, db_streak_.failures(),
                           timestamptz_to_str(time_t_to_timestamptz(db_streak_.since_ms() / 1000)), what,
                           error.c_str())));
      break;
    case sync::FailureStreak::News::kNone:
      break;
  }
}

void SyncEngine::db_succeeded() {
  if (!db_streak_.failing()) return;
  const std::int64_t since = db_streak_.since_ms();
  const int failures = db_streak_.succeed();
  ereport(LOG, (errmsg("pg_gateway worker (%s sync): database work recovered after %d failures since %s",
                       target_->title(), failures,
                       timestamptz_to_str(time_t_to_timestamptz(since / 1000)))));
}

void SyncEngine::reload() {
  reload_pending_ = true;
  file_error_ = false;
  claim_wanted_ = true;
  schema_checked_ = false;
  warned_paused_ = false;
}

bool SyncEngine::ready() {
  // A paused target does no database work either: its jobs wait, recovered once it has a URL.
  const RemoteSettings remote = target_->remote();
  if (remote.url == nullptr || remote.url[0] == '\0') {
    if (!warned_paused_) {
      ereport(LOG, (errmsg("pg_gateway worker: %s sync is paused", target_->title()),
                    errhint("Set %s and reload the configuration.", target_->url_setting())));
      warned_paused_ = true;
    }
    return false;
  }
  if (db_streak_.waiting(now_ms())) return client_ != nullptr && schema_ready_ && recovered_;
  if (!schema_checked_) {
    schema_ready_ = false;
    db_transaction("checking the sync schema", [&] {
      auto rows = spi_query(
          "SELECT to_regclass($1) IS NOT NULL OR to_regproc($1) IS NOT NULL,"
          "       to_regprocedure('gateway._sync_recover(text)') IS NOT NULL",
          {std::string(target_->schema_probe())});
      schema_ready_ = !rows.empty() && rows[0][0] == std::optional<std::string>("t");
      per_target_schema_ = !rows.empty() && rows[0][1] == std::optional<std::string>("t");
    });
    schema_checked_ = true;
  }
  if (!schema_ready_) return false;
  if (!recovered_) {
    // Jobs a previous incarnation had claimed (it crashed, or this is a promoted standby) run
    // again: they are level-triggered, so running one twice is harmless. Each target recovers
    // only its own: the other engine may have claimed jobs already.
    recovered_ = db_transaction("recovering sync jobs", [&] {
      auto rows = per_target_schema_
                      ? spi_query("SELECT gateway._sync_recover($1)", {std::string(target_->name())})
                      : spi_query("SELECT gateway._sync_recover()");
      if (!rows.empty() && rows[0][0] && *rows[0][0] != "0") {
        ereport(LOG, (errmsg("pg_gateway worker: %s %s sync jobs claimed before a restart will run again",
                             rows[0][0]->c_str(), target_->title())));
      }
    });
    if (!recovered_) return false;
  }
  if (reload_pending_ && jobs_running_ == 0 && (!client_ || client_->active() == 0)) {
    client_.reset();
    reload_pending_ = false;
  }
  if (!client_ && !file_error_) build_client();
  return client_ != nullptr;
}

void SyncEngine::build_client() {
  http::ClientOptions options;
  try {
    options = client_options(target_->remote());
  } catch (const Error& e) {
    // Without its headers or key the target would refuse every request: wait for a fixed file
    // and a reload.
    ereport(WARNING, (errmsg("pg_gateway: %s", e.what()), errdetail("%s", e.detail().c_str()),
                      errhint("%s", e.hint().c_str())));
    file_error_ = true;
    return;
  }
  file_error_ = false;
  client_ = std::make_unique<http::Client>(std::move(options));
  // A target that is down is probed again after 1 s, then less often, never less often than a
  // failed job would retry anyway.
  breaker_ = sync::CircuitBreaker(5, std::min(1000, settings.sync_retry_max_ms), settings.sync_retry_max_ms);
  target_->client_built(*client_, [this] { claim_wanted_ = true; });
}

void SyncEngine::publish_health() {
  TargetHealth h;
  h.paused = paused();
  h.file_error = file_error_;
  h.circuit_open = breaker_.open();
  h.failures_in_row = failures_in_row_;
  h.last_answer_ms = last_answer_ms_;
  h.last_failure_ms = last_failure_ms_;
  publish_target_health(target_->name(), h);
}

void SyncEngine::step(bool commit_seen) {
  // Whichever way this step returns, gateway.health sees what it learnt (a spinlock, no error).
  struct PublishAtExit {
    SyncEngine* engine;
    ~PublishAtExit() { engine->publish_health(); }
  } publish_at_exit{this};
  if (commit_seen) {
    claim_wanted_ = true;
    // Jobs exist, so the schema does (the extension may have been created after we started).
    if (!schema_ready_) schema_checked_ = false;
  }
  if (!ready()) {
    // Paused by a reload while jobs were in flight: their calls finish on the old client and
    // their outcomes are recorded (an endpoint a job just created is never left unrecorded, and
    // no job stays 'running' for as long as the pause lasts). Nothing new is claimed.
    if (paused() && client_ && recovered_ && (jobs_running_ > 0 || !finished_.empty())) {
      client_->perform();
      if (record_due()) record_finished();
    }
    return;
  }
  client_->perform();
  if (record_due()) record_finished();
  if (db_streak_.waiting(now_ms())) {
    client_->perform();
    return;  // the database failed: claim and schedule nothing until the backoff ends
  }
  maybe_schedule_reconcile();
  std::int64_t now = now_ms();
  if (next_due_ms_ >= 0 && now >= next_due_ms_) claim_wanted_ = true;
  // Refill in bulk: one claim transaction per half batch, not one per finished job.
  if (claim_wanted_ && !reload_pending_ && jobs_running_ <= capacity() / 2) claim_and_start();
  client_->perform();
  // Going idle after a burst: give the freed heap back, so a worker that once drained a large
  // backlog does not keep its high-water mark for good.
  if (jobs_running_ > 0 || !finished_.empty()) {
    busy_since_trim_ = true;
  } else if (busy_since_trim_) {
    malloc_trim(0);
    busy_since_trim_ = false;
  }
}

void SyncEngine::maybe_schedule_reconcile() {
  if (settings.sync_reconcile_interval_s <= 0) return;
  std::int64_t now = now_ms();
  if (next_reconcile_ms_ == 0) {
    // The first one soon after start: a Kong that was wiped while we were away is refilled.
    next_reconcile_ms_ = now + 1000;
    return;
  }
  if (now < next_reconcile_ms_) return;
  next_reconcile_ms_ = now + static_cast<std::int64_t>(settings.sync_reconcile_interval_s) * 1000;
  db_transaction("scheduling a reconcile", [&] {
    if (per_target_schema_) {
      spi_query("SELECT gateway.sync_reconcile($1)", {std::string(target_->name())});
    } else {
      spi_query("SELECT gateway.sync_reconcile()");
    }
  });
}

// Jobs claimed at once: 8 per request slot. The worker is single-threaded, so its claim and
// record transactions pause every transfer; claiming and recording many jobs per transaction
// keeps those pauses rare (bench/sync: 0.52 of the fake's ceiling at 2 per slot, 0.74 at 8).
int SyncEngine::capacity() const { return std::max(1, target_->remote().concurrency * 8); }

// Outcomes are recorded in batches: a quarter of the jobs in flight, or everything once nothing
// else is in flight (a single change is recorded at once), or after 10 ms at the latest.
bool SyncEngine::record_due() const {
  if (finished_.empty()) return false;
  const std::int64_t now = now_ms();
  if (db_streak_.waiting(now)) return false;
  return static_cast<int>(finished_.size()) >= std::max(1, capacity() / 4) ||
         static_cast<int>(finished_.size()) >= jobs_running_ || now >= first_finished_ms_ + 10;
}

void SyncEngine::finished(Finished&& f) {
  if (finished_.empty()) first_finished_ms_ = now_ms();
  // For gateway.health, per job (reconciles included): no answer, 5xx or 429 is a failure of the
  // target; anything else means it answered.
  const long status = f.outcome.status;
  if (f.outcome.verdict != sync::Verdict::kDone && (status == 0 || status >= 500 || status == 429)) {
    last_failure_ms_ = now_ms();
    ++failures_in_row_;
  } else {
    last_answer_ms_ = now_ms();
    failures_in_row_ = 0;
  }
  finished_.push_back(std::move(f));
  // A probe job that made no call the target could be judged by (nothing had changed, it failed before
  // calling, a reconcile) must not hold the half-open breaker's one slot for good: nothing would
  // ever be claimed again.
  if (breaker_.open()) breaker_.release_probe();
}

// The outcome of a job whose own code threw (out of memory, a hostile answer that slipped
// through): retried later like a remote error, never left `running` with its batch stranded.
void SyncEngine::failed_inside(std::int64_t job_id, int attempts, const char* what) {
  sync::JobOutcome outcome;
  outcome.verdict = sync::Verdict::kRetry;
  outcome.error = std::string("pg_gateway worker: ") + what;
  finished(Finished{job_id, std::move(outcome), attempts, std::nullopt});
}

void SyncEngine::claim_and_start() {
  const int capacity = this->capacity();
  if (jobs_running_ >= capacity) return;
  // The target looks down: wait for the breaker (wait_spec knows when); the wish to claim stays.
  if (!breaker_.allow(now_ms())) return;
  // While the breaker is half-open, one job is the probe.
  int batch = breaker_.open() ? 1 : capacity - jobs_running_;
  struct Claimed {
    std::int64_t id;
    std::string kind, object_id, state;
    int attempts;
  };
  std::vector<Claimed> claimed;
  std::optional<double> next_due_s;
  std::string busy = "{";
  for (const auto& [job, object] : running_objects_) busy += (busy.size() > 1 ? "," : "") + object;
  busy += "}";
  bool ok = db_transaction("claiming sync jobs", [&] {
    auto rows = spi_query(
        "SELECT job_id, object_kind, object_id, attempts, state"
        "  FROM gateway._sync_claim($1, $2::int, $3::uuid[])",
        {std::string(target_->name()), std::to_string(batch), busy});
    for (auto& r : rows) {
      claimed.push_back(Claimed{std::stoll(*r[0]), *r[1], *r[2], r[4].value_or("null"), std::stoi(*r[3])});
    }
    auto due = spi_query("SELECT extract(epoch FROM gateway._sync_next_due($1))",
                         {std::string(target_->name())});
    if (!due.empty() && due[0][0]) next_due_s = std::stod(*due[0][0]);
  });
  if (!ok) return;  // the wish to claim stays; wait_spec waits for the backoff
  next_due_ms_ = next_due_s ? static_cast<std::int64_t>(*next_due_s * 1000.0) : -1;
  claim_wanted_ = static_cast<int>(claimed.size()) == batch;  // a full batch: there may be more
  if (!claim_wanted_ && next_due_ms_ >= 0 && next_due_ms_ <= now_ms()) {
    // Due but not claimed: each waits for its object's running job, and recording that job
    // claims again. Without a job of ours running, some other session holds them: look later.
    next_due_ms_ = jobs_running_ + static_cast<int>(claimed.size()) > 0 ? -1 : now_ms() + 1000;
  }
  if (claimed.empty()) breaker_.release_probe();  // nothing to probe with
  for (const Claimed& c : claimed) {
    ++jobs_running_;
    running_objects_[c.id] = c.object_id;
    try {
      start_job(c.id, c.kind, c.object_id, c.attempts, c.state);
    } catch (const std::exception& e) {
      failed_inside(c.id, c.attempts, e.what());
    } catch (...) {
      failed_inside(c.id, c.attempts, "internal error while starting the job");
    }
  }
}

void SyncEngine::start_job(std::int64_t job_id, const std::string& kind,
                           const std::string& object_id, int attempts,
                           const std::string& state_json) {
  JobDone done = [this, job_id, attempts](sync::JobOutcome&& outcome, std::optional<double> next_change) {
    finished(Finished{job_id, std::move(outcome), attempts, next_change});
  };
  sync::CallObserver judge = [this](const sync::CallResult& answer) { judge_target(answer); };
  if (kind == "reconcile") {
    // A reconcile queues repair jobs in its own transaction: look for them when it is done.
    target_->start_reconcile(
        *client_,
        [this, done](sync::JobOutcome&& outcome, std::optional<double> next_change) {
          claim_wanted_ = true;
          done(std::move(outcome), next_change);
        },
        judge);
    return;
  }
  // Malformed state is the target's to judge (it parses defensively); bad JSON is not a state.
  Json state = Json::parse(state_json, nullptr, false);
  if (state.is_discarded()) state = Json();
  target_->start_job(*client_, kind, object_id, state, std::move(done), std::move(judge));
}

void SyncEngine::judge_target(const sync::CallResult& answer) {
  if (sync::target_failure(answer) || answer.status == 429) {
    breaker_.record_failure(now_ms());
  } else if (answer.status >= 200 && answer.status < 300) {
    breaker_.record_success();
  } else {
    breaker_.record_neutral();  // it answered: it is up, whatever it thought of the request
  }
}

Json SyncEngine::outcome_row(const Finished& f, std::int64_t now) {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  sync::BackoffSettings backoff{settings.sync_retry_base_ms, settings.sync_retry_max_ms};
  const bool done = f.outcome.verdict == sync::Verdict::kDone;
  Json row = {{"job_id", f.job_id}, {"outcome", verdict_name(f.outcome.verdict)},
              {"key_delivered", done && f.outcome.key_delivered}};
  if (f.outcome.verdict == sync::Verdict::kRetry) {
    std::int64_t delay = sync::backoff_ms(f.attempts, unit(random_), backoff, f.outcome.retry_after_s);
    // Not before the circuit lets calls through again.
    std::int64_t at = std::max(now + delay, breaker_.open() ? breaker_.reopens_at_ms() : 0);
    row["run_after"] = static_cast<double>(at) / 1000.0;
  }
  if (f.next_change) row["next_change"] = *f.next_change;
  // Remote text: valid UTF-8 without NUL, cut on a character boundary, or jsonb refuses it.
  if (!f.outcome.error.empty()) row["error"] = safe_text(f.outcome.error, 1000);
  if (!done) row["status"] = f.outcome.status;
  // What the target holds now, whatever the outcome: a Temporal job that created an endpoint and
  // then failed to confirm it hands back the new id with its retry, and the finish records it
  // (the contract: an id once learnt is never lost). Kong's jobs give `synced` only when done.
  if (f.outcome.synced.is_object()) row["synced"] = f.outcome.synced;
  return row;
}

bool SyncEngine::record_one(const Json& row, std::string& error) {
  const std::string rows = Json::array({row}).dump(-1, ' ', false, Json::error_handler_t::replace);
  return try_transaction("pg_gateway: recording a sync outcome", error, [&] {
    spi_query("SELECT gateway._sync_finish_batch($1::jsonb)", {rows});
  });
}

void SyncEngine::record_finished() {
  std::vector<Finished> batch;
  batch.swap(finished_);
  const std::int64_t now = now_ms();
  // One statement for the whole batch (planned once), one row per outcome.
  Json rows = Json::array();
  for (const Finished& f : batch) rows.push_back(outcome_row(f, now));
  // replace: whatever slipped through becomes U+FFFD rather than an exception.
  const std::string text = rows.dump(-1, ' ', false, Json::error_handler_t::replace);
  std::string error;
  bool ok = try_transaction("pg_gateway: recording sync outcomes", error, [&] {
    spi_query("SELECT gateway._sync_finish_batch($1::jsonb)", {text});
  });
  std::vector<Finished> kept;  // outcomes the database could not take now
  if (!ok) {
    // One outcome may be what the database refuses: record them one by one, so it does not hold
    // the others back, and dead-letter it with the reason. If even a dead letter cannot be
    // recorded, the database itself has a problem: keep the rest for after the backoff.
    // A lock wait given up (DDL holds a table, see limit_lock_waits) refuses no outcome: keep
    // them all for after the backoff rather than dead-letter one whose lock was free a moment
    // later.
    bool database_down = failed_on_lock();
    for (std::size_t i = 0; i < batch.size(); ++i) {
      std::string why = error;
      if (database_down || (batch.size() > 1 && record_one(rows[i], why))) {
        if (database_down) kept.push_back(std::move(batch[i]));
        continue;
      }
      if (failed_on_lock()) {  // this outcome alone waited too long for a lock: as above
        database_down = true;
        error = why;
        kept.push_back(std::move(batch[i]));
        continue;
      }
      Json dead = {{"job_id", batch[i].job_id}, {"outcome", "dead"}, {"key_delivered", false},
                   {"status", batch[i].outcome.status},
                   {"error", safe_text("the outcome of this job could not be recorded: " + why, 1000)}};
      std::string dead_error;
      if (record_one(dead, dead_error)) {
        ereport(WARNING, (errmsg("pg_gateway worker: sync job %lld is dead: its outcome could not be recorded",
                                 static_cast<long long>(batch[i].job_id)),
                          errdetail("%s", safe_text(why, 1000).c_str()),
                          errhint("Fix the cause, then gateway.sync_retry() the job.")));
        continue;
      }
      database_down = true;
      error = dead_error;
      kept.push_back(std::move(batch[i]));
    }
  }
  if (!kept.empty()) {
    // The jobs stay 'running' meanwhile, so nobody else runs them; the backoff says when to try.
    db_failed("recording sync outcomes", error);
  } else {
    db_succeeded();
  }
  std::unordered_map<std::int64_t, bool> unrecorded;
  for (const Finished& f : kept) unrecorded[f.job_id] = true;
  for (const Finished& f : batch) {
    if (unrecorded.count(f.job_id) != 0) continue;
    --jobs_running_;
    running_objects_.erase(f.job_id);
  }
  if (kept.size() < batch.size()) claim_wanted_ = true;
  finished_.insert(finished_.begin(), std::make_move_iterator(kept.begin()),
                   std::make_move_iterator(kept.end()));
}

void SyncEngine::socket_ready(int fd, bool readable, bool writable) {
  if (client_) client_->socket_ready(fd, readable, writable);
}

void SyncEngine::wait_spec(std::vector<http::WaitSocket>& sockets, long& timeout_ms,
                           std::uint64_t& generation) {
  sockets.clear();
  timeout_ms = -1;
  generation = client_ ? client_->sockets_generation() : 0;
  if (!schema_ready_ || !client_) {
    // Settings or the schema may appear later: SIGHUP or a commit wakes us. A failed schema
    // check or recovery is tried again when its backoff ends.
    if (db_streak_.failing()) timeout_ms = static_cast<long>(std::max<std::int64_t>(0, db_streak_.retry_at_ms() - now_ms()));
    return;
  }
  client_->wait_spec(sockets, timeout_ms);
  auto consider = [&](std::int64_t at_ms) {
    if (at_ms < 0) return;
    long in = static_cast<long>(std::max<std::int64_t>(0, at_ms - now_ms()));
    if (timeout_ms < 0 || in < timeout_ms) timeout_ms = in;
  };
  // Outcomes are recorded at once when record_due() says so (e.g. the last job in flight has
  // answered); only a partial batch waits up to 10 ms for its fellows.
  if (!finished_.empty()) {
    consider(std::max(db_streak_.retry_at_ms(), record_due() ? now_ms() : first_finished_ms_ + 10));
  }
  // Paused: only what is in flight is waited for. A wish to claim (a reload sets one) or a due
  // reconcile would otherwise keep the wait at a zero timeout, a busy loop for the whole pause.
  if (paused()) return;
  // Claiming waits for whichever is later: the wish to claim (now, or the next due job) and the
  // circuit breaker letting calls through.
  const std::int64_t now = now_ms();
  const std::int64_t allowed = breaker_.next_allowed_ms(now);
  std::int64_t wanted = claim_wanted_ ? now : next_due_ms_;
  if (wanted >= 0) wanted = std::max(wanted, db_streak_.retry_at_ms());
  if (allowed >= 0 && wanted >= 0 && jobs_running_ <= capacity() / 2) consider(std::max(allowed, wanted));
  if (settings.sync_reconcile_interval_s > 0) consider(next_reconcile_ms_);
}

}  // namespace gateway::pg
