// The pure side of the Temporal target: reading the claim state, the ownership marker, the spec
// and its comparison, and reading Temporal's answers, hostile ones included.
#include "core/temporal_endpoints.hpp"
#include "core/safe_text.hpp"

#include <gtest/gtest.h>

#include <string>

namespace gateway::temporal {
namespace {

const char* kConnector = "11111111-2222-4333-8444-555555555555";
const char* kTag = "pg-gateway-7312-16384";

ConnectorRow row() {
  ConnectorRow r;
  r.id = kConnector;
  r.exists = r.present = true;
  r.endpoint_name = "proj-b-orders";
  r.namespace_name = "b-ns";
  r.task_queue = "b-queue";
  r.description = "orders of B";
  return r;
}

std::string base64(const std::string& in) {
  static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8 | (unsigned char)in[i + 2];
    out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], t[v & 63]};
  }
  if (i + 1 == in.size()) {
    unsigned v = (unsigned char)in[i] << 16;
    out += {t[v >> 18], t[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    unsigned v = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8;
    out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], '='};
  }
  return out;
}

Json remote_of(const Json& spec, const std::string& id = "e1", const std::string& version = "1") {
  return Json{{"id", id}, {"version", version}, {"spec", spec}, {"createdTime", "2026-01-01T00:00:00Z"},
              {"urlPrefix", "/nexus/endpoints/" + id}};
}

TEST(TemporalState, ReadsTheClaimStateTolerantly) {
  ConnectorRow r = connector_row(Json::parse(R"({"id":"c1","present":true,"endpoint_name":"n-1",
      "namespace":"ns","task_queue":"q","description":null,"endpoint_id":"e1","endpoint_version":7})"));
  EXPECT_EQ(r.id, "c1");
  EXPECT_TRUE(r.present);
  EXPECT_TRUE(r.exists);  // a project_connector state has no "exists": present implies it
  EXPECT_EQ(r.description, "");
  EXPECT_EQ(r.endpoint_version, "7");
  EXPECT_EQ(connector_row(Json::parse(R"({"endpoint_version":"12"})")).endpoint_version, "12");
  // Nulls, wrong types, missing keys, not even an object: empty and false, never a throw.
  for (const char* state : {"null", "[]", "7", R"({"id":5,"present":"yes","exists":null,"endpoint_name":[],
        "namespace":{},"endpoint_id":null,"endpoint_version":-3})",
                            R"({"endpoint_version":"0"})", R"({"endpoint_version":"1e3"})",
                            R"({"endpoint_version":1.5})"}) {
    ConnectorRow odd;
    ASSERT_NO_THROW(odd = connector_row(Json::parse(state))) << state;
    EXPECT_EQ(odd.id, "") << state;
    EXPECT_FALSE(odd.present) << state;
    EXPECT_EQ(odd.endpoint_name, "") << state;
    EXPECT_EQ(odd.endpoint_version, "") << state;
  }
  ConnectorRow test = connector_row(Json::parse(
      R"({"id":"c","exists":true,"present":false,"sync_state":"absent","consent_approved":false})"));
  EXPECT_TRUE(test.exists);
  EXPECT_FALSE(test.present);
  EXPECT_EQ(test.sync_state, "absent");
  EXPECT_EQ(test.consent_approved, false);
  EXPECT_FALSE(test.has_workers.has_value());
}

TEST(TemporalMarker, RoundTripsAndRefusesEverythingElse) {
  const std::string d = endpoint_description(kTag, kConnector, "orders\nof B");
  EXPECT_EQ(d, std::string("pg_gateway owner=") + kTag + " connector=" + kConnector + "\n\norders\nof B");
  EXPECT_EQ(marked_connector(d, kTag), std::string(kConnector));
  EXPECT_EQ(marked_connector(endpoint_description(kTag, kConnector, ""), kTag), std::string(kConnector));
  EXPECT_EQ(marked_connector(std::string("pg_gateway owner=") + kTag + " connector=" + kConnector, kTag),
            std::string(kConnector));
  // Another database's tag, a tag that merely starts like ours, a tag that extends ours.
  EXPECT_FALSE(marked_connector(d, "pg-gateway-7312-1638"));
  EXPECT_FALSE(marked_connector(d, std::string(kTag) + "5"));
  EXPECT_FALSE(marked_connector(endpoint_description("other", kConnector, ""), kTag));
  EXPECT_FALSE(marked_connector(d, ""));
  // Not on the first line, extra text on the line, odd ids, leading space.
  EXPECT_FALSE(marked_connector("hello\n" + d, kTag));
  EXPECT_FALSE(marked_connector(std::string("pg_gateway owner=") + kTag + " connector=" + kConnector + " x", kTag));
  EXPECT_FALSE(marked_connector(std::string("pg_gateway owner=") + kTag + " connector=../x", kTag));
  EXPECT_FALSE(marked_connector(std::string("pg_gateway owner=") + kTag + " connector=", kTag));
  EXPECT_FALSE(marked_connector(" " + d, kTag));
  EXPECT_FALSE(marked_connector("", kTag));
}

