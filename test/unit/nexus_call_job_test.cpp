// The connector_call job against a scripted Nexus handler on a loopback socket: the request it
// sends, what each answer makes of the call, cancel and deadline, and hostile answers. Every run
// must call `finish` exactly once, never throw and never hang.
#include "core/nexus_call.hpp"
#include "core/nexus_call_job.hpp"
#include "core/safe_text.hpp"
#include "nexus_fixture.hpp"

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace gateway::nexus {
namespace {

using gateway::testing::NexusReply;
using gateway::testing::NexusRequest;
using gateway::testing::NexusServer;

const char* kCall = "0b2f9a3e-1c4d-4e5f-8a6b-7c8d9e0f1a2b";
const double kNow = 1795939200.0;

Json claim() {
  return Json{{"id", kCall},
              {"state", "started"},
              {"connector_id", "11111111-2222-4333-8444-555555555555"},
              {"endpoint_id", "ep-1"},
              {"service", "orders"},
              {"operation", "place"},
              {"interface_type", "update"},
              {"callable_name", "place_order"},
              {"source_project_id", "22222222-2222-4333-8444-555555555555"},
              {"input", {{"sku", "a-1"}, {"qty", 2}}},
              {"token", nullptr},
              {"cancel_requested", false},
              {"cancel_sent", false},
              {"deadline", kNow + 600},
              {"now", kNow},
              {"auth_config_sealed", nullptr},
              {"attempts", 1}};
}

NexusReply json_reply(long status, const Json& body, std::vector<std::string> headers = {}) {
  headers.push_back("Content-Type: application/json");
  return NexusReply{status, body.dump(), headers};
}

bool has_nul(const Json& j) {
  if (j.is_string()) return j.get_ref<const std::string&>().find('\0') != std::string::npos;
  if (j.is_primitive()) return false;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if ((j.is_object() && it.key().find('\0') != std::string::npos) || has_nul(*it)) return true;
  }
  return false;
}

struct JobRun {
  sync::JobOutcome outcome;
  std::optional<double> next_change;
  int finishes = 0;
  int observed = 0;
};

class NexusJob : public ::testing::Test {
 protected:
  void serve(NexusServer::Handler handler) { server_ = std::make_unique<NexusServer>(std::move(handler)); }

  CallOptions options() const {
    CallOptions o;
    o.callback_url = "http://127.0.0.1:8790";
    o.callback_token = "cb-token";
    o.headers = {"Authorization: Bearer connector"};
    o.request_timeout_ms = 30000;
    return o;
  }

  JobRun run(const Json& state, const CallOptions& o, sync::CallObserver observer = nullptr) {
    http::ClientOptions co;
    co.base_url = server_ ? server_->url() : "http://127.0.0.1:9";
    co.headers = {"Authorization: Bearer from-file"};
    co.timeout_ms = 10000;
    co.connect_timeout_ms = 2000;
    http::Client client(co);
    JobRun out;
    run_call_job(client, call_row(state), o,
                 [&](sync::JobOutcome&& r, std::optional<double> next) {
                   ++out.finishes;
                   out.outcome = std::move(r);
                   out.next_change = next;
                 },
                 observer ? observer : [&](const sync::CallResult&) { ++out.observed; });
    client.run_until_idle();
    EXPECT_EQ(out.finishes, 1);
    EXPECT_EQ(out.outcome.error, safe_text(out.outcome.error, 1000));
    // Storable: valid UTF-8 (a strict dump throws otherwise) and no NUL anywhere.
    const std::string synced = out.outcome.synced.dump(-1, ' ', false, Json::error_handler_t::strict);
    EXPECT_FALSE(has_nul(out.outcome.synced));
    return out;
  }
  JobRun run(const Json& state) { return run(state, options()); }

  std::vector<NexusRequest> received() const { return server_ ? server_->received() : std::vector<NexusRequest>{}; }

  std::unique_ptr<NexusServer> server_;
};

const Json kFailedFailure = Json::parse(R"({"message":"out of stock","metadata":{"type":"nexus.OperationError"},"details":{"state":"failed"}})");

// --- the request ---------------------------------------------------------------------------------

TEST_F(NexusJob, StartRequestShape) {
  serve([](const NexusRequest&) { return json_reply(200, Json{{"ok", true}}); });
  Json state = claim();
  state["endpoint_id"] = "ep/1";
  state["service"] = "orders v1";
  state["operation"] = "place/../x";
  state["deadline"] = kNow + 10.5;
  run(state);
  ASSERT_EQ(received().size(), 1u);
  const NexusRequest r = received()[0];
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.path, std::string("/nexus/endpoints/ep%2F1/services/orders%20v1/place%2F..%2Fx?callback=") +
                        "http%3A%2F%2F127.0.0.1%3A8790%2Fnexus%2Fcalls%2F" + kCall);
  EXPECT_EQ(r.header("content-type"), "application/json");
  EXPECT_EQ(r.header("nexus-request-id"), kCall);
  EXPECT_EQ(r.header("request-timeout"), "10500ms");  // the deadline is nearer than 30 s
  EXPECT_EQ(r.header("operation-timeout"), "10500ms");
  EXPECT_EQ(r.header("nexus-callback-pg-gateway-token"), "cb-token");
  EXPECT_EQ(r.header("pg-gateway-interface-type"), "update");
  EXPECT_EQ(r.header("pg-gateway-callable"), "place_order");
  EXPECT_EQ(r.header("pg-gateway-source-project"), "22222222-2222-4333-8444-555555555555");
  EXPECT_EQ(r.count("authorization"), 1);
  EXPECT_EQ(r.header("authorization"), "Bearer connector");  // the connector's replaces the file's
  EXPECT_EQ(Json::parse(r.body), (Json{{"sku", "a-1"}, {"qty", 2}}));
}

