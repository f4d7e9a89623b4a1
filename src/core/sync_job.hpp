// What every target's job runner hands back (JobOutcome), and the observer that sees each of its
// calls (the circuit breaker judges a target by calls, not by whole jobs). Shared by the Kong and
// Temporal targets, so neither includes the other's headers.
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "retry_policy.hpp"

namespace gateway::sync {

struct JobOutcome {
  Verdict verdict = Verdict::kDone;
  std::string error;            // for retry and dead: what went wrong, safe to store and log
  long status = 0;              // HTTP status of the failed call (0: no answer)
  long retry_after_s = -1;
  bool key_delivered = false;   // Kong has the key (or it is gone): drop the sealed copy
  // What the remote now holds, as the target records it (Kong: path -> fingerprint; Temporal:
  // the endpoint's id, version and name, or a connector test's result); null when unknown.
  nlohmann::json synced;
};

// Sees every answer a job's calls get, as they arrive.
using CallObserver = std::function<void(const CallResult&)>;

}  // namespace gateway::sync