TEST(TemporalSpec, HasTheShapeTheApiTakes) {
  Json spec = endpoint_spec(row(), kTag);
  EXPECT_EQ(spec, Json::parse(std::string(R"({"name":"proj-b-orders","description":")") +
                              "pg_gateway owner=" + kTag + " connector=" + kConnector +
                              R"(\n\norders of B","target":{"worker":{"namespace":"b-ns","taskQueue":"b-queue"}}})"));
}

TEST(TemporalSpec, MatchesWhatTemporalReturnsInEitherPayloadForm) {
  Json spec = endpoint_spec(row(), kTag);
  EXPECT_TRUE(spec_matches(remote_of(spec), spec));
  // Full payload form: base64 of the encoding and of the JSON string.
  Json full = spec;
  full["description"] = Json{{"metadata", {{"encoding", base64("json/plain")}}},
                             {"data", base64(Json(spec["description"]).dump())}};
  EXPECT_TRUE(spec_matches(remote_of(full), spec));
  // Without padding, URL-safe alphabet, or as binary/plain raw text: still the same text.
  std::string unpadded = base64(Json(spec["description"]).dump());
  while (!unpadded.empty() && unpadded.back() == '=') unpadded.pop_back();
  full["description"]["data"] = unpadded;
  EXPECT_TRUE(spec_matches(remote_of(full), spec));
  full["description"] = Json{{"metadata", {{"encoding", base64("binary/plain")}}},
                             {"data", base64(spec["description"].get<std::string>())}};
  EXPECT_TRUE(spec_matches(remote_of(full), spec));
  // Another text in full form, or a form we cannot read, differs.
  full["description"] = Json{{"metadata", {{"encoding", base64("json/plain")}}}, {"data", base64("\"x\"")}};
  EXPECT_EQ(spec_difference(remote_of(full), spec), "description");
  full["description"] = Json{{"metadata", {{"encoding", 5}}}, {"data", "!!"}};
  EXPECT_EQ(spec_difference(remote_of(full), spec), "description");
  full["description"] = Json{{"metadata", {{"encoding", base64("json/protobuf")}}}, {"data", base64("x")}};
  EXPECT_EQ(spec_difference(remote_of(full), spec), "description");
}

TEST(TemporalSpec, ComparesOnlyWhatWeOwnAndReadsOmissionsAsEmpty) {
  Json spec = endpoint_spec(row(), kTag);
  Json remote = remote_of(spec);
  remote["lastModifiedTime"] = "2026-02-02T00:00:00Z";
  remote["spec"]["somethingNew"] = 1;
  EXPECT_TRUE(spec_matches(remote, spec));
  Json changed = remote_of(spec);
  changed["spec"]["name"] = "other";
  EXPECT_EQ(spec_difference(changed, spec), "name");
  changed = remote_of(spec);
  changed["spec"]["target"]["worker"]["taskQueue"] = "q2";
  EXPECT_EQ(spec_difference(changed, spec), "target.worker.taskQueue");
  changed = remote_of(spec);
  changed["spec"]["target"]["worker"].erase("namespace");  // proto3 omits an empty string
  EXPECT_EQ(spec_difference(changed, spec), "target.worker.namespace");
  changed = remote_of(spec);
  changed["spec"]["target"] = Json{{"external", {{"url", "http://evil"}}}};
  EXPECT_EQ(spec_difference(changed, spec), "target");
  changed = remote_of(spec);
  changed["spec"].erase("description");
  EXPECT_EQ(spec_difference(changed, spec), "description");
  // An empty spec of ours matches a remote where proto3 omitted everything.
  Json empty{{"name", ""}, {"description", ""}, {"target", {{"worker", {{"namespace", ""}, {"taskQueue", ""}}}}}};
  EXPECT_TRUE(spec_matches(Json{{"id", "e"}}, empty));
  // Garbage never throws.
  for (const char* odd : {"null", "[]", R"({"spec":5})", R"({"spec":{"name":3,"target":"x","description":[1]}})",
                          R"({"spec":{"target":{"worker":7}}})"}) {
    EXPECT_NO_THROW(spec_difference(Json::parse(odd), spec)) << odd;
    EXPECT_FALSE(spec_matches(Json::parse(odd), spec)) << odd;
  }
}