TEST_F(NexusJob, RequestTimeoutIsTheSettingWhenTheDeadlineIsFar) {
  serve([](const NexusRequest&) { return json_reply(200, Json()); });
  run(claim());
  EXPECT_EQ(received().at(0).header("request-timeout"), "30000ms");
  EXPECT_EQ(received().at(0).header("operation-timeout"), "600000ms");
}

TEST_F(NexusJob, NoListenerNoCallback) {
  serve([](const NexusRequest&) { return json_reply(200, Json()); });
  CallOptions o = options();
  o.callback_url.clear();
  run(claim(), o);
  const NexusRequest r = received().at(0);
  EXPECT_EQ(r.path, "/nexus/endpoints/ep-1/services/orders/place");
  EXPECT_EQ(r.count("nexus-callback-pg-gateway-token"), 0);
}

TEST_F(NexusJob, HeaderInjectionIsRefusedBeforeAnythingIsSent) {
  serve([](const NexusRequest&) { return json_reply(200, Json()); });
  Json state = claim();
  state["callable_name"] = "x\r\nEvil: 1";
  JobRun out = run(state);
  EXPECT_TRUE(received().empty());
  EXPECT_EQ(out.outcome.verdict, sync::Verdict::kDone);
  EXPECT_EQ(out.outcome.synced["state"], "failed");
  CallOptions o = options();
  o.headers = {"Bad Name: x"};
  out = run(claim(), o);
  EXPECT_TRUE(received().empty());
  EXPECT_EQ(out.outcome.synced["state"], "failed");
}

