// The Temporal target's job, test, listing and reconcile against a small stateful fake of the
// operator HTTP API on a loopback socket (and hostile answers scripted over it). Every run must
// call `done` exactly once, never throw and never hang.
#include "closing_server.hpp"
#include "core/safe_text.hpp"
#include "core/temporal_sync.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace gateway::temporal {
namespace {

using gateway::testing::Received;
using gateway::testing::Reply;
using gateway::testing::ScriptedServer;

const char* kConnector = "11111111-2222-4333-8444-555555555555";
const char* kOther = "99999999-2222-4333-8444-555555555555";
const char* kTag = "pg-gateway-7312-16384";
const std::string kBase = "/cluster/nexus/endpoints";

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

Json status(int code, const std::string& message) { return Json{{"code", code}, {"message", message}, {"details", Json::array()}}; }

std::string percent_decode(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// The operator API as DESIGN.md §3 describes it: unique names, versions checked on update and
// delete, proto3 JSON (an empty list is {}), namespaces. `overrides` answer first, in order,
// each as many times as it says.
struct FakeTemporal {
  struct Override {
    std::string method, path_prefix;
    Reply reply;
    int times = 1;
  };
  std::map<std::string, Json> endpoints;
  std::set<std::string> namespaces{"b-ns"};
  std::vector<Override> overrides;
  int next = 1;

  void put(const std::string& id, const Json& spec, int version = 1) {
    endpoints[id] = Json{{"id", id}, {"version", std::to_string(version)}, {"spec", spec},
                         {"createdTime", "2026-01-01T00:00:00Z"}, {"urlPrefix", "/nexus/endpoints/" + id}};
  }
  static Reply json(long s, const Json& body) { return Reply{s, body.dump(), {}}; }
  const Json* by_name(const std::string& name) const {
    for (const auto& [id, e] : endpoints) {
      if (e["spec"].value("name", "") == name) return &e;
    }
    return nullptr;
  }

  Reply handle(const Received& r) {
    for (Override& o : overrides) {
      if (o.times > 0 && o.method == r.method && r.path.compare(0, o.path_prefix.size(), o.path_prefix) == 0) {
        --o.times;
        return o.reply;
      }
    }
    const std::size_t q = r.path.find('?');
    const std::string path = r.path.substr(0, q);
    std::map<std::string, std::string> query;
    if (q != std::string::npos) {
      std::string rest = r.path.substr(q + 1);
      std::size_t at = 0;
      while (at <= rest.size()) {
        std::size_t amp = rest.find('&', at);
        if (amp == std::string::npos) amp = rest.size();
        std::string pair = rest.substr(at, amp - at);
        std::size_t eq = pair.find('=');
        if (eq != std::string::npos) query[pair.substr(0, eq)] = percent_decode(pair.substr(eq + 1));
        at = amp + 1;
      }
    }
    const Json not_found = status(5, "nexus endpoint not found");
    if (path == kBase && r.method == "POST") {
      Json body = Json::parse(r.body, nullptr, false);
      if (!body.is_object() || !body.contains("spec") || body.size() != 1) return json(400, status(3, "bad request"));
      const std::string name = body["spec"].value("name", "");
      if (by_name(name) != nullptr) return json(409, status(6, "nexus endpoint with name " + name + " already exists"));
      char id[64];
      std::snprintf(id, sizeof id, "0f000000-0000-4000-8000-%012d", next++);
      put(id, body["spec"]);
      return json(200, Json{{"endpoint", endpoints[id]}});
    }
    if (path == kBase && r.method == "GET") {
      Json list = Json::array();
      for (const auto& [id, e] : endpoints) {
        if (!query.count("name") || e["spec"].value("name", "") == query["name"]) list.push_back(e);
      }
      return json(200, list.empty() ? Json::object() : Json{{"endpoints", list}});
    }
    if (path.compare(0, kBase.size() + 1, kBase + "/") == 0) {
      std::string id = percent_decode(path.substr(kBase.size() + 1));
      const bool is_update = id.size() > 7 && id.compare(id.size() - 7, 7, "/update") == 0;
      if (is_update) id.resize(id.size() - 7);
      auto it = endpoints.find(id);
      if (r.method == "GET") return it == endpoints.end() ? json(404, not_found) : json(200, Json{{"endpoint", it->second}});
      if (r.method == "POST" && is_update) {
        if (it == endpoints.end()) return json(404, not_found);
        Json body = Json::parse(r.body, nullptr, false);
        if (!body.is_object() || body.value("version", "") != it->second["version"]) {
          return json(400, status(9, "data version mismatch"));
        }
        const Json* holder = by_name(body["spec"].value("name", ""));
        if (holder != nullptr && (*holder)["id"] != id) return json(409, status(6, "name taken"));
        const int version = std::stoi(it->second["version"].get<std::string>()) + 1;
        it->second["version"] = std::to_string(version);
        it->second["spec"] = body["spec"];
        it->second["lastModifiedTime"] = "2026-02-01T00:00:00Z";
        return json(200, Json{{"endpoint", it->second}});
      }
      if (r.method == "DELETE") {
        if (it == endpoints.end()) return json(404, not_found);
        if (query["version"] != it->second["version"]) return json(400, status(9, "data version mismatch"));
        endpoints.erase(it);
        return json(200, Json::object());
      }
    }
    const std::string ns_prefix = "/api/v1/namespaces/";
    if (r.method == "GET" && path.compare(0, ns_prefix.size(), ns_prefix) == 0) {
      const std::string ns = percent_decode(path.substr(ns_prefix.size()));
      if (!namespaces.count(ns)) return json(404, status(5, "Namespace " + ns + " is not found."));
      return json(200, Json{{"namespaceInfo", {{"name", ns}, {"state", "NAMESPACE_STATE_REGISTERED"}}}});
    }
    return json(404, status(5, "no such path"));
  }
};

// A port nothing listens on.
int closed_port() {
  int port = 0;
  ::close(gateway::testing::listen_on_loopback(port));
  return port;
}

class TemporalJob : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ScriptedServer>([this](const Received& r) { return fake.handle(r); });
  }

