// Credential envelopes as the worker opens them for its own use (not a disclosure to a user, so
// not audited): a project connector's auth config, which authenticates its Nexus calls.
#pragma once

#include <string>

#include "../core/secure_buffer.hpp"

namespace gateway::pg {

// Opens a sealed envelope bound to `context` into guarded memory. Needs a transaction (the key
// directory may be read). Throws gateway::Error when it is not an envelope, its key is unknown or
// retired, or it does not open under this context.
SecureBuffer open_sealed(const std::string& envelope, const std::string& context);

}  // namespace gateway::pg
