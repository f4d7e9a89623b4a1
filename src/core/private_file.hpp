// Reading a file that holds a secret (the master key, Kong Admin API headers): it must be a
// regular file, not a symlink, owned by the server user and closed to group and others. Its
// contents go straight into guarded memory. Failures are gateway::Error (F0000) with a hint.
#pragma once

#include <cstddef>
#include <string>

#include "secure_buffer.hpp"

namespace gateway {

// `what` names the file in messages ("master key file"), `contents` what it should hold ("a
// key"); `create_hint` says how to make a good one. Files larger than `max_bytes` (or empty) are
// refused. `*length` gets the bytes read.
SecureBuffer read_private_file(const std::string& path, const std::string& what,
                               const std::string& contents, const std::string& create_hint,
                               std::size_t max_bytes, std::size_t* length);

// The same checks without reading the contents (health checks: is the file still private?).
// Throws what read_private_file would for an unsafe or missing file.
void check_private_file(const std::string& path, const std::string& what,
                        const std::string& create_hint);

}  // namespace gateway
