#include "core/kong_sync.hpp"

#include <gtest/gtest.h>

#include "closing_server.hpp"

#include <algorithm>

namespace gateway::sync {
namespace {

using kong::Json;

const kong::MappingSettings kSettings{"own", "http://app:3000/run", "X-API-Key"};
const char* kIface = "11111111-2222-4333-8444-555555555555";

kong::KeySecret secret(const std::string& text) {
  auto buffer = std::make_shared<SecureBuffer>(text.size());
  std::copy(text.begin(), text.end(), buffer->data());
  return buffer;
}

kong::InterfaceRow published() {
  kong::InterfaceRow row;
  row.id = kIface;
  row.exists = row.is_public = true;
  row.http_method = "POST";
  row.http_path = "/i/abc";
  row.auth_type = "api_key";
  return row;
}

// What Kong would hold after a successful sync: our fields plus its defaults.
Inventory synced(const kong::Desired& d) {
  Inventory inv;
  for (const auto& o : d.present) {
    Json remote = o.fields;
    remote["id"] = o.id;
    remote["created_at"] = 1;
    if (o.collection == "services") remote["retries"] = 5;
    if (o.collection == "plugins") remote["config"]["run_on_preflight"] = true;
    inv[o.collection].push_back(remote);
  }
  return inv;
}

TEST(Reconcile, NothingToDoWhenKongMatches) {
  kong::Desired d = kong::desired_for_interface(published(), kSettings);
  ReconcilePlan plan = plan_reconcile({{{"public_interface", kIface}, d}}, synced(d));
  EXPECT_TRUE(plan.repair.empty());
  EXPECT_TRUE(plan.orphans.empty());
}

TEST(Reconcile, MissingOrChangedObjectsRepairTheirRow) {
  kong::Desired d = kong::desired_for_interface(published(), kSettings);
  Inventory missing = synced(d);
  missing["plugins"].pop_back();
  EXPECT_EQ(plan_reconcile({{{"public_interface", kIface}, d}}, missing).repair.size(), 1u);
  Inventory changed = synced(d);
  changed["routes"][0]["paths"] = Json::array({"/hijacked"});
  ReconcilePlan plan = plan_reconcile({{{"public_interface", kIface}, d}}, changed);
  ASSERT_EQ(plan.repair.size(), 1u);
  EXPECT_EQ(plan.repair.begin()->id, kIface);
}

TEST(Reconcile, TaggedObjectsOfNoRowAreOrphansDeletedChildrenFirst) {
  kong::Desired d = kong::desired_for_interface(published(), kSettings);
  Inventory inv = synced(d);
  // Ids and names that are no row's: the reconcile deletes these itself.
  const char* ids[] = {"a0000000-0000-4000-8000-000000000001", "a0000000-0000-4000-8000-000000000002",
                       "a0000000-0000-4000-8000-000000000003", "a0000000-0000-4000-8000-000000000004"};
  int n = 0;
  for (auto& [collection, objects] : inv) {
    for (Json& o : objects) {
      o["id"] = ids[n++];
      if (o.contains("name") && collection != "plugins") o["name"] = "someone";
    }
  }
  ReconcilePlan plan = plan_reconcile({}, inv);
  EXPECT_TRUE(plan.repair.empty());
  ASSERT_EQ(plan.orphans.size(), 4u);
  EXPECT_EQ(plan.orphans[0].collection, "plugins");
  EXPECT_EQ(plan.orphans[1].collection, "plugins");
  EXPECT_EQ(plan.orphans[2].collection, "routes");
  EXPECT_EQ(plan.orphans[3].collection, "services");
  EXPECT_EQ(plan.orphans[3].path, "/services/" + inv["services"][0]["id"].get<std::string>());
}

// Point 12: an unwanted object of a row is never deleted by the reconcile itself (a republish
// committed after its look at the tables would be undone); the row's job deletes it, serialised
// with every other job of that row.
TEST(Reconcile, UnwantedObjectsOfARowAreLeftToThatRowsJob) {
  kong::Desired d = kong::desired_for_interface(published(), kSettings);
  Inventory inv = synced(d);
  // The row is gone from the tables (or unpublished): found by its objects' names.
  ReconcilePlan gone = plan_reconcile({}, inv);
  EXPECT_TRUE(gone.orphans.empty());
  ASSERT_EQ(gone.repair.size(), 1u);
  EXPECT_EQ(gone.repair.begin()->kind, "public_interface");
  EXPECT_EQ(gone.repair.begin()->id, kIface);
  // The row is at hand but unpublished: its plugins are attributed even without their route.
  kong::InterfaceRow row = published();
  row.is_public = false;
  inv.erase("routes");
  inv.erase("services");
  ReconcilePlan unpublished =
      plan_reconcile({{{"public_interface", kIface}, kong::desired_for_interface(row, kSettings)}}, inv);
  EXPECT_TRUE(unpublished.orphans.empty());
  EXPECT_EQ(unpublished.repair.size(), 1u);
  // A revoked key's consumer and credentials: found by the consumer's name.
  kong::KeyRow key;
  key.id = "99999999-8888-4777-8666-555555555555";
  key.exists = key.is_active = true;
  key.interface_id = kIface;
  ReconcilePlan revoked = plan_reconcile({}, synced(kong::desired_for_key(key, kSettings, 1000)));
  EXPECT_TRUE(revoked.orphans.empty());
  ASSERT_EQ(revoked.repair.size(), 1u);
  EXPECT_EQ(revoked.repair.begin()->kind, "api_key");
  EXPECT_EQ(revoked.repair.begin()->id, key.id);
}

TEST(Reconcile, CredentialOrphansAreAddressedUnderTheirConsumer) {
  Inventory inv;
  inv["key-auths"].push_back(Json{{"id", "k1"}, {"consumer", {{"id", "c1"}}}, {"key", "x"}});
  inv["acls"].push_back(Json{{"id", "a1"}, {"consumer", {{"id", "c1"}}}, {"group", "g"}});
  inv["consumers"].push_back(Json{{"id", "c1"}, {"username", "u"}});
  ReconcilePlan plan = plan_reconcile({}, inv);
  ASSERT_EQ(plan.orphans.size(), 3u);
  EXPECT_EQ(plan.orphans[0].path, "/consumers/c1/acls/a1");
  EXPECT_EQ(plan.orphans[1].path, "/consumers/c1/key-auth/k1");
  EXPECT_EQ(plan.orphans[2].path, "/consumers/c1");
}

TEST(Reconcile, KeyValueAndTtlAreNotDrift) {
  kong::KeyRow key;
  key.id = "99999999-8888-4777-8666-555555555555";
  key.exists = key.is_active = true;
  key.interface_id = kIface;
  key.expires_at = 5000;
  key.plaintext = secret("gw_secret");
  kong::Desired d = kong::desired_for_key(key, kSettings, 1000);
  Inventory inv = synced(d);
  inv["key-auths"][0]["ttl"] = 3000;  // counted down inside Kong
  inv["key-auths"][0]["key"] = "shown differently";
  EXPECT_TRUE(plan_reconcile({{{"api_key", key.id}, d}}, inv).repair.empty());
}

}  // namespace
}  // namespace gateway::sync

