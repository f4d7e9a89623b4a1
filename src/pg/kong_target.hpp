// Kong as a sync target: public interfaces and API keys become services, routes, plugins,
// consumers and key-auth credentials (src/core/kong_mapping), reconciled against Kong's listing.
#pragma once

#include <memory>

#include "sync_target.hpp"

namespace gateway::pg {

std::unique_ptr<SyncTarget> make_kong_target();

}  // namespace gateway::pg
