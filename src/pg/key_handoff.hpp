#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "../core/secure_buffer.hpp"

namespace gateway::pg {

// Opens a key sealed by gateway._seal_key_handoff for API key `key_id` (canonical uuid text),
// into guarded memory that is wiped when freed: the plaintext never lives in a std::string.
// nullopt when it does not open (another master key, tampered): the caller reports that.
std::optional<SecureBuffer> open_key_handoff(const std::vector<std::uint8_t>& sealed,
                                            const std::string& key_id);

}  // namespace gateway::pg
