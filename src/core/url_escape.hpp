// Text made safe to place in a URL path segment or query value: everything but RFC 3986's
// unreserved characters is percent-encoded, so a remote id or a name can never become `..`,
// another path, a query or a fragment.
#pragma once

#include <string>
#include <string_view>

namespace gateway {

std::string url_escape(std::string_view text);

}  // namespace gateway