  http::ClientOptions options(const std::string& url = "") const {
    http::ClientOptions o;
    o.base_url = url.empty() ? server_->url() : url;
    o.timeout_ms = 10000;
    o.connect_timeout_ms = 2000;
    return o;
  }

  sync::JobOutcome job(const ConnectorRow& r, const std::string& url = "") {
    http::Client client(options(url));
    int calls = 0;
    sync::JobOutcome out;
    run_connector_job(client, r, kTag, [&](sync::JobOutcome&& o) {
      ++calls;
      out = std::move(o);
    }, [&](const sync::CallResult&) { ++observed; });
    client.run_until_idle();
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(out.error, safe_text(out.error, 1000));  // storable as text: valid UTF-8, short
    return out;
  }

  sync::JobOutcome test(const ConnectorRow& r, const std::string& url = "") {
    http::Client client(options(url));
    int calls = 0;
    sync::JobOutcome out;
    run_connector_test(client, r, kTag, [&](sync::JobOutcome&& o) {
      ++calls;
      out = std::move(o);
    }, [&](const sync::CallResult&) { ++observed; });
    client.run_until_idle();
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(out.verdict, sync::Verdict::kDone);  // a test never retries
    return out;
  }

  // "METHOD path" of every request the server got.
  std::vector<std::string> requests() const {
    std::vector<std::string> out;
    for (const Received& r : server_->received()) out.push_back(r.method + " " + r.path);
    return out;
  }
  std::vector<Received> received() const { return server_->received(); }

  FakeTemporal fake;
  int observed = 0;
  std::unique_ptr<ScriptedServer> server_;
};

Json synced(const std::string& id, const std::string& version, const std::string& name = "proj-b-orders") {
  return Json{{"endpoint_id", id}, {"endpoint_version", version}, {"endpoint_name", name}};
}

Json spec_with(const std::function<void(Json&)>& change, const char* connector = kConnector, const char* tag = kTag) {
  ConnectorRow r = row();
  r.id = connector;
  Json spec = endpoint_spec(r, tag);
  change(spec);
  return spec;
}
const auto kSame = [](Json&) {};

TEST_F(TemporalJob, CreatesThenConfirmsByGet) {
  sync::JobOutcome out = job(row());
  ASSERT_EQ(out.verdict, sync::Verdict::kDone) << out.error;
  ASSERT_EQ(fake.endpoints.size(), 1u);
  const std::string id = fake.endpoints.begin()->first;
  EXPECT_EQ(out.synced, synced(id, "1"));
  EXPECT_EQ(requests(), (std::vector<std::string>{"POST " + kBase, "GET " + kBase + "/" + id}));
  EXPECT_EQ(Json::parse(received()[0].body), (Json{{"spec", endpoint_spec(row(), kTag)}}));
  EXPECT_EQ(observed, 2);  // every answer went to the observer
}

TEST_F(TemporalJob, ConfirmNotFoundRightAfterCreateIsARetryThatKeepsTheId) {
  fake.overrides.push_back({"GET", kBase + "/", FakeTemporal::json(404, status(5, "nexus endpoint not found")), 1});
  sync::JobOutcome out = job(row());
  ASSERT_EQ(out.verdict, sync::Verdict::kRetry);
  ASSERT_EQ(fake.endpoints.size(), 1u);
  const std::string id = fake.endpoints.begin()->first;
  EXPECT_EQ(out.synced, synced(id, "1"));
  EXPECT_EQ(out.status, 404);
  // The next attempt starts from the recorded id: no second endpoint.
  ConnectorRow again = row();
  again.endpoint_id = out.synced["endpoint_id"];
  again.endpoint_version = out.synced["endpoint_version"];
  out = job(again);
  EXPECT_EQ(out.verdict, sync::Verdict::kDone);
  EXPECT_EQ(out.synced, synced(id, "1"));
  EXPECT_EQ(fake.endpoints.size(), 1u);
}

TEST_F(TemporalJob, NameTakenByOurOwnEndpointIsAdoptedAndUpdated) {
  // A create whose answer was lost: ours, for this connector, with an older target.
  fake.put("e-ours", spec_with([](Json& s) { s["target"]["worker"]["taskQueue"] = "old-queue"; }), 4);
  sync::JobOutcome out = job(row());
  ASSERT_EQ(out.verdict, sync::Verdict::kDone) << out.error;
  EXPECT_EQ(out.synced, synced("e-ours", "5"));
  EXPECT_EQ(requests(), (std::vector<std::string>{"POST " + kBase, "GET " + kBase + "?name=proj-b-orders",
                                                  "GET " + kBase + "/e-ours", "POST " + kBase + "/e-ours/update"}));
  EXPECT_EQ(Json::parse(received()[3].body)["version"], "4");
  EXPECT_EQ(fake.endpoints["e-ours"]["spec"], endpoint_spec(row(), kTag));
}

