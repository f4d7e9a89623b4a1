#include "request_claims.hpp"

#include <nlohmann/json.hpp>

#include "cpp_only.hpp"  // last: proves no PostgreSQL header came in above

namespace gateway::claims {
namespace {

Identity from_text(std::string_view sub) {
  Identity id;
  id.subject = kong::parse_uuid(sub, id.user) ? Subject::kUser : Subject::kNotAUuid;
  return id;
}

bool blank(std::string_view text) {
  return text.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

}  // namespace

Identity identify(std::string_view claims, std::string_view legacy_sub) {
  if (!blank(claims)) {
    // No exceptions: a hostile setting must not cost more than a parse.
    nlohmann::json parsed = nlohmann::json::parse(claims.begin(), claims.end(), nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object()) return Identity{Subject::kMalformedClaims, {}};
    auto sub = parsed.find("sub");
    if (sub == parsed.end() || sub->is_null()) return Identity{};
    if (!sub->is_string()) return Identity{Subject::kNotAUuid, {}};
    return from_text(sub->get_ref<const std::string&>());
  }
  if (!legacy_sub.empty()) return from_text(legacy_sub);
  return Identity{};
}

}  // namespace gateway::claims
