// Nexus calls as the sync engine's third target: each queued gateway.connector_calls row is
// started at its connector's endpoint (the call id is the Nexus-Request-Id, so a repeated start
// starts nothing), canceled on request and timed out at its deadline. Calls have their own
// engine, client and breaker, so a burst of calls never delays endpoint sync, nor the reverse.
#pragma once

#include <memory>

#include "sync_target.hpp"

namespace gateway::pg {

std::unique_ptr<SyncTarget> make_nexus_call_target();

}  // namespace gateway::pg