TEST_F(TemporalJob, NameHeldByAnEndpointNotOursHereIsNeverAdopted) {
  const std::vector<Json> foreign = {
      spec_with([](Json& s) { s["description"] = "someone else's endpoint"; }),
      spec_with(kSame, kOther),                      // ours, but another connector's
      spec_with(kSame, kConnector, "pg-gateway-1-2"),  // another database's
      spec_with([](Json& s) { s.erase("description"); }),
  };
  for (const Json& spec : foreign) {
    fake.endpoints.clear();
    fake.put("e-foreign", spec, 3);
    const Json before = fake.endpoints["e-foreign"];
    const std::size_t seen = requests().size();
    sync::JobOutcome out = job(row());
    EXPECT_EQ(out.verdict, sync::Verdict::kDead) << spec.dump();
    EXPECT_NE(out.error.find("the Nexus endpoint name \"proj-b-orders\" is held by an endpoint pg_gateway does not "
                             "own here; choose another nexus_endpoint_name"),
              std::string::npos)
        << out.error;
    EXPECT_TRUE(out.synced.is_null());  // the foreign id is never recorded as ours
    EXPECT_EQ(fake.endpoints["e-foreign"], before);
    std::vector<std::string> sent = requests();
    EXPECT_EQ(sent.size() - seen, 2u);  // the create and the lookup, nothing else
    for (std::size_t i = seen; i < sent.size(); ++i) {
      EXPECT_EQ(sent[i].find("DELETE"), std::string::npos);
      EXPECT_EQ(sent[i].find("/update"), std::string::npos);
    }
  }
}

// A create answered 200 with an endpoint that is not ours for this connector (another
// connector's, or a hand-made one): the confirming read sees the marker is wrong. The job is
// dead, and the id is never handed back as this connector's (the engine records `synced` on
// dead too, so the other connector's endpoint would become this one's record).
TEST_F(TemporalJob, ACreateAnsweredWithAnEndpointNotOursIsNeverRecorded) {
  for (const Json& spec : {spec_with(kSame, kOther), spec_with([](Json& s) { s["description"] = "by hand"; })}) {
    fake.endpoints.clear();
    fake.put("e-other", spec, 4);
    fake.overrides = {{"POST", kBase, FakeTemporal::json(200, Json{{"endpoint", fake.endpoints["e-other"]}})}};
    sync::JobOutcome out = job(row());
    EXPECT_EQ(out.verdict, sync::Verdict::kDead) << spec.dump();
    EXPECT_TRUE(out.synced.is_null()) << out.synced.dump();
    EXPECT_EQ(fake.endpoints.size(), 1u);
  }
}

TEST_F(TemporalJob, NameTakenButNotListedYetIsARetry) {
  fake.overrides.push_back({"POST", kBase, FakeTemporal::json(409, status(6, "already exists")), 1});
  sync::JobOutcome out = job(row());
  EXPECT_EQ(out.verdict, sync::Verdict::kRetry);
  EXPECT_NE(out.error.find("eventually consistent"), std::string::npos) << out.error;
}

TEST_F(TemporalJob, UpdatesWithTheVersionJustRead) {
  fake.put("e1", spec_with([](Json& s) { s["description"] = endpoint_description(kTag, kConnector, "old text"); }), 7);
  ConnectorRow r = row();
  r.endpoint_id = "e1";
  r.endpoint_version = "3";  // our record is behind: the GET's version is the one sent
  sync::JobOutcome out = job(r);
  ASSERT_EQ(out.verdict, sync::Verdict::kDone) << out.error;
  EXPECT_EQ(out.synced, synced("e1", "8"));
  EXPECT_EQ(requests(), (std::vector<std::string>{"GET " + kBase + "/e1", "POST " + kBase + "/e1/update"}));
  EXPECT_EQ(Json::parse(received()[1].body), (Json{{"version", "7"}, {"spec", endpoint_spec(r, kTag)}}));
}

// The name recorded comes from Temporal's answer: a hostile update answer whose name holds a NUL
// or bad UTF-8 would make the outcome unstorable (jsonb refuses \u0000), and the job a dead
// letter "could not be recorded". Only a valid endpoint name is taken from an answer.
TEST_F(TemporalJob, ANameFromAnAnswerIsRecordedOnlyWhenValid) {
  for (const std::string& name : {std::string("proj\0b", 6), std::string("a'b c"), std::string(300, 'a')}) {
    fake.endpoints.clear();
    fake.put("e1", spec_with([](Json& s) { s["description"] = endpoint_description(kTag, kConnector, "old"); }), 7);
    Json hostile = fake.endpoints["e1"];
    hostile["version"] = "8";
    hostile["spec"]["name"] = name;
    fake.overrides = {{"POST", kBase + "/e1/update", Reply{200, Json{{"endpoint", hostile}}.dump(-1, ' ', false, Json::error_handler_t::ignore), {}}}};
    ConnectorRow r = row();
    r.endpoint_id = "e1";
    r.endpoint_version = "7";
    sync::JobOutcome out = job(r);
    ASSERT_EQ(out.verdict, sync::Verdict::kDone) << out.error;
    EXPECT_EQ(out.synced, synced("e1", "8")) << out.synced.dump(-1, ' ', true, Json::error_handler_t::replace);
  }
}

TEST_F(TemporalJob, NothingChangedSendsOnlyTheRead) {
  fake.put("e1", spec_with(kSame), 2);
  ConnectorRow r = row();
  r.endpoint_id = "e1";
  sync::JobOutcome out = job(r);
  EXPECT_EQ(out.verdict, sync::Verdict::kDone);
  EXPECT_EQ(out.synced, synced("e1", "2"));
  EXPECT_EQ(requests(), (std::vector<std::string>{"GET " + kBase + "/e1"}));
}

TEST_F(TemporalJob, AVersionConflictReReadsAndUpdatesAgain) {
  fake.put("e1", spec_with([](Json& s) { s["name"] = "old-name"; }), 1);
  fake.overrides.push_back({"POST", kBase + "/e1/update", FakeTemporal::json(400, status(9, "data version mismatch")), 1});
  ConnectorRow r = row();
  r.endpoint_id = "e1";
  sync::JobOutcome out = job(r);
  ASSERT_EQ(out.verdict, sync::Verdict::kDone) << out.error;
  EXPECT_EQ(out.synced, synced("e1", "2"));
  EXPECT_EQ(requests(), (std::vector<std::string>{"GET " + kBase + "/e1", "POST " + kBase + "/e1/update",
                                                  "GET " + kBase + "/e1", "POST " + kBase + "/e1/update"}));
}

