#include "core/kong_mapping.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include "core/kong_ids.hpp"

namespace gateway::kong {
namespace {

const MappingSettings kSettings{"pg-gateway-test", "http://app.internal:3000/api/run/", "X-API-Key"};
const char* kIface = "11111111-2222-4333-8444-555555555555";
const char* kKey = "99999999-8888-4777-8666-555555555555";

KeySecret secret(const std::string& text) {
  auto buffer = std::make_shared<SecureBuffer>(text.size());
  std::copy(text.begin(), text.end(), buffer->data());
  return buffer;
}

InterfaceRow published() {
  InterfaceRow row;
  row.id = kIface;
  row.exists = row.is_public = true;
  row.http_method = "POST";
  row.http_path = "/i/abc";
  row.auth_type = "api_key";
  row.rate_limit_per_minute = 60;
  return row;
}

std::vector<std::string> collections(const std::vector<KongObject>& objects) {
  std::vector<std::string> out;
  for (const auto& o : objects) out.push_back(o.collection + ":" + o.fields.value("name", ""));
  return out;
}

TEST(KongMapping, PublishedInterfaceBecomesServiceRouteAndPluginsInDependencyOrder) {
  Desired d = desired_for_interface(published(), kSettings);
  EXPECT_EQ(collections(d.present),
            (std::vector<std::string>{"services:gw-" + std::string(kIface), "routes:gw-" + std::string(kIface),
                                      "plugins:key-auth", "plugins:acl", "plugins:rate-limiting"}));
  EXPECT_TRUE(d.absent.empty());
  const Json& service = d.present[0].fields;
  EXPECT_EQ(service["host"], "app.internal");
  EXPECT_EQ(service["port"], 3000);
  EXPECT_EQ(service["path"], "/api/run/" + std::string(kIface));
  EXPECT_EQ(service["tags"], Json::array({"pg-gateway-test"}));
  const Json& route = d.present[1].fields;
  EXPECT_EQ(route["methods"], Json::array({"POST"}));
  EXPECT_EQ(route["paths"], Json::array({"/i/abc"}));
  EXPECT_EQ(route["service"]["id"], d.present[0].id);
  EXPECT_EQ(d.present[2].fields["config"]["key_names"], Json::array({"X-API-Key"}));
  EXPECT_EQ(d.present[2].fields["config"]["hide_credentials"], true);
  EXPECT_EQ(d.present[3].fields["config"]["allow"], Json::array({acl_group(kIface)}));
  EXPECT_EQ(d.present[4].fields["config"]["minute"], 60);
  for (const auto& o : d.present) EXPECT_EQ(o.fields["tags"], Json::array({"pg-gateway-test"}));
}

TEST(KongMapping, IdsAreDeterministic) {
  Desired a = desired_for_interface(published(), kSettings);
  Desired b = desired_for_interface(published(), kSettings);
  for (std::size_t i = 0; i < a.present.size(); ++i) EXPECT_EQ(a.present[i].id, b.present[i].id);
  EXPECT_EQ(a.present[0].id, object_id("service", kIface));
  EXPECT_EQ(a.present[0].path, "/services/" + a.present[0].id);
}

TEST(KongMapping, UnpublishedOrDeletedInterfaceRemovesEverythingChildrenFirst) {
  InterfaceRow row = published();
  row.is_public = false;
  Desired d = desired_for_interface(row, kSettings);
  EXPECT_TRUE(d.present.empty());
  ASSERT_EQ(d.absent.size(), 5u);
  EXPECT_EQ(d.absent[3].collection, "routes");
  EXPECT_EQ(d.absent[4].collection, "services");
  row.exists = false;
  EXPECT_EQ(desired_for_interface(row, kSettings).absent.size(), 5u);
}

TEST(KongMapping, OpenInterfaceHasNoAuthPluginsAndNoLimitMeansNoRateLimitPlugin) {
  InterfaceRow row = published();
  row.auth_type = "none";
  row.rate_limit_per_minute.reset();
  Desired d = desired_for_interface(row, kSettings);
  EXPECT_EQ(d.present.size(), 2u);
  EXPECT_EQ(d.absent.size(), 3u);  // rate-limiting, acl, key-auth
}

TEST(KongMapping, BadUpstreamUrlIsAMappingError) {
  EXPECT_THROW(desired_for_interface(published(), {"t", "ftp://x/y", "X-API-Key"}), MappingError);
  EXPECT_THROW(desired_for_interface(published(), {"t", "app:3000", "X-API-Key"}), MappingError);
  EXPECT_THROW(desired_for_interface(published(), {"t", "http://:3000/x", "X-API-Key"}), MappingError);
  EXPECT_THROW(desired_for_interface(published(), {"t", "http://h:99x/x", "X-API-Key"}), MappingError);
  Json target = service_target("https://h.example");
  EXPECT_EQ(target["port"], 443);
  EXPECT_TRUE(target["path"].is_null());
}

KeyRow valid_key() {
  KeyRow row;
  row.id = kKey;
  row.exists = row.is_active = true;
  row.interface_id = kIface;
  row.has_sealed_key = true;
  row.plaintext = secret("gw_secret");
  return row;
}

TEST(KongMapping, BoundKeyBecomesConsumerCredentialAndAclGroupOfItsInterface) {
  Desired d = desired_for_key(valid_key(), kSettings, 1000.0);
  ASSERT_EQ(d.present.size(), 3u);
  EXPECT_EQ(d.present[0].collection, "consumers");
  EXPECT_EQ(d.present[0].fields["username"], "gw-key-" + std::string(kKey));
  EXPECT_EQ(d.present[1].collection, "key-auths");
  EXPECT_EQ(d.present[1].path, d.present[0].path + "/key-auth/" + d.present[1].id);
  EXPECT_FALSE(d.present[1].fields.contains("key"));  // the key never enters a Json copy
  ASSERT_TRUE(d.present[1].carries_key());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(d.present[1].key->data()), d.present[1].key->size()),
            "gw_secret");
  EXPECT_FALSE(d.present[1].fields.contains("ttl"));
  EXPECT_EQ(d.present[2].fields["group"], acl_group(kIface));
  EXPECT_FALSE(d.next_change);
}

