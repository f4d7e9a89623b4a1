// The HTTP client's per-request header lines and timeout, and what it keeps of an answer's
// headers (bounded against a hostile server).
#include "core/http_client.hpp"
#include "nexus_fixture.hpp"

#include <chrono>
#include <string>

#include <gtest/gtest.h>

namespace gateway::http {
namespace {

using gateway::testing::NexusReply;
using gateway::testing::NexusRequest;
using gateway::testing::NexusServer;

Response fetch(const std::string& url, Request request, std::vector<std::string> shared = {}, long timeout_ms = 10000) {
  ClientOptions options;
  options.base_url = url;
  options.headers = std::move(shared);
  options.timeout_ms = timeout_ms;
  Client client(options);
  Response out;
  int calls = 0;
  client.submit(std::move(request), [&](Response&& r) {
    ++calls;
    out = std::move(r);
  });
  client.run_until_idle();
  EXPECT_EQ(calls, 1);
  return out;
}

TEST(HttpClientHeaders, PerRequestLineReachesTheServerAndReplacesTheSharedOne) {
  NexusServer server([](const NexusRequest&) { return NexusReply{200, "{}", {}}; });
  Request request{"POST", "/x", "{}"};
  request.headers = {"authorization: Bearer connector", "X-Extra: 1"};
  fetch(server.url(), request, {"Authorization: Bearer file", "Kept: yes"});
  const NexusRequest got = server.received().at(0);
  EXPECT_EQ(got.count("authorization"), 1);
  EXPECT_EQ(got.header("authorization"), "Bearer connector");
  EXPECT_EQ(got.header("x-extra"), "1");
  EXPECT_EQ(got.header("kept"), "yes");
  EXPECT_EQ(got.header("content-type"), "application/json");
}

TEST(HttpClientHeaders, SharedLinesStayWithoutPerRequestOnes) {
  NexusServer server([](const NexusRequest&) { return NexusReply{200, "{}", {}}; });
  fetch(server.url(), Request{"GET", "/x", ""}, {"Authorization: Bearer file"});
  EXPECT_EQ(server.received().at(0).header("authorization"), "Bearer file");
}

TEST(HttpClientHeaders, AnswerHeadersAreKeptLowerCasedAndTrimmed) {
  NexusServer server([](const NexusRequest&) {
    return NexusReply{201, "{\"token\":\"t\"}",
                      {"Content-Type: application/json; charset=utf-8", "Nexus-Link:   <a://b>; type=\"x\"  ",
                       "NEXUS-LINK: <c://d>; type=\"y\"", "Retry-After: 7"}};
  });
  const Response r = fetch(server.url(), Request{"POST", "/x", "{}"});
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.content_type, "application/json; charset=utf-8");
  EXPECT_EQ(r.retry_after_s, 7);
  std::vector<std::string> links;
  for (const auto& [name, value] : r.headers) {
    if (name == "nexus-link") links.push_back(value);
  }
  EXPECT_EQ(links, (std::vector<std::string>{"<a://b>; type=\"x\"", "<c://d>; type=\"y\""}));
  EXPECT_FALSE(r.body_truncated);
}

TEST(HttpClientHeaders, AHostileServerCannotMakeUsKeepUnboundedHeaders) {
  NexusServer server([](const NexusRequest&) {
    NexusReply reply{200, "{}", {}};
    for (int i = 0; i < 500; ++i) reply.headers.push_back("X-H" + std::to_string(i) + ": v");
    reply.headers.push_back("X-Big: " + std::string(50000, 'a'));
    return reply;
  });
  const Response r = fetch(server.url(), Request{"GET", "/x", ""});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers.size(), kMaxResponseHeaders);
  for (const auto& [name, value] : r.headers) EXPECT_LE(value.size(), kMaxHeaderValueBytes);
}

TEST(HttpClientHeaders, LongBodyIsCutAndSaysSo) {
  NexusServer server([](const NexusRequest&) { return NexusReply{200, std::string(kMaxBodyBytes + 1000, 'x'), {}}; });
  const Response r = fetch(server.url(), Request{"GET", "/x", ""});
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.body_truncated);
  EXPECT_EQ(r.body.size(), kMaxBodyBytes);
}

TEST(HttpClientHeaders, PerRequestBodyBoundCutsEarlier) {
  NexusServer server([](const NexusRequest&) { return NexusReply{200, std::string(300000, 'a'), {}}; });
  Request request{"GET", "/x", ""};
  request.max_body_bytes = 1000;
  Response r = fetch(server.url(), request);
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.body_truncated);
  EXPECT_EQ(r.body.size(), 1000u);
  // 0 (and anything above it) is the client's own bound.
  request.max_body_bytes = 0;
  r = fetch(server.url(), request);
  EXPECT_FALSE(r.body_truncated);
  EXPECT_EQ(r.body.size(), 300000u);
}

TEST(HttpClientHeaders, PerRequestTimeoutFires) {
  NexusServer server([](const NexusRequest&) { return NexusReply{200, "{}", {}, 3000}; });
  Request request{"GET", "/slow", ""};
  request.timeout_ms = 200;
  const auto started = std::chrono::steady_clock::now();
  const Response r = fetch(server.url(), request, {}, 20000);
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(r.status, 0);
  EXPECT_FALSE(r.transport_error.empty());
  EXPECT_LT(took, std::chrono::milliseconds(2500));
}

}  // namespace
}  // namespace gateway::http