TEST_F(TemporalJob, AConflictThatPersistsIsARetryAfterThreeReReads) {
  fake.put("e1", spec_with([](Json& s) { s["name"] = "old-name"; }), 1);
  fake.overrides.push_back({"POST", kBase + "/e1/update", FakeTemporal::json(400, status(9, "data version mismatch")), 100});
  ConnectorRow r = row();
  r.endpoint_id = "e1";
  sync::JobOutcome out = job(r);
  EXPECT_EQ(out.verdict, sync::Verdict::kRetry);
  EXPECT_EQ(out.status, 400);
  EXPECT_EQ(out.synced["endpoint_id"], "e1");
  EXPECT_EQ(requests().size(), 8u);  // 4 reads and 4 updates
}

TEST_F(TemporalJob, AVanishedEndpointIsCreatedAgainNeverDeletedToUpdate) {
  ConnectorRow r = row();
  r.endpoint_id = "gone-1";
  r.endpoint_version = "4";
  sync::JobOutcome out = job(r);
  ASSERT_EQ(out.verdict, sync::Verdict::kDone) << out.error;
  ASSERT_EQ(fake.endpoints.size(), 1u);
  const std::string id = fake.endpoints.begin()->first;
  EXPECT_NE(id, "gone-1");
  EXPECT_EQ(out.synced, synced(id, "1"));
  EXPECT_EQ(requests(), (std::vector<std::string>{"GET " + kBase + "/gone-1", "POST " + kBase, "GET " + kBase + "/" + id}));
}

TEST_F(TemporalJob, ARecordedEndpointWithoutOurMarkerIsNeitherUpdatedNorDeleted) {
  fake.put("e1", spec_with([](Json& s) { s["description"] = "edited by hand"; }), 2);
  const Json before = fake.endpoints["e1"];
  ConnectorRow r = row();
  r.endpoint_id = "e1";
  r.endpoint_version = "2";  // a recorded endpoint always has its version (NOT NULL)
  sync::JobOutcome out = job(r);
  EXPECT_EQ(out.verdict, sync::Verdict::kDead);
  EXPECT_NE(out.error.find("ownership marker"), std::string::npos) << out.error;
  r.present = false;
  out = job(r);
  EXPECT_EQ(out.verdict, sync::Verdict::kDead);
  EXPECT_EQ(out.synced["endpoint_id"], "e1");  // the record stays
  EXPECT_EQ(fake.endpoints["e1"], before);
  EXPECT_EQ(requests(), (std::vector<std::string>{"GET " + kBase + "/e1", "GET " + kBase + "/e1"}));
}

TEST_F(TemporalJob, DeletesWithTheVersionOfAFreshRead) {
  fake.put("e1", spec_with(kSame), 5);
  ConnectorRow r = row();
  r.present = false;
  r.endpoint_id = "e1";
  r.endpoint_version = "2";
  sync::JobOutcome out = job(r);
  ASSERT_EQ(out.verdict, sync::Verdict::kDone) << out.error;
  EXPECT_TRUE(out.synced.is_null());
  EXPECT_TRUE(fake.endpoints.empty());
  EXPECT_EQ(requests(), (std::vector<std::string>{"GET " + kBase + "/e1", "DELETE " + kBase + "/e1?version=5"}));
}

TEST_F(TemporalJob, DeletingWhatIsGoneIsDone) {
  ConnectorRow r = row();
  r.present = false;
  r.endpoint_id = "gone";
  sync::JobOutcome out = job(r);
  EXPECT_EQ(out.verdict, sync::Verdict::kDone);
  EXPECT_TRUE(out.synced.is_null());
  // Gone between the read and the delete.
  fake.put("e1", spec_with(kSame), 1);
  fake.overrides.push_back({"DELETE", kBase + "/e1", FakeTemporal::json(404, status(5, "not found")), 1});
  r.endpoint_id = "e1";
  out = job(r);
  EXPECT_EQ(out.verdict, sync::Verdict::kDone);
  EXPECT_TRUE(out.synced.is_null());
}

TEST_F(TemporalJob, ADeleteConflictReReads) {
  fake.put("e1", spec_with(kSame), 5);
  fake.overrides.push_back({"DELETE", kBase + "/e1", FakeTemporal::json(400, status(9, "data version mismatch")), 1});
  ConnectorRow r = row();
  r.present = false;
  r.endpoint_id = "e1";
  sync::JobOutcome out = job(r);
  EXPECT_EQ(out.verdict, sync::Verdict::kDone) << out.error;
  EXPECT_TRUE(fake.endpoints.empty());
  EXPECT_EQ(requests().size(), 4u);
}

TEST_F(TemporalJob, NothingRecordedAndNotPresentCallsNothing) {
  ConnectorRow r = row();
  r.present = false;
  sync::JobOutcome out = job(r);
  EXPECT_EQ(out.verdict, sync::Verdict::kDone);
  EXPECT_TRUE(out.synced.is_null());
  EXPECT_TRUE(requests().empty());
}

