#include "failure_streak.hpp"

#include "cpp_only.hpp"  // last: proves no PostgreSQL header came in above

namespace gateway::sync {

FailureStreak::News FailureStreak::fail(std::int64_t now_ms, double unit, const BackoffSettings& backoff,
                                        const std::string& message) {
  News news = failures_ == 0 ? News::kStarted : message != last_message_ ? News::kChanged : News::kNone;
  if (failures_ == 0) since_ms_ = now_ms;
  retry_at_ms_ = now_ms + backoff_ms(failures_, unit, backoff);
  ++failures_;
  last_message_ = message;
  return news;
}

int FailureStreak::succeed() {
  int ended = failures_;
  failures_ = 0;
  last_message_.clear();
  return ended;
}

}  // namespace gateway::sync
