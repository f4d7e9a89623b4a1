// The master key as each backend sees it: loaded from gateway.master_key_file on first use and
// kept in guarded memory for the life of the process.
#pragma once

#include "../core/key_hash.hpp"

namespace gateway::pg {

// Throws gateway::Error (with a hint) when the key file is missing or unsafe.
api_key::Hasher& api_key_hasher();

}  // namespace gateway::pg