TEST_F(TemporalJob, RetryClasses) {
  fake.overrides.push_back({"POST", kBase, FakeTemporal::json(503, status(14, "unavailable")), 1});
  sync::JobOutcome out = job(row());
  EXPECT_EQ(out.verdict, sync::Verdict::kRetry);
  EXPECT_EQ(out.status, 503);
  EXPECT_NE(out.error.find("Temporal answered 503 (code 14 UNAVAILABLE): unavailable"), std::string::npos) << out.error;

  fake.overrides.push_back({"POST", kBase, Reply{429, status(8, "slow down").dump(), {"Retry-After: 7"}}, 1});
  out = job(row());
  EXPECT_EQ(out.verdict, sync::Verdict::kRetry);
  EXPECT_EQ(out.status, 429);
  EXPECT_EQ(out.retry_after_s, 7);

  out = job(row(), "http://127.0.0.1:" + std::to_string(closed_port()));
  EXPECT_EQ(out.verdict, sync::Verdict::kRetry);
  EXPECT_EQ(out.status, 0);
  EXPECT_NE(out.error.find("Temporal did not answer"), std::string::npos) << out.error;
}

TEST_F(TemporalJob, DeadClasses) {
  fake.overrides.push_back({"POST", kBase, FakeTemporal::json(400, status(3, "unknown field \"x\"")), 1});
  sync::JobOutcome out = job(row());
  EXPECT_EQ(out.verdict, sync::Verdict::kDead);
  EXPECT_NE(out.error.find("(code 3 INVALID_ARGUMENT): unknown field"), std::string::npos) << out.error;

  fake.overrides.push_back({"POST", kBase, FakeTemporal::json(401, status(16, "unauthenticated")), 1});
  out = job(row());
  EXPECT_EQ(out.verdict, sync::Verdict::kDead);
  EXPECT_NE(out.error.find("gateway.temporal_headers_file"), std::string::npos) << out.error;

  // A name Temporal would refuse is refused before any call.
  const std::size_t seen = requests().size();
  ConnectorRow r = row();
  r.endpoint_name = "bad_name";
  out = job(r);
  EXPECT_EQ(out.verdict, sync::Verdict::kDead);
  EXPECT_EQ(requests().size(), seen);
}

TEST_F(TemporalJob, HostileAnswersNeverThrowNorHang) {
  const std::string huge(17 << 20, 'x');  // beyond the client's 16 MiB cut
  const std::vector<std::pair<Reply, sync::Verdict>> create_answers = {
      {{200, "<html>not json</html>", {}}, sync::Verdict::kDead},
      {{200, "{\"endpoint\":{\"id\":\"\xff\xfe\"}}", {}}, sync::Verdict::kDead},
      {{200, R"({"endpoint":{"id":5,"version":"1"}})", {}}, sync::Verdict::kDead},
      {{200, R"({"endpoint":{"id":"../../api/v1/namespaces/x","version":"1"}})", {}}, sync::Verdict::kDead},
      {{200, R"({"endpoint":[1,2,3]})", {}}, sync::Verdict::kDead},
      {{200, huge, {}}, sync::Verdict::kDead},
      {{500, huge, {}}, sync::Verdict::kRetry},
      {{500, "\xff\xfe\x00\xc0 bad utf-8", {}}, sync::Verdict::kRetry},
      {{409, R"({"code":"6","message":7})", {}}, sync::Verdict::kDead},
      {{400, R"({"code":9e99,"message":null})", {}}, sync::Verdict::kDead},
      {{404, "[]", {}}, sync::Verdict::kDead},
  };
  for (const auto& [reply, verdict] : create_answers) {
    fake.overrides.push_back({"POST", kBase, reply, 1});
    sync::JobOutcome out;
    EXPECT_NO_THROW(out = job(row())) << reply.body.substr(0, 60);
    EXPECT_EQ(out.verdict, verdict) << reply.status << " " << reply.body.substr(0, 60) << ": " << out.error;
    EXPECT_TRUE(out.synced.is_null());
  }
  // A name lookup answering garbage, and one listing the name under an odd id.
  fake.overrides.push_back({"POST", kBase, FakeTemporal::json(409, status(6, "taken")), 2});
  fake.overrides.push_back({"GET", kBase + "?name=", Reply{200, R"({"endpoints":7})", {}}, 1});
  EXPECT_EQ(job(row()).verdict, sync::Verdict::kDead);
  fake.overrides.push_back({"GET", kBase + "?name=",
                            FakeTemporal::json(200, Json{{"endpoints", {{{"id", 5}, {"spec", endpoint_spec(row(), kTag)}}}}}), 1});
  EXPECT_EQ(job(row()).verdict, sync::Verdict::kRetry);  // nothing usable holds it: not listed yet
  // The confirming read: version missing, or another endpoint than asked for. The id is kept.
  fake.overrides.push_back({"GET", kBase + "/", FakeTemporal::json(200, Json{{"endpoint", {{"id", "0f000000-0000-4000-8000-000000000001"}}}}), 1});
  sync::JobOutcome out = job(row());
  EXPECT_EQ(out.verdict, sync::Verdict::kDead);
  EXPECT_EQ(out.synced["endpoint_id"], "0f000000-0000-4000-8000-000000000001");
  fake.endpoints.clear();
  fake.overrides.push_back({"GET", kBase + "/", FakeTemporal::json(200, Json{{"endpoint", {{"id", "zzz"}, {"version", "1"}}}}), 1});
  out = job(row());
  EXPECT_EQ(out.verdict, sync::Verdict::kDead);
  EXPECT_NE(out.error.find("another endpoint"), std::string::npos) << out.error;
}

TEST_F(TemporalJob, AnEndlesslyVanishingEndpointEndsAsARetry) {
  // Every read says gone, every create says taken by our own endpoint: bounded by the call budget.
  fake.put("e-ours", spec_with(kSame), 1);
  fake.overrides.push_back({"GET", kBase + "/", FakeTemporal::json(404, status(5, "not found")), 1000});
  ConnectorRow r = row();
  r.endpoint_id = "e-ours";
  sync::JobOutcome out = job(r);
  EXPECT_EQ(out.verdict, sync::Verdict::kRetry);
  EXPECT_LE(requests().size(), 16u);
}

