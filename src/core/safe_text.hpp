// Text from a remote answer made safe to store and log: PostgreSQL's text and jsonb reject invalid
// UTF-8 and NUL, and a byte cut can split a character. One hostile answer must never make an
// outcome unrecordable.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace gateway {

// Valid UTF-8 of at most `max_bytes` bytes: each byte that does not start a valid character, and
// each NUL, becomes U+FFFD; the text ends on a character boundary.
std::string safe_text(std::string_view in, std::size_t max_bytes);

}  // namespace gateway
