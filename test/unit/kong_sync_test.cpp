#include "core/kong_sync.hpp"

#include <gtest/gtest.h>

namespace gateway::sync {
namespace {

using kong::Json;

const kong::MappingSettings kSettings{"own", "http://app:3000/run", "X-API-Key"};
const char* kIface = "11111111-2222-4333-8444-555555555555";

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

TEST(Reconcile, TaggedObjectsNoRowWantsAreOrphansDeletedChildrenFirst) {
  kong::Desired d = kong::desired_for_interface(published(), kSettings);
  Inventory inv = synced(d);
  ReconcilePlan plan = plan_reconcile({}, inv);
  ASSERT_EQ(plan.orphans.size(), 4u);
  EXPECT_EQ(plan.orphans[0].collection, "plugins");
  EXPECT_EQ(plan.orphans[1].collection, "plugins");
  EXPECT_EQ(plan.orphans[2].collection, "routes");
  EXPECT_EQ(plan.orphans[3].collection, "services");
  EXPECT_EQ(plan.orphans[3].path, "/services/" + d.present[0].id);
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
  key.exists = key.is_active = key.interface_published = true;
  key.interface_id = kIface;
  key.expires_at = 5000;
  key.plaintext = "gw_secret";
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
  key.exists = key.is_active = key.interface_published = true;
  key.interface_id = kIface;
  key.plaintext = "gw_secret";
  kong::Desired d = kong::desired_for_key(key, kSettings, 1000);
  auto requests = planned_requests(d, fingerprints(d));
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "PUT");
  EXPECT_NE(requests[0].body.find("gw_secret"), std::string::npos);
}

}  // namespace
}  // namespace gateway::sync
