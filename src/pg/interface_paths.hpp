// The default http_path of a public interface (see interface_paths.cpp).
#pragma once

#include <string>

#include "../core/usage_table.hpp"

namespace gateway::pg {

// "/i/" + the shortest of 12, 20, 32 or 64 hex digits of sha256(project/workflow/name) that no
// other interface (not `own_id`) has for `method`. Throws gateway::Error (unique_violation) when
// all are taken. Call from C++ (it wraps its PostgreSQL calls).
std::string default_http_path(const std::string& method, const KeyId& project_id,
                              const KeyId& workflow_id, const std::string& interface_name,
                              const KeyId& own_id);

}  // namespace gateway::pg
