// Temporal as a sync target: each approved project connector becomes a Nexus endpoint (operator
// HTTP API), reconciled against the endpoint registry; connector tests run here too.
#pragma once

#include <memory>

#include "sync_target.hpp"

namespace gateway::pg {

std::unique_ptr<SyncTarget> make_temporal_target();

}  // namespace gateway::pg
