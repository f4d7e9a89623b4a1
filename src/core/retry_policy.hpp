// What to do after a remote call: classify the answer, back off before a retry, and stop calling
// a target that is down (circuit breaker). Pure: the caller passes the time and the randomness.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace gateway::sync {

enum class Verdict {
  kDone,       // the call did what it should (a DELETE of something already gone included)
  kRetry,      // timeouts, connection errors, 5xx, 429: try again later
  kDead,       // a 4xx that cannot succeed by retrying: needs a person (dead letter)
};

struct CallResult {
  long status = 0;               // 0: no HTTP answer (see transport_error)
  std::string transport_error;   // curl's message when there was no answer
  std::string body;
  long retry_after_s = -1;       // from a Retry-After header, when present
  // Every header of the final answer: names lower-cased, values trimmed. Bounded (see
  // http_client.cpp) so a hostile server cannot make us hold more than a little.
  std::vector<std::pair<std::string, std::string>> headers{};
  std::string content_type{};    // the Content-Type header's value ("" when absent)
  bool body_truncated = false;   // the body went over the client's limit and was cut
};

// `missing_ok`: a 404 means the object is already gone (DELETE of a child under a parent path).
Verdict classify(const CallResult& result, bool missing_ok);

// A short, log-safe description of a failed call: Kong's message or curl's error.
std::string describe_failure(const CallResult& result);

// True when the failure says the target as a whole is unwell (counts toward the circuit).
inline bool target_failure(const CallResult& r) { return r.status == 0 || r.status >= 500; }

struct BackoffSettings {
  std::int64_t base_ms = 1000;
  std::int64_t cap_ms = 300000;
};

// Exponential backoff with "equal jitter": half the delay is fixed, half random, so retries of
// many jobs spread out but none comes back sooner than half its step. `unit` is in [0, 1).
// A Retry-After from the server is honoured when it asks for longer.
std::int64_t backoff_ms(int attempt, double unit, const BackoffSettings& settings,
                        long retry_after_s = -1);

// Per-target circuit breaker. Closed: calls flow. After `threshold` consecutive target failures
// it opens for a cool-down (doubling up to `max_open_ms`); then one probe is let through
// (half-open): success closes it, failure opens it again for longer.
class CircuitBreaker {
 public:
  CircuitBreaker(int threshold = 5, std::int64_t open_ms = 1000, std::int64_t max_open_ms = 30000)
      : threshold_(threshold), base_open_ms_(open_ms), max_open_ms_(max_open_ms) {}

  // May a call start now? In half-open state only one probe at a time is allowed.
  bool allow(std::int64_t now_ms);
  void record_success();
  void record_failure(std::int64_t now_ms);
  // A call that ended without telling anything about the target (e.g. a 4xx).
  void record_neutral();
  // The probe allow() granted was not used (there was nothing to send): grant it again later.
  void release_probe() { probe_in_flight_ = false; }

  bool open() const { return state_ != State::kClosed; }
  // When allow() may next say yes: `now_ms` when closed (or half-open with no probe out), the
  // end of the pause when open, -1 while a probe is out (its answer decides).
  std::int64_t next_allowed_ms(std::int64_t now_ms) const {
    if (state_ == State::kClosed) return now_ms;
    if (state_ == State::kOpen) return std::max(now_ms, open_until_ms_);
    return probe_in_flight_ ? -1 : now_ms;
  }
  std::int64_t reopens_at_ms() const { return open_until_ms_; }

 private:
  enum class State { kClosed, kOpen, kHalfOpen };
  State state_ = State::kClosed;
  int threshold_;
  std::int64_t base_open_ms_, max_open_ms_;
  std::int64_t open_ms_ = 0;
  std::int64_t open_until_ms_ = 0;
  int failures_ = 0;
  bool probe_in_flight_ = false;
};

}  // namespace gateway::sync