TEST_F(TemporalJob, AnUpdateAnswerWithoutAVersionIsReadAgain) {
  fake.put("e1", spec_with([](Json& s) { s["name"] = "old-name"; }), 1);
  // The first update "succeeds" without saying to what version (and without applying it).
  fake.overrides.push_back({"POST", kBase + "/e1/update", FakeTemporal::json(200, Json{{"endpoint", {{"id", "e1"}}}}), 1});
  ConnectorRow r = row();
  r.endpoint_id = "e1";
  sync::JobOutcome out = job(r);
  ASSERT_EQ(out.verdict, sync::Verdict::kDone) << out.error;
  EXPECT_EQ(out.synced, synced("e1", "2"));
  EXPECT_EQ(requests(), (std::vector<std::string>{"GET " + kBase + "/e1", "POST " + kBase + "/e1/update",
                                                  "GET " + kBase + "/e1", "POST " + kBase + "/e1/update"}));
}

TEST_F(TemporalJob, AnObserverThatThrowsEndsTheJobOnceAsARetry) {
  http::Client client(options());
  int calls = 0;
  sync::JobOutcome out;
  run_connector_job(client, row(), kTag, [&](sync::JobOutcome&& o) {
    ++calls;
    out = std::move(o);
  }, [](const sync::CallResult&) { throw std::runtime_error("observer broke"); });
  EXPECT_NO_THROW(client.run_until_idle());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(out.verdict, sync::Verdict::kRetry);
  EXPECT_NE(out.error.find("observer broke"), std::string::npos) << out.error;
}

TEST_F(TemporalJob, ConnectorTestPasses) {
  fake.put("e1", spec_with(kSame), 1);
  ConnectorRow r = row();
  r.endpoint_id = "e1";
  sync::JobOutcome out = test(r);
  EXPECT_EQ(out.synced["test_status"], "ok") << out.synced.dump();
  EXPECT_EQ(requests(), (std::vector<std::string>{"GET " + kBase + "/e1", "GET /api/v1/namespaces/b-ns"}));
  EXPECT_EQ(observed, 2);
}

TEST_F(TemporalJob, ConnectorTestFailures) {
  ConnectorRow r = row();
  r.endpoint_id = "e1";
  EXPECT_EQ(test(r).synced, (Json{{"test_status", "failed"}, {"test_detail", "endpoint not found in Temporal"}}));
  fake.put("e1", spec_with([](Json& s) { s["target"]["worker"]["taskQueue"] = "other"; }), 1);
  EXPECT_EQ(test(r).synced["test_detail"], "endpoint differs from the connector: target.worker.taskQueue");
  fake.put("e1", spec_with(kSame), 1);
  fake.namespaces.clear();
  EXPECT_EQ(test(r).synced["test_detail"], "namespace \"b-ns\" does not exist");
  sync::JobOutcome out = test(r, "http://127.0.0.1:" + std::to_string(closed_port()));
  EXPECT_EQ(out.synced["test_status"], "failed");
  EXPECT_EQ(out.synced["test_detail"].get<std::string>().rfind("Temporal did not answer: ", 0), 0u) << out.synced.dump();
  fake.overrides.push_back({"GET", kBase + "/e1", Reply{200, "\xff garbage", {}}, 1});
  EXPECT_EQ(test(r).synced["test_status"], "failed");
  // The namespace goes into the path escaped.
  r.namespace_name = "a/b?c";
  fake.put("e1", endpoint_spec(r, kTag), 1);
  EXPECT_EQ(test(r).synced["test_detail"], "namespace \"a/b?c\" does not exist");
  EXPECT_EQ(requests().back(), "GET /api/v1/namespaces/a%2Fb%3Fc");
}

TEST_F(TemporalJob, ConnectorTestSaysWhyAConnectorIsNotActive) {
  ConnectorRow r = row();
  r.exists = r.present = false;
  EXPECT_EQ(test(r).synced["test_detail"], "connector deleted");
  r.exists = true;
  r.consent_approved = false;
  EXPECT_EQ(test(r).synced["test_detail"], "consent not approved");
  r.consent_approved = true;
  r.has_workers = false;
  EXPECT_EQ(test(r).synced["test_detail"], "target project has no Temporal workers row");
  r.consent_approved.reset();
  r.has_workers.reset();
  r.namespace_name.clear();
  EXPECT_NE(test(r).synced["test_detail"].get<std::string>().find("not active"), std::string::npos);
  r = row();
  r.sync_state = "pending";
  EXPECT_EQ(test(r).synced["test_detail"], "the endpoint is not created yet (sync_state pending)");
  EXPECT_TRUE(requests().empty());
}

Json listed_for_test(const std::string& id, const Json& spec) {
  return Json{{"id", id}, {"version", "1"}, {"spec", spec}};
}

// Listing: a scripted server answers pages by token.
std::pair<std::vector<Json>, std::string> list(ScriptedServer& server) {
  http::ClientOptions o;
  o.base_url = server.url();
  o.timeout_ms = 10000;
  http::Client client(o);
  std::pair<std::vector<Json>, std::string> result{{}, "(not finished)"};
  int calls = 0;
  list_endpoints(client, [&](std::vector<Json>&& endpoints, std::string error) {
    ++calls;
    result = {std::move(endpoints), std::move(error)};
  });
  client.run_until_idle();
  EXPECT_EQ(calls, 1);
  return result;
}

