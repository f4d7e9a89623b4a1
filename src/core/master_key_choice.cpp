#include "master_key_choice.hpp"

#include <algorithm>

#include "cpp_only.hpp"  // last: proves no PostgreSQL header came in above

namespace gateway::api_key {

bool parse_fingerprint(std::string_view text, Fingerprint& out) noexcept {
  if (text.size() != kFingerprintChars) return false;
  bool hex = std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
  if (!hex) return false;
  std::copy(text.begin(), text.end(), out.begin());
  return true;
}

HashedUnder classify(const Fingerprint* marker, const Fingerprint& current,
                     const Fingerprint* previous) noexcept {
  if (marker == nullptr) return HashedUnder::kUnmarked;
  if (*marker == current) return HashedUnder::kCurrent;
  if (previous != nullptr && *marker == *previous) return HashedUnder::kPrevious;
  return HashedUnder::kOther;
}

VerifyPlan plan_verify(HashedUnder under, bool previous_configured) noexcept {
  VerifyPlan plan;
  switch (under) {
    case HashedUnder::kCurrent:
      plan.tries[plan.count++] = Master::kCurrent;
      break;
    case HashedUnder::kPrevious:
      if (previous_configured) plan.tries[plan.count++] = Master::kPrevious;
      plan.rehash_on_match = true;
      break;
    case HashedUnder::kUnmarked:
      plan.tries[plan.count++] = Master::kCurrent;
      if (previous_configured) plan.tries[plan.count++] = Master::kPrevious;
      plan.rehash_on_match = true;
      break;
    case HashedUnder::kOther:
      break;
  }
  return plan;
}

}  // namespace gateway::api_key
