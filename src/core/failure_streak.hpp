// A run of failures of one kind of local work (the worker's database transactions): when to try
// again (the retry backoff: exponential with jitter, capped) and what is worth a log line (the
// start of the run, a change of error, the recovery), so a persistent error neither spins the
// worker nor floods the log.
#pragma once

#include <cstdint>
#include <string>

#include "retry_policy.hpp"

namespace gateway::sync {

class FailureStreak {
 public:
  enum class News { kNone, kStarted, kChanged };

  // A failure at `now_ms` (`unit` in [0, 1) for the jitter): schedules the next try and says
  // whether to log it: the first of a run, or one whose message differs from the last.
  News fail(std::int64_t now_ms, double unit, const BackoffSettings& backoff, const std::string& message);
  // A success: the number of failures it ends (0: there was no run to report).
  int succeed();

  bool failing() const { return failures_ > 0; }
  // Not before this may the work be tried again (0 when not failing).
  std::int64_t retry_at_ms() const { return failing() ? retry_at_ms_ : 0; }
  bool waiting(std::int64_t now_ms) const { return failing() && now_ms < retry_at_ms_; }
  int failures() const { return failures_; }
  std::int64_t since_ms() const { return since_ms_; }

 private:
  int failures_ = 0;
  std::int64_t since_ms_ = 0;
  std::int64_t retry_at_ms_ = 0;
  std::string last_message_;
};

}  // namespace gateway::sync
