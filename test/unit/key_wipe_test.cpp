// Point 19: a key handed to Kong leaves no copy behind in freed memory. Every operator delete of
// this test binary is watched while a key's job runs on the calling thread: a freed block that
// still holds the key's bytes is a copy nobody wiped. The job runs against a small HTTP server
// (another thread, not watched) that answers like Kong, echoing the credential with its key.
//
// What this proves: no std::string, Json or other C++-allocated copy of the key is freed
// unwiped by the mapping, the job runner or the HTTP client (request and answer bodies). What it
// cannot see: libcurl's own buffers (malloc, not operator new), the kernel's socket buffers, and
// the PostgreSQL side (the sealed copy is opened into guarded memory in src/pg/key_handoff.cpp).
#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "core/http_client.hpp"
#include "loopback_server.hpp"
#include "core/kong_mapping.hpp"
#include "core/kong_sync.hpp"

namespace {

constexpr char kKeyText[] = "gw_K3yW1peTest0_9f8e7d6c5b4a39281706f5e4d3c2b1a0";
thread_local bool watching = false;
std::atomic<int> unwiped_frees{0};

void check_freed(void* p) noexcept {
  if (!watching || p == nullptr) return;
  const std::size_t size = malloc_usable_size(p);
  const std::size_t n = sizeof kKeyText - 1;
  if (size >= n && memmem(p, size, kKeyText, n) != nullptr) ++unwiped_frees;
}

}  // namespace

void* operator new(std::size_t size) {
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
void operator delete(void* p) noexcept {
  check_freed(p);
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  check_freed(p);
  std::free(p);
}
// Every other form too, so each allocation is paired with a matching free (a sanitizer runtime
// otherwise supplies the rest, and its new with our delete is a mismatch).
void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return std::malloc(size == 0 ? 1 : size); }
void* operator new[](std::size_t size) { return operator new(size); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept { return std::malloc(size == 0 ? 1 : size); }
void operator delete(void* p, const std::nothrow_t&) noexcept { operator delete(p); }
void operator delete[](void* p) noexcept { operator delete(p); }
void operator delete[](void* p, std::size_t) noexcept { operator delete(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { operator delete(p); }

namespace gateway::sync {
namespace {

// Answers every request 200 with the request's own body (Kong echoes a credential, key included).
class EchoServer {
 public:
  EchoServer() {
    listen_fd_ = gateway::testing::listen_on_loopback(port_);
    thread_ = std::thread([this] { serve(); });
  }
  ~EchoServer() {
    stop_ = true;
    thread_.join();
    close(listen_fd_);
  }
  int port() const { return port_; }
  std::vector<std::string> bodies;  // read after the job: the server thread is idle by then

 private:
  bool wait_readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    while (!stop_) {
      if (poll(&p, 1, 50) > 0) return true;
    }
    return false;
  }
  void serve() {
    while (wait_readable(listen_fd_)) {
      int fd = accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      std::string in;
      char buf[4096];
      while (wait_readable(fd)) {
        ssize_t got = read(fd, buf, sizeof buf);
        if (got <= 0) break;
        in.append(buf, static_cast<std::size_t>(got));
        for (;;) {
          auto end = in.find("\r\n\r\n");
          if (end == std::string::npos) break;
          std::size_t length = 0;
          auto cl = in.find("Content-Length: ");
          if (cl != std::string::npos && cl < end) length = std::stoul(in.substr(cl + 16));
          if (in.size() < end + 4 + length) break;
          std::string body = in.substr(end + 4, length);
          in.erase(0, end + 4 + length);
          bodies.push_back(body);
          std::string answer = body.empty() ? "{}" : body;
          std::string out = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                            std::to_string(answer.size()) + "\r\n\r\n" + answer;
          if (write(fd, out.data(), out.size()) < 0) break;
        }
      }
      close(fd);
    }
  }
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST(KeyWipe, AKeysJobLeavesNoUnwipedCopyAndLetsGoOfTheKeyOnceSent) {
  EchoServer server;
  http::ClientOptions options;
  options.base_url = "http://127.0.0.1:" + std::to_string(server.port());
  http::Client client(options);
  const kong::MappingSettings settings{"own", "http://app:3000/run", "X-API-Key"};

  std::weak_ptr<const SecureBuffer> watch;
  bool done = false, released_when_done = false;
  JobOutcome result;
  watching = true;
  {
    kong::KeyRow row;
    row.id = "99999999-8888-4777-8666-555555555555";
    row.exists = row.is_active = true;
    row.interface_id = "11111111-2222-4333-8444-555555555555";
    row.has_sealed_key = true;
    auto plain = std::make_shared<SecureBuffer>(sizeof kKeyText - 1);
    std::memcpy(plain->data(), kKeyText, plain->size());
    row.plaintext = plain;
    watch = plain;
    plain.reset();
    kong::Desired desired = kong::desired_for_key(row, settings, 1000.0);
    row.plaintext.reset();
    run_job(client, desired, kong::Json(), [&](JobOutcome&& outcome) {
      done = true;
      released_when_done = watch.expired();
      result = std::move(outcome);
    });
  }
  client.run_until_idle();
  watching = false;

  ASSERT_TRUE(done);
  EXPECT_EQ(result.verdict, Verdict::kDone) << result.error;
  EXPECT_TRUE(result.key_delivered);
  ASSERT_EQ(server.bodies.size(), 3u);
  EXPECT_NE(server.bodies[1].find(std::string("\"key\":\"") + kKeyText + "\""), std::string::npos)
      << "Kong got the key in the credential's PUT";
  EXPECT_TRUE(released_when_done) << "the job let go of the key once its request was answered";
  EXPECT_TRUE(watch.expired()) << "the guarded buffer was freed, and sodium_free wiped it";
  EXPECT_EQ(unwiped_frees.load(), 0) << "a freed block still held the key";
}

}  // namespace
}  // namespace gateway::sync