TEST(TemporalNames, FollowTemporalsRule) {
  for (const char* good : {"ab", "a1", "proj-b-orders", "A-b-C9"}) EXPECT_TRUE(valid_endpoint_name(good)) << good;
  for (const char* bad : {"", "a", "1ab", "-ab", "ab-", "a_b", "a b", "ab\n", "é-x", "a.b"}) {
    EXPECT_FALSE(valid_endpoint_name(bad)) << bad;
  }
  EXPECT_TRUE(valid_endpoint_name(std::string(200, 'a')));
  EXPECT_FALSE(valid_endpoint_name(std::string(201, 'a')));
}

TEST(TemporalIds, OnlyPlausibleIdsAndVersions) {
  EXPECT_TRUE(plausible_endpoint_id("0f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"));
  for (const char* bad : {"", "..", "a/b", "a?b", "a%2F", "a b", "a\nb"}) EXPECT_FALSE(plausible_endpoint_id(bad)) << bad;
  EXPECT_FALSE(plausible_endpoint_id(std::string(129, 'a')));
  EXPECT_EQ(version_text(Json("42")), "42");
  EXPECT_EQ(version_text(Json(42)), "42");
  EXPECT_EQ(version_text(Json("9223372036854775807")), "9223372036854775807");
  for (const Json& bad : {Json("9223372036854775808"), Json("0"), Json("007"), Json("-1"), Json(""), Json(0),
                          Json(-4), Json(2.5), Json(), Json::array(), Json("1 "), Json(18446744073709551615ull)}) {
    EXPECT_EQ(version_text(bad), "") << bad.dump();
  }
}

TEST(TemporalAnswers, EndpointAnswersAreReadOrRefused) {
  RemoteEndpoint e;
  EXPECT_EQ(read_endpoint_answer(R"({"endpoint":{"id":"e-1","version":"3","spec":{"name":"n-1"}}})", e), "");
  EXPECT_EQ(e.id, "e-1");
  EXPECT_EQ(e.version, "3");
  EXPECT_EQ(e.name, "n-1");
  EXPECT_FALSE(e.description.has_value());
  EXPECT_EQ(read_endpoint_answer(R"({"endpoint":{"id":7,"version":"3"}})", e), "no id");
  EXPECT_EQ(read_endpoint_answer(R"({"endpoint":{"id":"../../namespaces/x"}})", e), "an implausible id");
  EXPECT_EQ(read_endpoint_answer(R"({"endpoint":"x"})", e), "not an object");
  EXPECT_EQ(read_endpoint_answer(R"({})", e), "no endpoint");
  EXPECT_EQ(read_endpoint_answer("<html>", e), "not JSON");
  EXPECT_EQ(read_endpoint_answer("{\"endpoint\":{\"id\":\"\xff\"}}", e), "not JSON");
  RemoteEndpoint noversion;
  EXPECT_EQ(read_endpoint_answer(R"({"endpoint":{"id":"e-1"}})", noversion), "");
  EXPECT_EQ(noversion.version, "");
}