TEST(KongMapping, KeyWithAnEndGetsATtlAndAFollowUpAtTheEarlierOfRevocationAndExpiry) {
  KeyRow row = valid_key();
  row.expires_at = 5000.0;
  row.revoked_at = 2000.5;  // a rotation's grace period
  Desired d = desired_for_key(row, kSettings, 1000.0);
  EXPECT_EQ(d.present[1].fields["ttl"], 1001);
  ASSERT_TRUE(d.next_change);
  EXPECT_DOUBLE_EQ(*d.next_change, 2000.5);
}

TEST(KongMapping, AKeyStaysInKongWhetherOrNotItsInterfaceIsPublishedNow) {
  // Unpublishing removes the route (the consumer then grants nothing); keeping the consumer means
  // republishing needs no plaintext, which is wiped after the first delivery.
  KeyRow row = valid_key();
  row.plaintext.reset();
  row.has_sealed_key = false;
  Desired d = desired_for_key(row, kSettings, 1000.0);
  ASSERT_EQ(d.present.size(), 3u);
  EXPECT_TRUE(d.absent.empty());
}

TEST(KongMapping, EveryObjectARowCanHaveIsKnownByItsId) {
  std::vector<KongObject> iface = objects_of("public_interface", kIface);
  ASSERT_EQ(iface.size(), 5u);
  EXPECT_EQ(iface[0].collection, "services");
  EXPECT_EQ(iface[0].id, desired_for_interface(published(), kSettings).present[0].id);
  std::vector<KongObject> key = objects_of("api_key", kKey);
  ASSERT_EQ(key.size(), 3u);
  EXPECT_EQ(key[1].path, desired_for_key(valid_key(), kSettings, 1000.0).present[1].path);
  EXPECT_TRUE(objects_of("reconcile", kKey).empty());
}

TEST(KongMapping, RevokedExpiredOrUnboundKeysAreRemoved) {
  KeyRow revoked = valid_key();
  revoked.is_active = false;
  KeyRow expired = valid_key();
  expired.expires_at = 999.0;
  KeyRow grace_over = valid_key();
  grace_over.revoked_at = 1000.0;
  KeyRow unbound = valid_key();
  unbound.interface_id.clear();
  KeyRow gone = valid_key();
  gone.exists = false;
  for (const KeyRow& row : {revoked, expired, grace_over, unbound, gone}) {
    Desired d = desired_for_key(row, kSettings, 1000.0);
    EXPECT_TRUE(d.present.empty());
    ASSERT_EQ(d.absent.size(), 3u);
    EXPECT_EQ(d.absent[2].collection, "consumers");  // the consumer goes last
  }
}

TEST(KongMapping, DeliveredKeyIsNotSentAgain) {
  KeyRow row = valid_key();
  row.has_sealed_key = false;
  row.plaintext.reset();
  Desired d = desired_for_key(row, kSettings, 1000.0);
  EXPECT_FALSE(d.present[1].carries_key());
  EXPECT_FALSE(d.present[1].fields.contains("key"));
}

TEST(KongMapping, FieldsMatchIgnoresKongDefaultsButNotOurFields) {
  Json wanted = {{"name", "a"}, {"config", {{"minute", 5}}}, {"tags", {"t"}}};
  Json remote = {{"name", "a"}, {"config", {{"minute", 5.0}, {"policy", "local"}}},
                 {"tags", {"t"}}, {"retries", 5}};
  EXPECT_TRUE(fields_match(wanted, remote));
  remote["config"]["minute"] = 6;
  EXPECT_FALSE(fields_match(wanted, remote));
  EXPECT_FALSE(fields_match(wanted, Json{{"name", "a"}}));
  EXPECT_TRUE(fields_match(Json{{"path", nullptr}}, Json::object()));
}

}  // namespace
}  // namespace gateway::kong
