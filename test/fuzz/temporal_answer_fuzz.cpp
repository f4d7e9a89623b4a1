// libFuzzer target for the readers of the Temporal operator API's answers: the gRPC status body,
// an endpoint answer, a listing page, a description payload, the claim state and the marker, and
// the reconcile plan over whatever a page yields. Properties: nothing throws or crashes; every
// message is valid UTF-8 within its bound; every endpoint id that gets through is plausible; a
// marker is found only on a first line that is exactly ours.
// Build: cmake -DCMAKE_CXX_COMPILER=clang++ -DGATEWAY_FUZZ=ON; seeds in test/fuzz/corpus/temporal_answer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/safe_text.hpp"
#include "core/temporal_endpoints.hpp"
#include "core/temporal_sync.hpp"

namespace t = gateway::temporal;

namespace {

const char* const kTag = "pg-gateway-1-2";

void check_text(const std::string& text, std::size_t max) {
  if (text.size() > max || gateway::safe_text(text, max) != text) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  try {
    const t::StatusBody status = t::parse_status(body);
    if (status.code < -1 || status.code > 16) std::abort();
    check_text(status.message, 500);
    for (long code : {0L, 200L, 400L, 401L, 404L, 409L, 429L, 503L}) {
      gateway::sync::CallResult r;
      r.status = code;
      r.body = body;
      r.transport_error = body;
      t::classify_temporal(r);
      check_text(t::describe_temporal(r), 1000);
    }

    t::RemoteEndpoint endpoint;
    if (t::read_endpoint_answer(body, endpoint).empty() && !t::plausible_endpoint_id(endpoint.id)) std::abort();

    const t::ListPage page = t::parse_list_page(body);
    for (const t::Json& e : page.endpoints) {
      t::RemoteEndpoint read;
      if (!t::read_endpoint(e, read).empty()) std::abort();  // only usable entries are kept
    }
    if (page.next_page_token.size() > 4096) std::abort();

    const t::Json json = t::Json::parse(body, nullptr, /*allow_exceptions=*/false);
    t::description_text(json);
    const t::ConnectorRow row = t::connector_row(json);
    t::spec_difference(json, t::endpoint_spec(row, kTag));
    const t::ReconcilePlan plan = t::plan_reconcile({row}, {row}, page.endpoints, kTag);
    for (const auto& [id, version] : plan.orphans) {
      if (!t::plausible_endpoint_id(id)) std::abort();
    }

    const std::string head = std::string("pg_gateway owner=") + kTag + " connector=";
    const auto marked = t::marked_connector(body, kTag);
    if (marked && body.compare(0, head.size(), head) != 0) std::abort();
    if (marked && (marked->empty() || marked->find('\n') != std::string::npos)) std::abort();
  } catch (...) {
    std::abort();  // a reader of remote answers must never throw
  }
  return 0;
}
