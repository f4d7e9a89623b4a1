// Shared by the Nexus fuzz targets: splits an input into header lines and a body, and checks
// that whatever the readers return is storable.
#pragma once

#include <cmath>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/nexus_call.hpp"
#include "core/safe_text.hpp"

namespace nexus_fuzz {

namespace n = gateway::nexus;

// "name: value\n"... up to the first blank line, then the body. Names lower-cased as the HTTP
// client records them (except when the first byte is odd: the listener may pass them as sent).
inline void split(std::string_view in, bool lower, n::Headers& headers, std::string& body) {
  const std::size_t end = in.find("\n\n");
  std::string_view head = in.substr(0, end);
  body = end == std::string_view::npos ? std::string() : std::string(in.substr(end + 2));
  while (!head.empty()) {
    const std::size_t nl = head.find('\n');
    std::string_view line = head.substr(0, nl);
    head = nl == std::string_view::npos ? std::string_view() : head.substr(nl + 1);
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name(line.substr(0, colon));
    if (lower) {
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    headers.emplace_back(std::move(name), std::string(value));
  }
}

inline void check_text(const std::string& text, std::size_t max) {
  if (text.size() > max || gateway::safe_text(text, max) != text) std::abort();
}

inline bool has_nul(const n::Json& j, int depth = 0) {
  if (depth > n::kMaxJsonDepth + n::kMaxCauseDepth * 4) return true;  // deeper than anything we keep
  if (j.is_string()) return j.get_ref<const std::string&>().find('\0') != std::string::npos;
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key().find('\0') != std::string::npos || has_nul(it.value(), depth + 1)) return true;
    }
  } else if (j.is_array()) {
    for (const n::Json& item : j) {
      if (has_nul(item, depth + 1)) return true;
    }
  }
  return false;
}

// JSON jsonb takes: dumps strictly (valid UTF-8), holds no NUL, is not too deep.
inline void check_storable(const n::Json& j) {
  j.dump(-1, ' ', false, n::Json::error_handler_t::strict);  // throws on invalid UTF-8
  if (has_nul(j)) std::abort();
}

inline void check_links(const n::Json& links) {
  if (!links.is_array() || links.size() > n::kMaxLinks) std::abort();
  for (const n::Json& l : links) {
    if (!l.is_object() || l.size() != 2 || !l["url"].is_string() || !l["type"].is_string()) std::abort();
    if (l["url"].get<std::string>().empty() || l["type"].get<std::string>().empty()) std::abort();
  }
  check_storable(links);
}

inline void check_time(const std::optional<double>& t) {
  if (t && !std::isfinite(*t)) std::abort();
}

}  // namespace nexus_fuzz