TEST(TemporalAnswers, ListPagesAreReadDefensively) {
  ListPage page = parse_list_page(R"({"endpoints":[{"id":"a","version":"1","spec":{},"urlPrefix":"x"},
      {"id":5},"junk",null,{"id":"../b"},{"version":"2"}],"nextPageToken":"CAE="})");
  EXPECT_EQ(page.error, "");
  ASSERT_EQ(page.endpoints.size(), 1u);
  EXPECT_EQ(page.endpoints[0], Json::parse(R"({"id":"a","version":"1","spec":{}})"));
  EXPECT_EQ(page.next_page_token, "CAE=");
  EXPECT_EQ(parse_list_page("{}").error, "");  // proto3: an empty list is {}
  EXPECT_TRUE(parse_list_page("{}").endpoints.empty());
  EXPECT_NE(parse_list_page("[]").error, "");
  EXPECT_NE(parse_list_page("nope").error, "");
  EXPECT_NE(parse_list_page(R"({"endpoints":{}})").error, "");
  EXPECT_NE(parse_list_page(R"({"nextPageToken":5})").error, "");
  EXPECT_NE(parse_list_page(R"({"nextPageToken":")" + std::string(5000, 'a') + "\"}").error, "");
  EXPECT_EQ(parse_list_page(R"({"nextPageToken":null})").error, "");
}

TEST(TemporalAnswers, StatusBodiesAreReadDefensively) {
  StatusBody s = parse_status(R"({"code":6,"message":"endpoint already exists","details":[]})");
  EXPECT_EQ(s.code, 6);
  EXPECT_EQ(s.message, "endpoint already exists");
  EXPECT_EQ(parse_status(R"({"code":"6"})").code, -1);
  EXPECT_EQ(parse_status(R"({"code":99})").code, -1);
  EXPECT_EQ(parse_status(R"({"code":-1})").code, -1);
  EXPECT_EQ(parse_status(R"({"code":6.5})").code, -1);
  EXPECT_EQ(parse_status(R"({"code":18446744073709551615})").code, -1);
  EXPECT_EQ(parse_status(R"({"message":{"a":1}})").message, "");
  EXPECT_EQ(parse_status("bad \xff\xfe utf8").message, "bad \xEF\xBF\xBD\xEF\xBF\xBD utf8");
  EXPECT_LE(parse_status(std::string(1 << 20, 'x')).message.size(), 200u);
  EXPECT_LE(parse_status(R"({"message":")" + std::string(100000, 'm') + "\"}").message.size(), 500u);
}

sync::CallResult answer(long status, const std::string& body = "{}") {
  sync::CallResult r;
  r.status = status;
  r.body = body;
  return r;
}

TEST(TemporalAnswers, Classification) {
  using sync::Verdict;
  EXPECT_EQ(classify_temporal(answer(200)), Verdict::kDone);
  for (long s : {0L, 500L, 502L, 503L, 504L, 429L, 408L}) EXPECT_EQ(classify_temporal(answer(s)), Verdict::kRetry) << s;
  EXPECT_EQ(classify_temporal(answer(400, R"({"code":9,"message":"version mismatch"})")), Verdict::kRetry);
  EXPECT_EQ(classify_temporal(answer(400, R"({"code":3,"message":"bad name"})")), Verdict::kDead);
  EXPECT_EQ(classify_temporal(answer(400, "garbage")), Verdict::kDead);
  for (long s : {401L, 403L, 404L, 409L, 405L, 422L}) EXPECT_EQ(classify_temporal(answer(s)), Verdict::kDead) << s;
}

TEST(TemporalAnswers, DescriptionsAreShortAndSafe) {
  EXPECT_EQ(describe_temporal(answer(409, R"({"code":6,"message":"name taken"})")),
            "Temporal answered 409 (code 6 ALREADY_EXISTS): name taken");
  EXPECT_EQ(describe_temporal(answer(502, "")), "Temporal answered 502");
  sync::CallResult none;
  none.transport_error = "Connection refused";
  EXPECT_EQ(describe_temporal(none), "Temporal did not answer: Connection refused");
  EXPECT_NE(describe_temporal(answer(401)).find("gateway.temporal_headers_file"), std::string::npos);
  EXPECT_NE(describe_temporal(answer(403, R"({"code":7})")).find("gateway.temporal_headers_file"), std::string::npos);
  std::string huge = describe_temporal(answer(500, std::string(1 << 20, '\xff')));
  EXPECT_LE(huge.size(), 1000u);
  EXPECT_EQ(safe_text(huge, 2000), huge);  // valid UTF-8 already
}

}  // namespace
}  // namespace gateway::temporal
