// A hostile or broken Kong answering the reconcile's listings: pages that never end, a `next`
// that leaves the Admin API, objects with null or odd fields. Each must end the listing with an
// error (retried later) or be read safely; none may loop, send credentials elsewhere, or throw.
#include "closing_server.hpp"
#include "core/kong_sync.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace gateway::sync {
namespace {

using gateway::testing::ClosingServer;

std::string list(const std::string& body, int* requests, Inventory* out = nullptr) {
  ClosingServer server(body);
  http::ClientOptions options;
  options.base_url = server.url();
  options.timeout_ms = 5000;
  http::Client client(options);
  std::string error = "(not finished)";
  list_inventory(client, "tag", [&](Inventory&& inventory, std::string e) {
    error = e;
    if (out != nullptr) *out = std::move(inventory);
  });
  client.run_until_idle();
  *requests = server.requests();
  return error;
}

TEST(KongListing, PagesThatComeRoundAgainEnd) {
  int requests = 0;
  std::string error = list(R"({"data":[],"next":"/services?size=1000&offset=x"})", &requests);
  EXPECT_NE(error.find("do not end"), std::string::npos) << error;
  EXPECT_LT(requests, 20);
}

TEST(KongListing, ANextOutsideTheAdminApiIsNotFollowed) {
  for (const char* next : {".attacker.net/x", "//attacker.net/x", "@evil/x", "http://evil/x"}) {
    int requests = 0;
    std::string error = list(std::string(R"({"data":[],"next":")") + next + "\"}", &requests);
    EXPECT_NE(error.find("not a path of its Admin API"), std::string::npos) << next << ": " << error;
    EXPECT_LE(requests, 6) << next;  // the first page of each collection, nothing followed
  }
}

TEST(KongListing, NullAndOddFieldsAreReadSafely) {
  int requests = 0;
  Inventory inventory;
  std::string error = list(
      R"({"data":[{"id":"a","name":null,"username":null,"consumer":{"id":5}},{"id":7},{"name":"gw-x"}]})",
      &requests, &inventory);
  ASSERT_EQ(error, "");
  ReconcilePlan plan;
  EXPECT_NO_THROW(plan = plan_reconcile({}, inventory));
}

}  // namespace
}  // namespace gateway::sync
