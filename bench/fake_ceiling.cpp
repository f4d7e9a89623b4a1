// A fake's own ceiling: a plain keep-alive client (libcurl multi, the same client the worker
// uses, nothing else) writes as fast as the fake takes it. The bench scripts run it in the same
// session as the worker's drain, so the ratio of the two is what counts.
//
//   fake_ceiling kong|temporal|nexus BASE_URL SECONDS CONCURRENCY [ENDPOINT_ID]
//     -> prints "<writes> <seconds>"
//
// kong: PUT /services/{id}; temporal: POST /cluster/nexus/endpoints (namespace "bench" must
// exist in the fake); nexus: operation starts at ENDPOINT_ID (a handler answering 200), each
// with a request id of its own.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/http_client.hpp"
#include "core/kong_ids.hpp"

namespace {

enum class Mode { kKong, kTemporal, kNexus };

gateway::http::Request write_request(Mode mode, long n, const std::string& endpoint) {
  if (mode == Mode::kNexus) {
    gateway::http::Request start{"POST", "/nexus/endpoints/" + endpoint + "/services/ceiling/start",
                                 R"({"n":)" + std::to_string(n) + "}"};
    start.headers.push_back("Nexus-Request-Id: ceiling-" + std::to_string(n));
    return start;
  }
  if (mode == Mode::kTemporal) {
    std::string name = "ceiling-" + std::to_string(n);
    return {"POST", "/cluster/nexus/endpoints",
            R"({"spec":{"name":")" + name +
                R"(","description":"ceiling","target":{"worker":{"namespace":"bench","taskQueue":"q"}}}})"};
  }
  std::string id = gateway::kong::object_id("ceiling", std::to_string(n));
  return {"PUT", "/services/" + id,
          R"({"name":"ceiling-)" + id + R"(","host":"app.internal","port":3000,"tags":["ceiling"]})"};
}

}  // namespace

int main(int argc, char** argv) {
  const std::string kind = argc > 1 ? argv[1] : "";
  if (!(argc == 5 && (kind == "kong" || kind == "temporal")) && !(argc == 6 && kind == "nexus")) {
    std::fprintf(stderr, "usage: %s kong|temporal|nexus BASE_URL SECONDS CONCURRENCY [ENDPOINT_ID]\n", argv[0]);
    return 2;
  }
  const Mode mode = kind == "kong" ? Mode::kKong : kind == "temporal" ? Mode::kTemporal : Mode::kNexus;
  const std::string endpoint = argc == 6 ? argv[5] : "";
  const double seconds = std::atof(argv[3]);
  gateway::http::ClientOptions options;
  options.base_url = argv[2];
  options.max_in_flight = std::atoi(argv[4]);
  gateway::http::Client client(options);

  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const auto deadline = start + std::chrono::duration<double>(seconds);
  long writes = 0, failures = 0, sent = 0;
  auto next = [&](auto&& self) -> void {
    if (clock::now() >= deadline) return;
    client.submit(write_request(mode, sent++, endpoint), [&, self](gateway::http::Response&& r) {
      if (r.status == 200) ++writes; else ++failures;
      self(self);
    });
  };
  for (int i = 0; i < options.max_in_flight; ++i) next(next);
  client.run_until_idle();
  const double elapsed = std::chrono::duration<double>(clock::now() - start).count();
  std::printf("%ld %.3f\n", writes, elapsed);
  if (failures > 0) std::fprintf(stderr, "%ld requests failed\n", failures);
  return 0;
}