// A connector's auth_config header that frames the message or steers the connection (curl sends
// "Transfer-Encoding: gzip" next to its own Content-Length: a proxy in front of Temporal may read
// the body differently and the shared keep-alive connection desyncs), or that doubles a header
// the call sets itself, is refused before anything is sent.
TEST_F(NexusJob, FramingAndOwnHeadersFromTheConnectorAreRefused) {
  serve([](const NexusRequest&) { return json_reply(200, Json()); });
  for (const char* line : {"Transfer-Encoding: gzip", "transfer-encoding: chunked", "Content-Length: 3", "TE: trailers",
                           "Connection: Authorization", "Keep-Alive: timeout=5", "Upgrade: h2c", "Trailer: X",
                           "Host: evil.example", "Expect: 100-continue", "Proxy-Authorization: Basic eA==",
                           "Content-Encoding: gzip", "Content-Type: text/plain", "NEXUS-REQUEST-ID: other",
                           "Request-Timeout: 1ms", "Operation-Timeout: 1ms", "Nexus-Callback-Pg-Gateway-Token: x",
                           "Pg-Gateway-Source-Project: other", "Nexus-Operation-Token: other"}) {
    CallOptions o = options();
    o.headers = {"Authorization: Bearer connector", line};
    const JobRun out = run(claim(), o);
    EXPECT_TRUE(received().empty()) << line;
    EXPECT_EQ(out.outcome.verdict, sync::Verdict::kDone) << line;
    EXPECT_EQ(out.outcome.synced["state"], "failed") << line;
  }
  // An ordinary one still goes.
  CallOptions o = options();
  o.headers = {"Authorization: Bearer connector", "X-Tenant: a"};
  EXPECT_EQ(run(claim(), o).outcome.synced["state"], "succeeded");
  EXPECT_EQ(received().at(0).header("x-tenant"), "a");
}

// --- answers to the start ------------------------------------------------------------------------