namespace gateway::sync {
namespace {

std::vector<std::string> methods(const std::vector<http::Request>& requests) {
  std::vector<std::string> out;
  for (const auto& r : requests) out.push_back(r.method + " " + r.path.substr(1, r.path.find('/', 1) - 1));
  return out;
}

kong::Json fingerprints(const kong::Desired& d) {
  kong::Json out = kong::Json::object();
  for (const auto& o : d.present) out[o.path] = kong::fingerprint(o);
  return out;
}

TEST(JobPlan, UnknownHistorySendsEverything) {
  kong::Desired d = kong::desired_for_interface(published(), kSettings);
  EXPECT_EQ(methods(planned_requests(d, kong::Json())),
            (std::vector<std::string>{"PUT services", "PUT routes", "PUT plugins", "PUT plugins",
                                      "DELETE plugins"}));
}

TEST(JobPlan, NothingChangedSendsNothingAndNeverDeletesWhatWasNeverCreated) {
  kong::Desired d = kong::desired_for_interface(published(), kSettings);
  EXPECT_TRUE(planned_requests(d, fingerprints(d)).empty());
}

TEST(JobPlan, AChangeSendsOnlyTheObjectsItTouches) {
  kong::Desired before = kong::desired_for_interface(published(), kSettings);
  kong::InterfaceRow row = published();
  row.rate_limit_per_minute = 30;
  kong::Desired after = kong::desired_for_interface(row, kSettings);
  EXPECT_EQ(methods(planned_requests(after, fingerprints(before))),
            (std::vector<std::string>{"PUT plugins"}));
  row.is_public = false;
  kong::Desired gone = kong::desired_for_interface(row, kSettings);
  EXPECT_EQ(methods(planned_requests(gone, fingerprints(after))),
            (std::vector<std::string>{"DELETE plugins", "DELETE plugins", "DELETE plugins",
                                      "DELETE routes", "DELETE services"}));
}

TEST(JobPlan, AKeyToDeliverIsAlwaysSent) {
  kong::KeyRow key;
  key.id = "99999999-8888-4777-8666-555555555555";
  key.exists = key.is_active = true;
  key.interface_id = kIface;
  key.plaintext = secret("gw_secret");
  kong::Desired d = kong::desired_for_key(key, kSettings, 1000);
  auto requests = planned_requests(d, fingerprints(d));
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "PUT");
  EXPECT_NE(requests[0].body.find("gw_secret"), std::string::npos);
}

}  // namespace
}  // namespace gateway::sync

namespace gateway::sync {
namespace {

// A job whose own code throws while handling an answer (here its observer) ends once, as a retry,
// instead of holding its slot and its object until the worker restarts.
TEST(KongJob, AnObserverThatThrowsEndsTheJobOnceAsARetry) {
  using testing::Received;
  using testing::Reply;
  testing::ScriptedServer kong([](const Received&) { return Reply{200, "{}", {}}; });
  http::ClientOptions options;
  options.base_url = kong.url();
  http::Client client(options);
  int calls = 0;
  JobOutcome out;
  run_job(
      client, kong::desired_for_interface(published(), kSettings), Json(),
      [&](JobOutcome&& o) {
        ++calls;
        out = std::move(o);
      },
      [](const CallResult&) { throw std::runtime_error("observer broke"); });
  EXPECT_NO_THROW(client.run_until_idle());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(out.verdict, Verdict::kRetry);
  EXPECT_NE(out.error.find("observer broke"), std::string::npos) << out.error;
}

}  // namespace
}  // namespace gateway::sync
