#include "retry_policy.hpp"

#include <nlohmann/json.hpp>

#include "safe_text.hpp"
#include "cpp_only.hpp"  // last: proves no PostgreSQL header came in above

namespace gateway::sync {

Verdict classify(const CallResult& r, bool missing_ok) {
  if (r.status >= 200 && r.status < 300) return Verdict::kDone;
  if (r.status == 404 && missing_ok) return Verdict::kDone;
  if (r.status == 0 || r.status >= 500 || r.status == 429 || r.status == 408) return Verdict::kRetry;
  return Verdict::kDead;
}

std::string describe_failure(const CallResult& r) {
  if (r.status == 0) return "no answer: " + safe_text(r.transport_error, 500);
  std::string message;
  auto parsed = nlohmann::json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object() && parsed.contains("message") && parsed["message"].is_string()) {
    message = parsed["message"].get<std::string>();
  } else {
    message = safe_text(r.body, 200);
  }
  std::string text = "HTTP " + std::to_string(r.status);
  // Cut on a character boundary, invalid UTF-8 and NUL replaced: this text is stored as jsonb.
  if (!message.empty()) text += ": " + safe_text(message, 1000 - text.size() - 2);
  return text;
}

std::int64_t backoff_ms(int attempt, double unit, const BackoffSettings& s, long retry_after_s) {
  int steps = std::clamp(attempt, 0, 30);
  std::int64_t delay = s.base_ms;
  for (int i = 0; i < steps && delay < s.cap_ms; ++i) delay *= 2;
  delay = std::min(delay, s.cap_ms);
  std::int64_t jittered = delay / 2 + static_cast<std::int64_t>(unit * static_cast<double>(delay / 2));
  // Honoured, but never beyond the cap: a hostile or broken Retry-After (ten years, LONG_MAX)
  // must not park a job for good, nor overflow.
  if (retry_after_s > 0) {
    const std::int64_t asked = std::min<std::int64_t>(retry_after_s, s.cap_ms / 1000 + 1) * 1000;
    jittered = std::max<std::int64_t>(jittered, std::min<std::int64_t>(asked, s.cap_ms));
  }
  return jittered;
}

bool CircuitBreaker::allow(std::int64_t now_ms) {
  switch (state_) {
    case State::kClosed:
      return true;
    case State::kOpen:
      if (now_ms < open_until_ms_) return false;
      state_ = State::kHalfOpen;
      probe_in_flight_ = false;
      [[fallthrough]];
    case State::kHalfOpen:
      if (probe_in_flight_) return false;
      probe_in_flight_ = true;
      return true;
  }
  return false;
}

void CircuitBreaker::record_success() {
  state_ = State::kClosed;
  failures_ = 0;
  open_ms_ = 0;
  probe_in_flight_ = false;
}

void CircuitBreaker::record_neutral() {
  if (state_ == State::kHalfOpen) {
    record_success();  // the target answered
  }
}

void CircuitBreaker::record_failure(std::int64_t now_ms) {
  ++failures_;
  if (state_ == State::kHalfOpen || (state_ == State::kClosed && failures_ >= threshold_)) {
    open_ms_ = open_ms_ == 0 ? base_open_ms_ : std::min(open_ms_ * 2, max_open_ms_);
    open_until_ms_ = now_ms + open_ms_;
    state_ = State::kOpen;
    probe_in_flight_ = false;
  }
}

}  // namespace gateway::sync
