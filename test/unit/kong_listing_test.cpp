// A hostile or broken Kong answering the reconcile's listings: pages that never end, a `next`
// that leaves the Admin API, objects with null or odd fields. Each must end the listing with an
// error (retried later) or be read safely; none may loop, send credentials elsewhere, or throw.
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

// Answers every request with the same body, then closes the connection; counts the requests.
class FixedServer {
 public:
  explicit FixedServer(std::string body) : body_(std::move(body)) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(listener_, 16);
    socklen_t len = sizeof addr;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~FixedServer() {
    ::shutdown(listener_, SHUT_RDWR);
    ::close(listener_);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int requests() const { return requests_; }

 private:
  void serve() {
    for (;;) {
      int c = ::accept(listener_, nullptr, nullptr);
      if (c < 0) return;
      std::string request;
      char buffer[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::read(c, buffer, sizeof buffer);
        if (n <= 0) break;
        request.append(buffer, static_cast<std::size_t>(n));
      }
      ++requests_;
      std::string answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                           std::to_string(body_.size()) + "\r\nConnection: close\r\n\r\n" + body_;
      (void) !::write(c, answer.data(), answer.size());
      ::close(c);
    }
  }
  std::string body_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<int> requests_{0};
  std::thread thread_;
};

std::string list(const std::string& body, int* requests, Inventory* out = nullptr) {
  FixedServer server(body);
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
