// Reading Temporal's Nexus answers and completions, and the callback token: what a caller of a
// cross-project call relies on (the right outcome, retry or not, nothing lost, nothing unstorable,
// nothing thrown on hostile input).
#include "core/nexus_call.hpp"
#include "core/safe_text.hpp"

#include <sodium.h>

#include <cstring>
#include <string>

#include <gtest/gtest.h>

namespace gateway::nexus {
namespace {

SecureBuffer key(unsigned char fill = 7) {
  ensure_sodium();
  SecureBuffer k(32);
  std::memset(k.data(), fill, k.size());
  return k;
}

const char* kCall = "0b2f9a3e-1c4d-4e5f-8a6b-7c8d9e0f1a2b";
const char* kOtherCall = "0b2f9a3e-1c4d-4e5f-8a6b-7c8d9e0f1a2c";

sync::CallResult answer(long status, std::string body, Headers headers = {}, std::string content_type = "application/json") {
  sync::CallResult r;
  r.status = status;
  r.body = std::move(body);
  r.headers = std::move(headers);
  r.content_type = content_type;
  if (!content_type.empty()) r.headers.emplace_back("content-type", content_type);
  return r;
}

// Text and JSON an outcome carries must be storable: valid UTF-8, no NUL.
bool has_nul(const Json& j) {
  if (j.is_string()) return j.get_ref<const std::string&>().find('\0') != std::string::npos;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (j.is_object() && it.key().find('\0') != std::string::npos) return true;
    if (!it->is_primitive() && has_nul(*it)) return true;
    if (it->is_string() && has_nul(*it)) return true;
  }
  return false;
}
void expect_storable(const Json& j) {
  const std::string text = j.dump(-1, ' ', false, Json::error_handler_t::strict);
  EXPECT_EQ(safe_text(text, text.size() + 1), text);
  EXPECT_FALSE(has_nul(j));
}

// --- token ---------------------------------------------------------------------------------------

TEST(NexusToken, IsBase64UrlOfKeyedBlake2b) {
  const SecureBuffer k = key();
  const std::string token = callback_token(k, kCall);
  unsigned char hash[32];
  crypto_generichash(hash, sizeof hash, reinterpret_cast<const unsigned char*>(kCall), std::strlen(kCall), k.data(), k.size());
  char expected[64];
  sodium_bin2base64(expected, sizeof expected, hash, sizeof hash, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  EXPECT_EQ(token, expected);
  EXPECT_EQ(token.size(), 43u);
  EXPECT_EQ(token.find_first_of("+/="), std::string::npos);
  EXPECT_EQ(callback_token(k, kCall), token);  // deterministic
}

TEST(NexusToken, ValidOnlyForItsCallAndKey) {
  const SecureBuffer k = key();
  const std::string token = callback_token(k, kCall);
  EXPECT_TRUE(callback_token_valid(k, kCall, token));
  EXPECT_FALSE(callback_token_valid(k, kOtherCall, token));   // another call's token
  EXPECT_FALSE(callback_token_valid(key(8), kCall, token));    // another key
  std::string flipped = token;
  flipped[10] = flipped[10] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(callback_token_valid(k, kCall, flipped));       // wrong token, right length
  EXPECT_FALSE(callback_token_valid(k, kCall, token.substr(0, 42)));  // wrong length
  EXPECT_FALSE(callback_token_valid(k, kCall, token + "="));   // padded
  EXPECT_FALSE(callback_token_valid(k, kCall, ""));
  EXPECT_FALSE(callback_token_valid(k, kCall, std::string(43, '!')));  // garbage
  EXPECT_FALSE(callback_token_valid(k, kCall, std::string("\0\xff", 2)));
  EXPECT_FALSE(callback_token_valid(SecureBuffer(), kCall, token));  // no key
}

TEST(NexusToken, CallbackUrl) {
  EXPECT_EQ(callback_url_for("http://127.0.0.1:8790", kCall), std::string("http://127.0.0.1:8790/nexus/calls/") + kCall);
  EXPECT_EQ(callback_url_for("https://h/p/", kCall), std::string("https://h/p/nexus/calls/") + kCall);
}

// --- failure -------------------------------------------------------------------------------------

TEST(NexusFailure, NormalizesAFullFailure) {
  const Json in = Json::parse(R"({"message":"boom","stackTrace":"at x","metadata":{"type":"nexus.OperationError"},
    "details":{"state":"failed","n":[1,2]},"cause":{"message":"inner","cause":{"message":"root"}},"extra":1})");
  const FailureRead f = parse_failure(in);
  ASSERT_EQ(f.error, "");
  EXPECT_EQ(f.failure["message"], "boom");
  EXPECT_EQ(f.failure["stackTrace"], "at x");
  EXPECT_EQ(f.failure["metadata"]["type"], "nexus.OperationError");
  EXPECT_EQ(f.failure["details"]["n"], Json::parse("[1,2]"));
  EXPECT_EQ(f.failure["cause"]["cause"]["message"], "root");
  EXPECT_FALSE(f.failure.contains("extra"));
}

TEST(NexusFailure, EmptyObjectIsAFailureWithAnEmptyMessage) {
  const FailureRead f = parse_failure(Json::object());
  ASSERT_EQ(f.error, "");
  EXPECT_EQ(f.failure, (Json{{"message", ""}}));
}

TEST(NexusFailure, WrongTypesAreRefusedWithAClearMessage) {
  EXPECT_NE(parse_failure(Json::array()).error.find("JSON object"), std::string::npos);
  EXPECT_NE(parse_failure(Json::parse(R"({"message":5})")).error.find("Failure.message must be a string"), std::string::npos);
  EXPECT_NE(parse_failure(Json::parse(R"({"metadata":{"a":1}})")).error.find("Failure.metadata.a"), std::string::npos);
  EXPECT_NE(parse_failure(Json::parse(R"({"metadata":[]})")).error.find("metadata"), std::string::npos);
  EXPECT_NE(parse_failure(Json::parse(R"({"stackTrace":{}})")).error.find("stackTrace"), std::string::npos);
  EXPECT_NE(parse_failure(Json::parse(R"({"cause":"x"})")).error.find("cause:"), std::string::npos);
}

TEST(NexusFailure, CausesNestAtMost32Deep) {
  Json deep = Json{{"message", "root"}};
  for (int i = 0; i < 32; ++i) deep = Json{{"message", "m"}, {"cause", deep}};
  EXPECT_EQ(parse_failure(deep).error, "");
  deep = Json{{"message", "m"}, {"cause", deep}};
  EXPECT_NE(parse_failure(deep).error.find("deeper than 32"), std::string::npos);
}

TEST(NexusFailure, TextsAreMadeStorable) {
  Json in{{"message", std::string("a\0b", 3)}, {"details", {{std::string("k\0", 2), std::string("v\0", 2)}}}};
  const FailureRead f = parse_failure(in);
  ASSERT_EQ(f.error, "");
  expect_storable(f.failure);
}

// --- operation info, links, times ----------------------------------------------------------------

TEST(NexusOperationInfo, TokenAndStateAndThePreV131Id) {
  OperationInfo i = parse_operation_info(R"({"token":"tok-1","state":"running"})");
  EXPECT_EQ(i.error, "");
  EXPECT_EQ(i.token, "tok-1");
  EXPECT_EQ(i.state, "running");
  EXPECT_EQ(parse_operation_info(R"({"id":"old-1","state":"running"})").token, "old-1");
  EXPECT_EQ(parse_operation_info(R"({"id":"old-1","token":"new-1"})").token, "new-1");
  EXPECT_NE(parse_operation_info(R"({"state":"running"})").error, "");
  EXPECT_NE(parse_operation_info(R"({"token":""})").error, "");
  EXPECT_NE(parse_operation_info(R"({"token":"a\nb"})").error, "");
  EXPECT_NE(parse_operation_info("not json").error, "");
  EXPECT_NE(parse_operation_info(R"(["token"])").error, "");
}

TEST(NexusLinks, ParsesSeveralPerHeaderAndRepeatedHeaders) {
  const Json links = parse_links({R"(<temporal:///namespaces/b/workflows/w,1/run>; type="temporal.api.common.v1.Link.WorkflowEvent", <x://y>; type=plain)",
                                  R"(  <a://b?k=v>;type="t\"q";rel=x )"});
  EXPECT_EQ(links, Json::parse(R"([
    {"url":"temporal:///namespaces/b/workflows/w,1/run","type":"temporal.api.common.v1.Link.WorkflowEvent"},
    {"url":"x://y","type":"plain"},
    {"url":"a://b?k=v","type":"t\"q"}])"));
}

TEST(NexusLinks, MalformedEntriesAreSkippedAndTheCountBounded) {
  const Json links = parse_links({"no-brackets; type=\"a\", <ok://1>; type=\"b\"", "<no-type://x>", "<://x>; type=\"unclosed",
                                  "<>; type=\"empty\"", std::string("<bad\x01url>; type=\"c\""), "<ok://2>; type=\"d\""});
  EXPECT_EQ(links, Json::parse(R"([{"url":"ok://1","type":"b"},{"url":"ok://2","type":"d"}])"));
  std::string many;
  for (int i = 0; i < 100; ++i) many += "<u://" + std::to_string(i) + ">; type=\"t\",";
  EXPECT_EQ(parse_links({many}).size(), kMaxLinks);
}

TEST(NexusTime, Rfc3339AndRfc5322) {
  EXPECT_EQ(parse_time("1970-01-01T00:00:00Z"), 0.0);
  EXPECT_EQ(parse_time("2026-11-29T08:00:00.250Z"), 1795939200.25);
  EXPECT_EQ(parse_time("2026-11-29T09:30:00+01:30"), 1795939200.0);
  EXPECT_EQ(parse_time("Sun, 29 Nov 2026 08:00:00 GMT"), 1795939200.0);
  EXPECT_EQ(parse_time("29 Nov 2026 10:00:00 +0200"), 1795939200.0);
  EXPECT_EQ(parse_time("2024-02-29T00:00:00Z"), 1709164800.0);  // leap day
  for (const char* bad : {"", "yesterday", "2026-02-30T00:00:00Z", "2026-11-29T25:00:00Z", "2026-11-29", "2026-11-29T08:00:00",
                          "Sun, 29 Foo 2026 08:00:00 GMT", "Sun, 29 Nov 2026 08:00:00 XYZ", "Sunday, 29 Nov 2026 08:00:00 GMT"}) {
    EXPECT_FALSE(parse_time(bad).has_value()) << bad;
  }
}

// --- start answers -------------------------------------------------------------------------------

TEST(NexusStart, SucceededWithAJsonResult) {
  const StartAnswer a = classify_start(answer(200, R"({"ok":true})", {}, "application/json; charset=utf-8"));
  EXPECT_EQ(a.kind, StartKind::kSucceeded);
  EXPECT_EQ(a.result, (Json{{"ok", true}}));
  EXPECT_EQ(classify_start(answer(200, "[1]", {}, "application/vnd.x+json")).result, Json::parse("[1]"));
  EXPECT_TRUE(classify_start(answer(200, "", {}, "")).result.is_null());
}

TEST(NexusStart, NonJsonAndInvalidJsonResultsAreKeptByteForByte) {
  const StartAnswer a = classify_start(answer(200, "\x01\x02\xff", {}, "application/octet-stream"));
  EXPECT_EQ(a.kind, StartKind::kSucceeded);
  EXPECT_EQ(a.result, (Json{{"contentType", "application/octet-stream"}, {"base64", "AQL/"}}));
  const StartAnswer bad = classify_start(answer(200, "{\"cut", {}, "application/json"));
  EXPECT_EQ(bad.kind, StartKind::kSucceeded);
  EXPECT_EQ(bad.result, (Json{{"contentType", "application/json"}, {"base64", "eyJjdXQ="}}));
  // JSON jsonb would refuse (a NUL, or nesting too deep) is kept as bytes too.
  EXPECT_TRUE(classify_start(answer(200, R"({"a":"\u0000"})")).result.contains("base64"));
  EXPECT_TRUE(classify_start(answer(200, std::string(5000, '[') + std::string(5000, ']'))).result.contains("base64"));
}

TEST(NexusStart, RunningWithTokenAndLinks) {
  const StartAnswer a = classify_start(answer(201, R"({"token":"tok","state":"running"})",
                                              {{"nexus-link", "<temporal:///w>; type=\"wf\""}}));
  EXPECT_EQ(a.kind, StartKind::kRunning);
  EXPECT_EQ(a.token, "tok");
  EXPECT_EQ(a.links, Json::parse(R"([{"url":"temporal:///w","type":"wf"}])"));
  const StartAnswer no_token = classify_start(answer(201, "{}"));
  EXPECT_EQ(no_token.kind, StartKind::kHandlerError);
  EXPECT_TRUE(no_token.retryable);  // the same request id gets the same token
}

TEST(NexusStart, FailedAndCanceled) {
  const std::string failure = R"({"message":"nope","metadata":{"type":"nexus.OperationError"},"details":{"state":"failed"}})";
  StartAnswer a = classify_start(answer(424, failure, {{"nexus-operation-state", "failed"}}));
  EXPECT_EQ(a.kind, StartKind::kFailed);
  EXPECT_EQ(a.failure["message"], "nope");
  a = classify_start(answer(424, failure, {{"nexus-operation-state", "canceled"}}));
  EXPECT_EQ(a.kind, StartKind::kCanceled);
  a = classify_start(answer(424, R"({"message":"c","details":{"state":"canceled"}})"));
  EXPECT_EQ(a.kind, StartKind::kCanceled);  // no header: the Failure's details.state
  a = classify_start(answer(424, R"({"message":"c"})"));
  EXPECT_EQ(a.kind, StartKind::kFailed);
  a = classify_start(answer(424, "<html>"));
  EXPECT_EQ(a.kind, StartKind::kFailed);
  EXPECT_NE(a.failure["message"].get<std::string>().find("could not be read"), std::string::npos);
}

struct ErrorCase {
  long status;
  bool retryable;
  const char* type;
};

TEST(NexusStart, HandlerErrorsRetryableByStatus) {
  for (const ErrorCase& c : {ErrorCase{400, false, "BAD_REQUEST"}, {401, false, "UNAUTHENTICATED"}, {403, false, "UNAUTHORIZED"},
                             {404, false, "NOT_FOUND"}, {409, false, "CONFLICT"}, {501, false, "NOT_IMPLEMENTED"},
                             {408, true, "REQUEST_TIMEOUT"}, {429, true, "RESOURCE_EXHAUSTED"}, {500, true, "INTERNAL"},
                             {503, true, "UNAVAILABLE"}, {520, true, "UPSTREAM_TIMEOUT"}, {502, true, "UNKNOWN"},
                             {405, false, "UNKNOWN"}}) {
    // Before v1.31: only {"message"}.
    const StartAnswer a = classify_start(answer(c.status, R"({"message":"why"})"));
    EXPECT_EQ(a.kind, StartKind::kHandlerError) << c.status;
    EXPECT_EQ(a.retryable, c.retryable) << c.status;
    EXPECT_EQ(a.failure["metadata"]["type"], "nexus.HandlerError");
    EXPECT_EQ(a.failure["details"]["type"], c.type) << c.status;
    EXPECT_EQ(a.failure["message"], "why");
    EXPECT_NE(a.error.find("why"), std::string::npos);
  }
}

TEST(NexusStart, RetryableOverrides) {
  const std::string v131 = R"({"message":"m","metadata":{"type":"nexus.HandlerError"},"details":{"type":"NOT_FOUND","retryableOverride":true}})";
  EXPECT_TRUE(classify_start(answer(404, v131)).retryable);
  EXPECT_TRUE(classify_start(answer(404, R"({"message":"namespace missing"})", {{"nexus-request-retryable", "true"}})).retryable);
  EXPECT_FALSE(classify_start(answer(503, R"({"message":"m"})", {{"nexus-request-retryable", "false"}})).retryable);
  EXPECT_FALSE(classify_start(answer(500, R"({"message":"m","metadata":{"type":"nexus.HandlerError"},"details":{"type":"INTERNAL","retryableOverride":false}})"))
                   .retryable);
  // The Failure's type wins over the status.
  const StartAnswer a = classify_start(answer(500, R"({"message":"m","metadata":{"type":"nexus.HandlerError"},"details":{"type":"BAD_REQUEST"}})"));
  EXPECT_FALSE(a.retryable);
  EXPECT_EQ(a.failure["details"]["type"], "BAD_REQUEST");
}

TEST(NexusStart, UpstreamTimeoutSaysNoWorkerPolls) {
  const StartAnswer a = classify_start(answer(520, R"({"message":"upstream timeout"})"));
  EXPECT_TRUE(a.retryable);
  EXPECT_EQ(a.error.rfind("no worker polls the target's task queue (520 upstream timeout)", 0), 0u) << a.error;
}

TEST(NexusStart, HostileBodiesNeverThrowAndGiveLogSafeText) {
  std::string huge(20u << 20, '{');
  for (const std::string& body : {std::string("\xff\xfe\x00 bad", 7), std::string("{\"message\":\"cut"), huge,
                                  std::string(R"({"message":{"nested":1}})"), std::string(R"({"message":"\u0000"})"),
                                  std::string("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[")}) {
    for (long status : {200L, 201L, 424L, 400L, 500L, 520L, 302L, 204L}) {
      StartAnswer a;
      EXPECT_NO_THROW(a = classify_start(answer(status, body)));
      EXPECT_EQ(a.error, safe_text(a.error, 1000));
      expect_storable(a.failure);
      expect_storable(a.result);
    }
  }
}

TEST(NexusStart, TransportErrorIsRetryable) {
  sync::CallResult r;
  r.transport_error = "Connection refused";
  const StartAnswer a = classify_start(r);
  EXPECT_EQ(a.kind, StartKind::kTransport);
  EXPECT_TRUE(a.retryable);
  EXPECT_NE(a.error.find("Connection refused"), std::string::npos);
}

TEST(NexusStart, CutResultIsNotStoredAsIfWhole) {
  sync::CallResult r = answer(200, "{\"a\":1");
  r.body_truncated = true;
  const StartAnswer a = classify_start(r);
  EXPECT_EQ(a.kind, StartKind::kFailed);
  EXPECT_EQ(a.failure["details"]["type"], "result_too_large");
}

// --- completions ---------------------------------------------------------------------------------

Headers completion_headers(const std::string& state, const std::string& type = "application/json") {
  Headers h{{"nexus-operation-state", state}, {"nexus-operation-token", "tok-9"},
            {"nexus-operation-start-time", "Sun, 29 Nov 2026 08:00:00 GMT"},
            {"nexus-operation-close-time", "2026-11-29T08:00:01.5Z"},
            {"nexus-link", "<temporal:///w>; type=\"wf\""}};
  if (!type.empty()) h.emplace_back("content-type", type);
  return h;
}

TEST(NexusCompletion, Succeeded) {
  const Completion c = parse_completion(completion_headers("succeeded"), R"({"total":3})", 1 << 20);
  ASSERT_EQ(c.error, "");
  EXPECT_EQ(c.state, "succeeded");
  EXPECT_EQ(c.result, (Json{{"total", 3}}));
  EXPECT_EQ(c.token, "tok-9");
  EXPECT_EQ(c.start_time, 1795939200.0);
  EXPECT_EQ(c.close_time, 1795939201.5);
  EXPECT_EQ(c.links, Json::parse(R"([{"url":"temporal:///w","type":"wf"}])"));
  EXPECT_TRUE(parse_completion(completion_headers("succeeded", ""), "", 100).result.is_null());
  EXPECT_EQ(parse_completion(completion_headers("succeeded", "text/plain"), "hi", 100).result,
            (Json{{"contentType", "text/plain"}, {"base64", "aGk="}}));
}

TEST(NexusCompletion, AnUnreadableCloseTimeIsRefusedAnUnreadableStartTimeDropped) {
  Headers bad_close = completion_headers("succeeded");
  for (auto& [name, value] : bad_close) {
    if (name == "nexus-operation-close-time") value = "yesterday";
  }
  EXPECT_NE(parse_completion(bad_close, "{}", 100).error.find("Close-Time"), std::string::npos);
  Headers bad_start = completion_headers("succeeded");
  for (auto& [name, value] : bad_start) {
    if (name == "nexus-operation-start-time") value = "a while ago";
  }
  const Completion c = parse_completion(bad_start, "{}", 100);
  EXPECT_EQ(c.error, "");
  EXPECT_FALSE(c.start_time.has_value());
}

TEST(NexusCompletion, FailedAndCanceledNeedAFailureObject) {
  Completion c = parse_completion(completion_headers("canceled"), R"({"message":"canceled","details":{"canceledFailureInfo":{}}})", 1000);
  ASSERT_EQ(c.error, "");
  EXPECT_EQ(c.state, "canceled");
  EXPECT_EQ(c.failure["message"], "canceled");
  EXPECT_NE(parse_completion(completion_headers("failed"), "", 1000).error, "");
  EXPECT_NE(parse_completion(completion_headers("failed"), "[]", 1000).error, "");
  EXPECT_NE(parse_completion(completion_headers("failed"), R"({"message":1})", 1000).error, "");
}

TEST(NexusCompletion, Refusals) {
  EXPECT_NE(parse_completion({}, "{}", 1000).error.find("no Nexus-Operation-State"), std::string::npos);
  EXPECT_NE(parse_completion(completion_headers("running"), "{}", 1000).error.find("is not succeeded"), std::string::npos);
  const Completion big = parse_completion(completion_headers("succeeded"), std::string(2000, ' '), 1000);
  EXPECT_TRUE(big.too_large);
  EXPECT_NE(big.error, "");
  EXPECT_NE(parse_completion(completion_headers("succeeded"), "{\"a\":\"\xff\"}", 1000).error.find("not valid JSON"), std::string::npos);
  EXPECT_NE(parse_completion(completion_headers("succeeded"), "{\"cut", 1000).error, "");
}

TEST(NexusCompletion, BadStartTimesAndTokensAreLeftOutNotErrors) {
  Headers h{{"Nexus-Operation-State", "succeeded"}, {"nexus-operation-token", "bad\x01token"},
            {"nexus-operation-start-time", "yesterday"}};
  const Completion c = parse_completion(h, "", 100);
  ASSERT_EQ(c.error, "");
  EXPECT_EQ(c.token, "");
  EXPECT_FALSE(c.start_time.has_value());
  EXPECT_FALSE(c.close_time.has_value());
  h.emplace_back("nexus-operation-close-time", "2026-13-01T00:00:00Z");  // month 13
  EXPECT_NE(parse_completion(h, "", 100).error, "");
}

}  // namespace
}  // namespace gateway::nexus
