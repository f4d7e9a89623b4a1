#include "closing_server.hpp"
#include "core/http_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <set>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace gateway::http {
namespace {

using gateway::testing::ClosingServer;

// Drives the client as the worker does: one epoll set, rebuilt only when the client's socket
// generation changes, never by comparing socket numbers.
TEST(HttpClient, NewSocketWithAReusedNumberIsWatched) {
  ClosingServer server;
  ClientOptions options;
  options.base_url = "http://127.0.0.1:" + std::to_string(server.port());
  options.timeout_ms = 20000;  // a missed socket would stall until this
  Client client(options);

  constexpr int kRequests = 20;
  int done = 0, failed = 0;
  std::function<void()> next = [&] {
    client.submit({"GET", "/", ""}, [&](Response&& r) {
      if (r.status != 200) ++failed;
      if (++done < kRequests) next();
    });
  };
  next();

  int epoll_fd = -1;
  std::uint64_t generation = 0;
  std::set<int> seen_fds;
  int reused = 0;
  std::vector<WaitSocket> sockets;
  const auto start = std::chrono::steady_clock::now();
  client.perform();
  while (client.active() > 0 && std::chrono::steady_clock::now() - start < std::chrono::seconds(10)) {
    long timeout_ms = -1;
    client.wait_spec(sockets, timeout_ms);
    if (epoll_fd < 0 || client.sockets_generation() != generation) {
      if (epoll_fd >= 0) ::close(epoll_fd);
      epoll_fd = ::epoll_create1(0);
      for (const WaitSocket& s : sockets) {
        epoll_event ev{};
        ev.events = (s.read ? unsigned{EPOLLIN} : 0u) | (s.write ? unsigned{EPOLLOUT} : 0u);
        ev.data.fd = s.fd;
        ASSERT_EQ(::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, s.fd, &ev), 0);
        if (!seen_fds.insert(s.fd).second) ++reused;
      }
      generation = client.sockets_generation();
    }
    epoll_event events[8];
    int n = ::epoll_wait(epoll_fd, events, 8, timeout_ms < 0 ? 5000 : static_cast<int>(timeout_ms));
    for (int i = 0; i < n; ++i) {
      client.socket_ready(events[i].data.fd, (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0,
                          (events[i].events & (EPOLLOUT | EPOLLERR)) != 0);
    }
    client.perform();
  }
  if (epoll_fd >= 0) ::close(epoll_fd);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(done, kRequests);
  EXPECT_EQ(failed, 0);
  // Each request is a local round trip: well under 50 ms each even on a loaded machine.
  EXPECT_LT(elapsed, std::chrono::seconds(2));
  // The case this test is about happened: a new connection got a closed one's number.
  EXPECT_GT(reused, 0);
}

TEST(HttpClient, GenerationsAreUniqueAcrossClients) {
  Client a(ClientOptions{});
  Client b(ClientOptions{});
  EXPECT_NE(a.sockets_generation(), b.sockets_generation());
}

TEST(HttpClient, RunUntilIdleFinishesEveryRequest) {
  ClosingServer server;
  ClientOptions options;
  options.base_url = "http://127.0.0.1:" + std::to_string(server.port());
  Client client(options);
  int ok = 0;
  for (int i = 0; i < 5; ++i) {
    client.submit({"GET", "/", ""}, [&](Response&& r) { ok += r.status == 200; });
  }
  client.run_until_idle();
  EXPECT_EQ(ok, 5);
}

}  // namespace
}  // namespace gateway::http