TEST(TemporalListing, FollowsTokensToAnEmptyLastPage) {
  ScriptedServer server([](const Received& r) {
    if (r.path == kBase + "?pageSize=100") {
      return Reply{200, R"({"endpoints":[{"id":"a","version":"1"},{"id":"b","version":"2"}],"nextPageToken":"CAE+/="})", {}};
    }
    if (r.path == kBase + "?pageSize=100&nextPageToken=CAE%2B%2F%3D") {
      return Reply{200, R"({"endpoints":[{"id":"c","version":"1"},{"id":7},"x"],"nextPageToken":"t2"})", {}};
    }
    if (r.path == kBase + "?pageSize=100&nextPageToken=t2") return Reply{200, "{}", {}};
    return Reply{400, R"({"code":3,"message":"unexpected"})", {}};
  });
  auto [endpoints, error] = list(server);
  EXPECT_EQ(error, "");
  ASSERT_EQ(endpoints.size(), 3u);
  EXPECT_EQ(endpoints[2]["id"], "c");
  EXPECT_EQ(server.requests(), 3);
}

// Temporal lets anyone with access to the cluster make endpoints with descriptions up to 20,000
// bytes. A listing asks for pages Temporal may fill: a page of such endpoints must still fit in
// what the client keeps of a body (16 MiB), or every reconcile fails on a cut page for good.
TEST(TemporalListing, PagesOfEndpointsWithLargeDescriptionsFitTheClient) {
  const std::string big(19990, 'x');
  constexpr int kTotal = 1000;
  ScriptedServer server([&](const Received& r) {
    std::size_t size_at = r.path.find("pageSize=");
    int page_size = size_at == std::string::npos ? 100 : std::atoi(r.path.c_str() + size_at + 9);
    if (page_size <= 0 || page_size > 1000) return Reply{400, R"({"code":3,"message":"page size"})", {}};
    std::size_t token_at = r.path.find("nextPageToken=p");
    int start = token_at == std::string::npos ? 0 : std::atoi(r.path.c_str() + token_at + 15);
    Json page = Json::object();
    Json endpoints = Json::array();
    for (int i = start; i < std::min(kTotal, start + page_size); ++i) {
      endpoints.push_back(Json{{"id", "e" + std::to_string(i)}, {"version", "1"},
                               {"spec", {{"name", "n" + std::to_string(i)}, {"description", big}}}});
    }
    if (!endpoints.empty()) page["endpoints"] = endpoints;
    if (static_cast<int>(endpoints.size()) == page_size) page["nextPageToken"] = "p" + std::to_string(start + page_size);
    return Reply{200, page.dump(), {}};
  });
  auto [endpoints, error] = list(server);
  EXPECT_EQ(error, "");
  EXPECT_EQ(endpoints.size(), static_cast<std::size_t>(kTotal));
}

// A shared cluster may hold many endpoints that are not ours (100,000 with 200-byte descriptions
// took 164 MiB kept whole). The reconcile compares only ours: a listing for an owner tag keeps
// only the endpoints that carry its marker.
TEST(TemporalListing, AListingForAnOwnerKeepsOnlyItsEndpoints) {
  ConnectorRow ours = row();
  const Json our_spec = endpoint_spec(ours, kTag);
  const Json foreign_spec = spec_with([](Json& s) { s["description"] = std::string(20000, 'f'); });
  const Json other_db = spec_with(kSame, kConnector, "pg-gateway-1-2");
  ScriptedServer server([&](const Received&) {
    Json page{{"endpoints", {listed_for_test("e-ours", our_spec), listed_for_test("e-foreign", foreign_spec),
                             listed_for_test("e-other-db", other_db)}}};
    return Reply{200, page.dump(), {}};
  });
  http::ClientOptions o;
  o.base_url = server.url();
  o.timeout_ms = 10000;
  http::Client client(o);
  std::vector<Json> kept;
  std::string error = "(not finished)";
  list_endpoints(client, kTag, [&](std::vector<Json>&& endpoints, std::string e) {
    kept = std::move(endpoints);
    error = std::move(e);
  });
  client.run_until_idle();
  EXPECT_EQ(error, "");
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0]["id"], "e-ours");
  EXPECT_EQ(kept[0]["spec"], our_spec);
}

TEST(TemporalListing, HostilePagesEndTheListingWithAnError) {
  const std::vector<std::string> bodies = {
      R"({"endpoints":[],"nextPageToken":"same"})",                 // comes round again
      R"({"endpoints":[{"id":"a"}],"nextPageToken":5})",            // not a string
      R"({"endpoints":{"id":"a"}})",                                // not a list
      R"({"nextPageToken":")" + std::string(10000, 'A') + "\"}",   // absurd
      "<html>", "\xff\xfe", "[]",
  };
  for (const std::string& body : bodies) {
    ScriptedServer server([&](const Received&) { return Reply{200, body, {}}; });
    auto [endpoints, error] = list(server);
    EXPECT_NE(error, "") << body.substr(0, 40);
    EXPECT_TRUE(endpoints.empty());
    EXPECT_LE(server.requests(), 3) << body.substr(0, 40);
  }
  // An endless stream of new tokens stops at the page limit rather than running forever.
  ScriptedServer endless([n = 0](const Received&) mutable {
    return Reply{200, R"({"nextPageToken":"t)" + std::to_string(++n) + "\"}", {}};
  });
  auto [endpoints, error] = list(endless);
  EXPECT_NE(error.find("do not end"), std::string::npos) << error;
  EXPECT_LE(endless.requests(), 2000);
  ScriptedServer failing([](const Received&) { return Reply{503, R"({"code":14,"message":"down"})", {}}; });
  EXPECT_NE(list(failing).second.find("503"), std::string::npos);
}

Json listed(const std::string& id, const Json& spec, const std::string& version = "1") {
  return Json{{"id", id}, {"version", version}, {"spec", spec}};
}

