#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gateway::pg {

// Opens a key sealed by gateway._seal_key_handoff for API key `key_id` (canonical uuid text).
// nullopt when it does not open (another master key, tampered): the caller reports that.
std::optional<std::string> open_key_handoff(const std::vector<std::uint8_t>& sealed,
                                            const std::string& key_id);

}  // namespace gateway::pg
