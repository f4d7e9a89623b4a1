// libFuzzer target for the callback listener's reader: parse_completion over fuzzed headers and
// body. Properties: nothing throws or crashes; an accepted completion has a known state, the
// result or Failure its state needs, storable JSON, bounded links, a sendable token and finite
// times; a refusal is a short, valid UTF-8 message and nothing else.
// Input: "name: value" lines, a blank line, the body. Seeds in test/fuzz/corpus/nexus_completion.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "nexus_fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace n = gateway::nexus;
  const std::string in(reinterpret_cast<const char*>(data), size);
  try {
    n::Headers headers;
    std::string body;
    nexus_fuzz::split(in, size == 0 || (data[0] & 1) == 0, headers, body);
    const std::size_t max_body = size > 1 ? static_cast<std::size_t>(data[1]) * 64 : 1024;
    const n::Completion c = n::parse_completion(headers, body, max_body);
    if (!c.error.empty()) {
      nexus_fuzz::check_text(c.error, 1000);
      if (!c.state.empty() || !c.token.empty() || !c.result.is_null() || !c.failure.is_null()) std::abort();
      if (c.too_large != (body.size() > max_body)) std::abort();
      return 0;
    }
    if (body.size() > max_body) std::abort();
    if (c.state == "succeeded") {
      if (!c.failure.is_null()) std::abort();
      if (body.empty() && !c.result.is_null()) std::abort();  // nothing made up
      nexus_fuzz::check_storable(c.result);
    } else if (c.state == "failed" || c.state == "canceled") {
      if (!c.failure.is_object() || !c.failure["message"].is_string()) std::abort();
      nexus_fuzz::check_storable(c.failure);
    } else {
      std::abort();
    }
    nexus_fuzz::check_links(c.links);
    if (!c.token.empty() && !n::valid_token(c.token)) std::abort();
    nexus_fuzz::check_time(c.start_time);
    nexus_fuzz::check_time(c.close_time);
  } catch (...) {
    std::abort();  // the listener's reader must never throw
  }
  return 0;
}