ConnectorRow known(const std::string& connector, const std::string& endpoint_id) {
  ConnectorRow k;
  k.id = connector;
  k.endpoint_id = endpoint_id;
  k.endpoint_version = "1";
  return k;
}

TEST(TemporalReconcile, NothingToDoWhenTemporalMatches) {
  ConnectorRow d = row();
  d.endpoint_id = "e1";
  ReconcilePlan plan = plan_reconcile({d}, {known(kConnector, "e1")}, {listed("e1", spec_with(kSame))}, kTag);
  EXPECT_TRUE(plan.repair.empty());
  EXPECT_TRUE(plan.orphans.empty());
}

TEST(TemporalReconcile, MissingChangedOrMisrecordedEndpointsAreRepaired) {
  ConnectorRow d = row();
  d.endpoint_id = "e1";
  // Missing (or the listing lags): the job's read decides.
  EXPECT_EQ(plan_reconcile({d}, {known(kConnector, "e1")}, {}, kTag).repair, std::set<std::string>{kConnector});
  // Changed.
  Json changed = spec_with([](Json& s) { s["target"]["worker"]["namespace"] = "elsewhere"; });
  EXPECT_EQ(plan_reconcile({d}, {}, {listed("e1", changed)}, kTag).repair, std::set<std::string>{kConnector});
  // Ours for this connector under another id than recorded.
  EXPECT_EQ(plan_reconcile({d}, {}, {listed("e2", spec_with(kSame))}, kTag).repair, std::set<std::string>{kConnector});
  EXPECT_EQ(plan_reconcile({d}, {}, {listed("e1", spec_with(kSame)), listed("e2", spec_with(kSame))}, kTag).repair,
            std::set<std::string>{kConnector});
  // Never recorded (a create whose outcome was lost): the job adopts it.
  EXPECT_EQ(plan_reconcile({row()}, {}, {listed("e1", spec_with(kSame))}, kTag).repair, std::set<std::string>{kConnector});
  // The record is found through `known` when the desired row lacks it.
  EXPECT_TRUE(plan_reconcile({row()}, {known(kConnector, "e1")}, {listed("e1", spec_with(kSame))}, kTag).repair.empty());
}

TEST(TemporalReconcile, UnwantedEndpointsGoToTheirJobOrAreOrphans) {
  const std::vector<Json> ours = {listed("e1", spec_with(kSame), "3"), listed("e9", spec_with(kSame, kOther), "4")};
  // kConnector is known (recorded) but no longer desired: its job deletes it. kOther is no one's.
  ReconcilePlan plan = plan_reconcile({}, {known(kConnector, "e1")}, ours, kTag);
  EXPECT_EQ(plan.repair, std::set<std::string>{kConnector});
  ASSERT_EQ(plan.orphans.size(), 1u);
  EXPECT_EQ(plan.orphans[0], (std::pair<std::string, std::string>{"e9", "4"}));
  // A recorded endpoint the listing lacks: the job's read finds it gone and clears the record.
  EXPECT_EQ(plan_reconcile({}, {known(kOther, "e7")}, {}, kTag).repair, std::set<std::string>{kOther});
}

TEST(TemporalReconcile, EndpointsWithoutOurMarkerAreNeverTouched) {
  const std::vector<Json> foreign = {
      listed("f1", spec_with([](Json& s) { s["description"] = "not ours"; })),
      listed("f2", spec_with(kSame, kOther, "pg-gateway-1-2")),
      listed("f3", spec_with([](Json& s) { s.erase("description"); })),
      Json{{"id", 5}}, Json("junk"), Json(),
  };
  ReconcilePlan plan;
  ASSERT_NO_THROW(plan = plan_reconcile({}, {}, foreign, kTag));
  EXPECT_TRUE(plan.repair.empty());
  EXPECT_TRUE(plan.orphans.empty());
  // A desired connector is repaired when only someone else's endpoint carries its name.
  ConnectorRow d = row();
  d.endpoint_id = "f1";
  EXPECT_EQ(plan_reconcile({d}, {}, foreign, kTag).repair, std::set<std::string>{kConnector});
}

TEST_F(TemporalJob, OrphansAreDeletedWithTheirListedVersion) {
  fake.put("o1", spec_with(kSame, kOther), 2);
  fake.put("o2", spec_with(kSame, kOther), 5);  // changed since listed at 4: left alone
  http::Client client(options());
  sync::JobOutcome out;
  int calls = 0;
  delete_orphans(client, {{"o1", "2"}, {"o2", "4"}, {"gone", "1"}, {"../x", "1"}}, [&](sync::JobOutcome&& o) {
    ++calls;
    out = std::move(o);
  });
  client.run_until_idle();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(out.verdict, sync::Verdict::kDone);
  EXPECT_NE(out.error.find("2 orphan"), std::string::npos) << out.error;
  EXPECT_EQ(fake.endpoints.count("o1"), 0u);
  EXPECT_EQ(fake.endpoints.count("o2"), 1u);
  EXPECT_EQ(requests(), (std::vector<std::string>{"DELETE " + kBase + "/o1?version=2", "DELETE " + kBase + "/o2?version=4",
                                                  "DELETE " + kBase + "/gone?version=1"}));
  // Temporal unwell: the first failure ends the run as a retry.
  fake.overrides.push_back({"DELETE", kBase, FakeTemporal::json(503, status(14, "down")), 1});
  http::Client again(options());
  delete_orphans(again, {{"o2", "5"}}, [&](sync::JobOutcome&& o) { out = std::move(o); });
  again.run_until_idle();
  EXPECT_EQ(out.verdict, sync::Verdict::kRetry);
  EXPECT_EQ(fake.endpoints.count("o2"), 1u);
}

}  // namespace
}  // namespace gateway::temporal
