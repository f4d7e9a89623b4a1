// libFuzzer target for the readers of Temporal's answers to a Nexus start: classify_start over a
// fuzzed status, headers and body, and parse_failure, parse_operation_info, parse_links,
// parse_time and call_row on their own. Properties: nothing throws or crashes; every message is
// valid UTF-8 within its bound; every JSON kept is storable; a running answer has a sendable
// token; a 200 with an empty body is null.
// Input: a status byte, then "name: value" lines, a blank line, the body.
// Seeds in test/fuzz/corpus/nexus_answer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/nexus_call_job.hpp"
#include "nexus_fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace n = gateway::nexus;
  static const long kStatuses[] = {0, 200, 201, 424, 400, 401, 403, 404, 408, 409, 429, 500, 501, 503, 520, 502, 204, 302, 100, 999};
  if (size == 0) return 0;
  const std::string in(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    gateway::sync::CallResult r;
    r.status = kStatuses[data[0] % (sizeof kStatuses / sizeof kStatuses[0])];
    nexus_fuzz::split(in, true, r.headers, r.body);
    for (const auto& [name, value] : r.headers) {
      if (name == "content-type") r.content_type = value;
      nexus_fuzz::check_time(n::parse_time(value));
    }
    r.body_truncated = (data[0] & 0x80) != 0;
    if (r.status == 0) r.transport_error = r.body;

    const n::StartAnswer a = n::classify_start(r);
    nexus_fuzz::check_text(a.error, 1000);
    nexus_fuzz::check_storable(a.result);
    nexus_fuzz::check_storable(a.failure);
    nexus_fuzz::check_links(a.links);
    switch (a.kind) {
      case n::StartKind::kSucceeded:
        if (r.status != 200 || (r.body.empty() && !a.result.is_null())) std::abort();
        break;
      case n::StartKind::kRunning:
        if (r.status != 201 || !n::valid_token(a.token)) std::abort();
        break;
      case n::StartKind::kFailed:
      case n::StartKind::kCanceled:
        if (!a.failure.is_object() || !a.failure["message"].is_string()) std::abort();
        break;
      case n::StartKind::kHandlerError:
        if (a.error.empty() || !a.failure.is_object()) std::abort();
        break;
      case n::StartKind::kTransport:
        if (r.status != 0 || !a.retryable) std::abort();
        break;
    }

    const n::OperationInfo info = n::parse_operation_info(r.body);
    if (info.error.empty() != n::valid_token(info.token)) std::abort();

    std::vector<std::string> values;
    for (const auto& h : r.headers) values.push_back(h.second);
    nexus_fuzz::check_links(n::parse_links(values));

    const n::Json json = n::Json::parse(r.body, nullptr, /*allow_exceptions=*/false);
    const n::FailureRead f = n::parse_failure(json);
    if (f.error.empty()) {
      nexus_fuzz::check_storable(f.failure);
    } else {
      nexus_fuzz::check_text(f.error, 1000);
    }
    const n::CallRow row = n::call_row(json);
    nexus_fuzz::check_text(row.error, 1000);
  } catch (...) {
    std::abort();  // a reader of remote answers must never throw
  }
  return 0;
}
