// The Kong fake's own ceiling: a plain keep-alive client (libcurl multi, the same client the
// worker uses, nothing else) PUTs services as fast as the fake takes them. bench/sync.sh runs it
// in the same session as the worker's drain, so the ratio of the two is what counts.
//
//   kong_ceiling BASE_URL SECONDS CONCURRENCY   -> prints "<writes> <seconds>"
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/http_client.hpp"
#include "core/kong_ids.hpp"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s BASE_URL SECONDS CONCURRENCY\n", argv[0]);
    return 2;
  }
  const double seconds = std::atof(argv[2]);
  gateway::http::ClientOptions options;
  options.base_url = argv[1];
  options.max_in_flight = std::atoi(argv[3]);
  gateway::http::Client client(options);

  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const auto deadline = start + std::chrono::duration<double>(seconds);
  long writes = 0, failures = 0, sent = 0;
  auto next = [&](auto&& self) -> void {
    if (clock::now() >= deadline) return;
    std::string id = gateway::kong::object_id("ceiling", std::to_string(sent++));
    std::string body = R"({"name":"ceiling-)" + id + R"(","host":"app.internal","port":3000,"tags":["ceiling"]})";
    client.submit({"PUT", "/services/" + id, body}, [&, self](gateway::http::Response&& r) {
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