TEST_F(NexusJob, SucceededWithJson) {
  serve([](const NexusRequest&) { return json_reply(200, Json{{"order", 42}}, {"Nexus-Link: <temporal:///w>; type=\"wf\""}); });
  const JobRun out = run(claim());
  EXPECT_EQ(out.outcome.verdict, sync::Verdict::kDone);
  EXPECT_EQ(out.outcome.synced, (Json{{"state", "succeeded"}, {"result", {{"order", 42}}},
                                      {"links", Json::parse(R"([{"url":"temporal:///w","type":"wf"}])")}, {"endpoint_id", "ep-1"}}));
  EXPECT_FALSE(out.next_change.has_value());
  EXPECT_EQ(out.observed, 1);
}

TEST_F(NexusJob, SucceededWithNonJsonIsKeptAsBytes) {
  serve([](const NexusRequest&) { return NexusReply{200, "plain\xff", {"Content-Type: text/plain"}}; });
  const JobRun out = run(claim());
  EXPECT_EQ(out.outcome.synced["state"], "succeeded");
  EXPECT_EQ(out.outcome.synced["result"], (Json{{"contentType", "text/plain"}, {"base64", "cGxhaW7/"}}));
}

TEST_F(NexusJob, StartedIsRunningWithTokenAndComesBackAtTheDeadline) {
  serve([](const NexusRequest&) {
    return json_reply(201, Json{{"token", "tok-1"}, {"state", "running"}}, {"Nexus-Link: <temporal:///w>; type=\"wf\""});
  });
  const JobRun out = run(claim());
  EXPECT_EQ(out.outcome.verdict, sync::Verdict::kDone);
  EXPECT_EQ(out.outcome.synced["state"], "running");
  EXPECT_EQ(out.outcome.synced["token"], "tok-1");
  EXPECT_EQ(out.outcome.synced["links"].size(), 1u);
  EXPECT_EQ(out.outcome.synced["endpoint_id"], "ep-1");
  EXPECT_EQ(out.next_change, kNow + 600);
}

TEST_F(NexusJob, StartedWhileCancelRequestedIsCanceledAtOnce) {
  serve([](const NexusRequest& r) {
    if (r.path.find("/cancel") != std::string::npos) return NexusReply{202, "", {}};
    return json_reply(201, Json{{"token", "tok-1"}, {"state", "running"}});
  });
  Json state = claim();
  state["cancel_requested"] = true;
  const JobRun out = run(state);
  ASSERT_EQ(received().size(), 2u);
  EXPECT_EQ(received()[1].path, "/nexus/endpoints/ep-1/services/orders/place/cancel");
  EXPECT_EQ(received()[1].header("nexus-operation-token"), "tok-1");
  EXPECT_EQ(out.outcome.synced["state"], "running");
  EXPECT_EQ(out.outcome.synced["token"], "tok-1");
  EXPECT_EQ(out.outcome.synced["cancel_sent"], true);
  EXPECT_EQ(out.observed, 2);
}

TEST_F(NexusJob, StartedButCancelRefusedStillRecordsTheToken) {
  serve([](const NexusRequest& r) {
    if (r.path.find("/cancel") != std::string::npos) return json_reply(503, Json{{"message", "busy"}});
    return json_reply(201, Json{{"token", "tok-1"}});
  });
  Json state = claim();
  state["cancel_requested"] = true;
  const JobRun out = run(state);
  EXPECT_EQ(out.outcome.verdict, sync::Verdict::kDone);
  EXPECT_EQ(out.outcome.synced["token"], "tok-1");
  EXPECT_FALSE(out.outcome.synced.contains("cancel_sent"));
}

TEST_F(NexusJob, FailedAndCanceledAnswers) {
  serve([](const NexusRequest&) { return json_reply(424, kFailedFailure, {"Nexus-Operation-State: failed"}); });
  JobRun out = run(claim());
  EXPECT_EQ(out.outcome.verdict, sync::Verdict::kDone);
  EXPECT_EQ(out.outcome.synced["state"], "failed");
  EXPECT_EQ(out.outcome.synced["failure"]["message"], "out of stock");
  serve([](const NexusRequest&) {
    return json_reply(424, Json{{"message", "canceled"}, {"details", {{"state", "canceled"}}}}, {"Nexus-Operation-State: canceled"});
  });
  out = run(claim());
  EXPECT_EQ(out.outcome.synced["state"], "canceled");
}

TEST_F(NexusJob, NonRetryableHandlerErrorFailsTheCall) {
  serve([](const NexusRequest&) { return json_reply(404, Json{{"message", "nexus endpoint not found"}}); });
  const JobRun out = run(claim());
  EXPECT_EQ(out.outcome.verdict, sync::Verdict::kDone);
  EXPECT_EQ(out.outcome.status, 404);
  EXPECT_EQ(out.outcome.synced["state"], "failed");
  const Json& f = out.outcome.synced["failure"];
  EXPECT_EQ(f["message"], "nexus endpoint not found");
  EXPECT_EQ(f["metadata"]["type"], "nexus.HandlerError");
  EXPECT_EQ(f["details"]["type"], "NOT_FOUND");
  EXPECT_NE(out.outcome.error.find("nexus endpoint not found"), std::string::npos);
}

TEST_F(NexusJob, RetryableHandlerErrorsRetryAndTheRowStaysStarted) {
  for (long status : {408L, 429L, 500L, 503L, 520L, 502L}) {
    serve([status](const NexusRequest&) { return json_reply(status, Json{{"message", "later"}}, {"Retry-After: 9"}); });
    const JobRun out = run(claim());
    EXPECT_EQ(out.outcome.verdict, sync::Verdict::kRetry) << status;
    EXPECT_EQ(out.outcome.status, status);
    EXPECT_EQ(out.outcome.retry_after_s, 9);
    EXPECT_EQ(out.outcome.synced, (Json{{"state", "unchanged"}}));
  }
}

TEST_F(NexusJob, RetryableOverridesTurnANotFoundIntoARetryAndBack) {
  serve([](const NexusRequest&) { return json_reply(404, Json{{"message", "namespace not found"}}, {"Nexus-Request-Retryable: true"}); });
  EXPECT_EQ(run(claim()).outcome.verdict, sync::Verdict::kRetry);
  serve([](const NexusRequest&) {
    return json_reply(503, Json::parse(R"({"message":"m","metadata":{"type":"nexus.HandlerError"},"details":{"type":"UNAVAILABLE","retryableOverride":false}})"));
  });
  const JobRun out = run(claim());
  EXPECT_EQ(out.outcome.verdict, sync::Verdict::kDone);
  EXPECT_EQ(out.outcome.synced["state"], "failed");
}

TEST_F(NexusJob, NoWorkerIsARetryThatSaysSo) {
  serve([](const NexusRequest&) { return json_reply(520, Json{{"message", "upstream timeout"}}); });
  const JobRun out = run(claim());
  EXPECT_EQ(out.outcome.verdict, sync::Verdict::kRetry);
  EXPECT_EQ(out.outcome.error.rfind("no worker polls the target's task queue (520 upstream timeout)", 0), 0u) << out.outcome.error;
}

// --- hostile answers -----------------------------------------------------------------------------

TEST_F(NexusJob, InvalidUtf8ErrorBody) {
  serve([](const NexusRequest&) { return NexusReply{500, std::string("\xff\xfe\0oops", 7), {"Content-Type: text/html"}}; });
  const JobRun out = run(claim());
  EXPECT_EQ(out.outcome.verdict, sync::Verdict::kRetry);
  EXPECT_NE(out.outcome.error.find("INTERNAL"), std::string::npos);
}

TEST_F(NexusJob, TwentyMegabyteResultIsNotStoredCut) {
  serve([](const NexusRequest&) { return NexusReply{200, "[" + std::string(20u << 20, ' ') + "]", {"Content-Type: application/json"}}; });
  const JobRun out = run(claim());
  EXPECT_EQ(out.outcome.synced["state"], "failed");
  EXPECT_EQ(out.outcome.synced["failure"]["details"]["type"], "result_too_large");
}

// A start's result is bounded as a completion's is (gateway.callback_max_body): a 2 MB result
// under a 1 MB bound is neither stored nor held, and the call fails saying why; one under it is stored.
TEST_F(NexusJob, ResultOverTheConfiguredBoundIsNotStored) {
  serve([](const NexusRequest&) {
    return NexusReply{200, "[\"" + std::string(2u << 20, 'x') + "\"]", {"Content-Type: application/json"}};
  });
  CallOptions o = options();
  o.max_result_bytes = 1u << 20;
  JobRun out = run(claim(), o);
  EXPECT_EQ(out.outcome.synced["state"], "failed");
  EXPECT_EQ(out.outcome.synced["failure"]["details"]["type"], "result_too_large");
  EXPECT_LT(out.outcome.synced.dump().size(), 4096u);
  o.max_result_bytes = 3u << 20;
  out = run(claim(), o);
  EXPECT_EQ(out.outcome.synced["state"], "succeeded");
  EXPECT_EQ(out.outcome.synced["result"][0].get<std::string>().size(), 2u << 20);
}

TEST_F(NexusJob, CutJsonResultIsKeptAsBytes) {
  serve([](const NexusRequest&) { return NexusReply{200, "{\"order\":", {"Content-Type: application/json"}}; });
  const JobRun out = run(claim());
  EXPECT_EQ(out.outcome.synced["state"], "succeeded");
  EXPECT_EQ(out.outcome.synced["result"]["base64"], "eyJvcmRlciI6");
}

TEST_F(NexusJob, ClosedSocketIsATransportRetry) {
  serve([](const NexusRequest&) {
    NexusReply r;
    r.hang_up = true;
    return r;
  });
  const JobRun out = run(claim());
  EXPECT_EQ(out.outcome.verdict, sync::Verdict::kRetry);
  EXPECT_EQ(out.outcome.status, 0);
  EXPECT_NE(out.outcome.error, "");
}

TEST_F(NexusJob, SlowServerIsGivenUpOnShortlyAfterTheRequestTimeout) {
  serve([](const NexusRequest&) {
    NexusReply r = json_reply(200, Json());
    r.delay_ms = 6000;
    return r;
  });
  Json state = claim();
  state["deadline"] = kNow + 0.5;
  const auto started = std::chrono::steady_clock::now();
  const JobRun out = run(state);
  EXPECT_EQ(received().at(0).header("request-timeout"), "500ms");
  EXPECT_EQ(out.outcome.verdict, sync::Verdict::kRetry);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(5000));
}

TEST_F(NexusJob, AThrowingObserverBecomesARetry) {
  serve([](const NexusRequest&) { return json_reply(200, Json()); });
  const JobRun out = run(claim(), options(), [](const sync::CallResult&) { throw std::runtime_error("breaker broke"); });
  EXPECT_EQ(out.outcome.verdict, sync::Verdict::kRetry);
  EXPECT_NE(out.outcome.error.find("breaker broke"), std::string::npos);
}

// --- by claim state ------------------------------------------------------------------------------

TEST_F(NexusJob, FinalStateSendsNothing) {
  serve([](const NexusRequest&) { return json_reply(200, Json()); });
  for (const char* s : {"succeeded", "failed", "canceled", "timed_out"}) {
    Json state = claim();
    state["state"] = s;
    state["token"] = "tok";
    state["deadline"] = kNow - 1;
    const JobRun out = run(state);
    EXPECT_EQ(out.outcome.verdict, sync::Verdict::kDone);
    EXPECT_EQ(out.outcome.synced, (Json{{"state", "unchanged"}}));
  }
  EXPECT_TRUE(received().empty());
}

TEST_F(NexusJob, DeadlinePassedWithTokenCancelsThenTimesOut) {
  serve([](const NexusRequest&) { return NexusReply{202, "", {}}; });
  Json state = claim();
  state["state"] = "running";
  state["token"] = "tok-1";
  state["deadline"] = kNow;
  const JobRun out = run(state);
  ASSERT_EQ(received().size(), 1u);
  EXPECT_EQ(received()[0].path, "/nexus/endpoints/ep-1/services/orders/place/cancel");
  EXPECT_EQ(received()[0].header("nexus-operation-token"), "tok-1");
  EXPECT_EQ(out.outcome.verdict, sync::Verdict::kDone);
  EXPECT_EQ(out.outcome.synced["state"], "timed_out");
  EXPECT_EQ(out.outcome.synced["cancel_sent"], true);
  EXPECT_EQ(out.outcome.synced["failure"], Json::parse(R"({"message":"the call's deadline passed","details":{"type":"timed_out"}})"));
  EXPECT_FALSE(out.next_change.has_value());
}

TEST_F(NexusJob, DeadlinePassedCancelIsBestEffort) {
  serve([](const NexusRequest&) { return json_reply(500, Json{{"message", "x"}}); });
  Json state = claim();
  state["state"] = "running";
  state["token"] = "tok-1";
  state["deadline"] = kNow - 5;
  const JobRun out = run(state);
  EXPECT_EQ(received().size(), 1u);
  EXPECT_EQ(out.outcome.synced["state"], "timed_out");
  EXPECT_FALSE(out.outcome.synced.contains("cancel_sent"));
}

TEST_F(NexusJob, DeadlinePassedWithoutTokenSendsNothing) {
  serve([](const NexusRequest&) { return json_reply(200, Json()); });
  Json state = claim();
  state["deadline"] = kNow - 1;
  const JobRun out = run(state);
  EXPECT_TRUE(received().empty());
  EXPECT_EQ(out.outcome.synced["state"], "timed_out");
}

TEST_F(NexusJob, NoEndpointFails) {
  serve([](const NexusRequest&) { return json_reply(200, Json()); });
  Json state = claim();
  state["endpoint_id"] = nullptr;
  const JobRun out = run(state);
  EXPECT_TRUE(received().empty());
  EXPECT_EQ(out.outcome.synced["state"], "failed");
  EXPECT_EQ(out.outcome.synced["failure"]["message"], "the connector has no Nexus endpoint now");
}

TEST_F(NexusJob, RunningCancelRequested) {
  serve([](const NexusRequest&) { return NexusReply{202, "", {}}; });
  Json state = claim();
  state["state"] = "running";
  state["token"] = "tok-1";
  state["cancel_requested"] = true;
  JobRun out = run(state);
  ASSERT_EQ(received().size(), 1u);
  EXPECT_EQ(received()[0].method, "POST");
  EXPECT_EQ(received()[0].header("nexus-operation-token"), "tok-1");
  EXPECT_EQ(received()[0].header("authorization"), "Bearer connector");
  EXPECT_EQ(out.outcome.synced, (Json{{"state", "running"}, {"cancel_sent", true}}));
  EXPECT_EQ(out.next_change, kNow + 600);

  serve([](const NexusRequest&) { return json_reply(503, Json{{"message", "busy"}}); });
  out = run(state);
  EXPECT_EQ(out.outcome.verdict, sync::Verdict::kRetry);

  serve([](const NexusRequest&) { return json_reply(404, Json{{"message", "operation not found"}}); });
  out = run(state);
  EXPECT_EQ(out.outcome.verdict, sync::Verdict::kDead);
  EXPECT_EQ(out.outcome.synced, (Json{{"state", "unchanged"}}));
}

TEST_F(NexusJob, RunningWithTokenIsLeftUntilTheDeadline) {
  serve([](const NexusRequest&) { return json_reply(200, Json()); });
  Json state = claim();
  state["state"] = "running";
  state["token"] = "tok-1";
  state["cancel_requested"] = true;
  state["cancel_sent"] = true;
  const JobRun out = run(state);
  EXPECT_TRUE(received().empty());
  EXPECT_EQ(out.outcome.synced, (Json{{"state", "unchanged"}}));
  EXPECT_EQ(out.next_change, kNow + 600);
}

TEST_F(NexusJob, BadClaimStateFailsTheCallWithoutARequest) {
  serve([](const NexusRequest&) { return json_reply(200, Json()); });
  Json state = claim();
  state["cancel_requested"] = "yes";
  const JobRun out = run(state);
  EXPECT_TRUE(received().empty());
  EXPECT_EQ(out.outcome.synced["state"], "failed");
  EXPECT_NE(out.outcome.synced["failure"]["message"].get<std::string>().find("cancel_requested"), std::string::npos);
}

// --- the claim state -----------------------------------------------------------------------------

TEST(NexusCallRow, ReadsEveryField) {
  Json state = claim();
  state["token"] = "tok";
  state["auth_config_sealed"] = "c2VhbGVk";
  const CallRow row = call_row(state);
  EXPECT_EQ(row.error, "");
  EXPECT_EQ(row.id, kCall);
  EXPECT_EQ(row.state, "started");
  EXPECT_EQ(row.endpoint_id, "ep-1");
  EXPECT_EQ(row.service, "orders");
  EXPECT_EQ(row.operation, "place");
  EXPECT_EQ(row.interface_type, "update");
  EXPECT_EQ(row.callable_name, "place_order");
  EXPECT_EQ(row.token, "tok");
  EXPECT_EQ(row.deadline, kNow + 600);
  EXPECT_EQ(row.now, kNow);
  EXPECT_EQ(row.auth_config_sealed, "c2VhbGVk");
  EXPECT_EQ(row.attempts, 1);
  EXPECT_EQ(row.input, (Json{{"sku", "a-1"}, {"qty", 2}}));
}

TEST(NexusCallRow, BadStatesNeverThrow) {
  for (const Json& bad : {Json(), Json::array(), Json("x"), Json{{"id", 5}}, Json{{"state", "queued"}},
                          Json{{"id", kCall}, {"state", "queued"}, {"deadline", "soon"}},
                          Json{{"id", "a\nb"}, {"state", "queued"}}}) {
    CallRow row;
    EXPECT_NO_THROW(row = call_row(bad));
    EXPECT_NE(row.error, "") << bad.dump();
  }
  const CallRow minimal = call_row(Json{{"id", kCall}, {"state", "queued"}});
  EXPECT_EQ(minimal.error, "");
  EXPECT_FALSE(minimal.deadline.has_value());
  EXPECT_GT(minimal.now, 0);
}

}  // namespace
}  // namespace gateway::nexus
