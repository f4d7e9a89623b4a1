// An HTTP client over libcurl multi: many requests in flight on keep-alive connections, driven
// by the caller's event loop (the worker waits on the client's sockets and its own latch in one
// call). libcurl says which sockets to watch and when to time out (the multi_socket API), so a
// closed connection whose socket number comes back for a new one is never missed. Only http and
// https are allowed; redirects are not followed.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "retry_policy.hpp"
#include "secure_buffer.hpp"

namespace gateway::http {

struct ClientOptions {
  std::string base_url;               // e.g. http://kong:8001 or https://host/admin-prefix
  std::vector<std::string> headers;   // extra "Name: value" lines (Kong-Admin-Token, ...)
  std::string ca_file;                // CA bundle for https
  std::string client_cert;            // mutual TLS: certificate file (PEM)
  // Its private key (PEM), read by load_client_key into guarded memory; libcurl reads it from
  // there and never from the file.
  std::shared_ptr<const SecureBuffer> client_key;
  long connect_timeout_ms = 5000;
  long timeout_ms = 30000;
  int max_in_flight = 16;
};

struct Request {
  std::string method;  // GET, PUT, POST, PATCH, DELETE
  std::string path;    // appended to base_url; must start with '/'
  std::string body;    // JSON; empty for none
  // Extra "Name: value" lines for this request only. Each replaces the shared line of the same
  // name (ClientOptions.headers and the defaults, compared case-insensitively), e.g. a
  // connector's own Authorization instead of the headers file's. Wiped when the request ends.
  std::vector<std::string> headers{};
  long timeout_ms = 0;  // this request's whole-transfer timeout; 0: ClientOptions.timeout_ms
  // The answer's body is cut beyond this many bytes (Response.body_truncated); 0 or more than
  // kMaxBodyBytes: kMaxBodyBytes.
  std::size_t max_body_bytes = 0;
};

// Bounds on what an answer's headers may hold (Response.headers): more are dropped, longer values cut.
inline constexpr std::size_t kMaxResponseHeaders = 100;
inline constexpr std::size_t kMaxHeaderValueBytes = 8192;
// A body longer than this is cut (Response.body_truncated).
inline constexpr std::size_t kMaxBodyBytes = std::size_t{1} << 24;

using Response = sync::CallResult;

// A socket the caller should wait on before calling perform() again.
struct WaitSocket {
  int fd;
  bool read, write;
};

class Client {
 public:
  using Callback = std::function<void(Response&&)>;

  explicit Client(ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Queues a request; it starts as soon as fewer than max_in_flight are running. `done` runs
  // from perform(), exactly once.
  void submit(Request request, Callback done);

  // Runs libcurl's timeout actions when due and the callbacks of finished transfers; starts
  // queued requests. Never blocks.
  void perform();

  // A socket from wait_spec() is ready: lets libcurl act on it, then perform()s.
  void socket_ready(int fd, bool readable, bool writable);

  // What to wait for before the next perform(): the sockets libcurl asked to watch, and a
  // timeout in ms (-1: none).
  void wait_spec(std::vector<WaitSocket>& sockets, long& timeout_ms) const;

  // Changes whenever the set of sockets to watch (or what to watch them for) changes; unique
  // across clients, so a caller keeps its wait set exactly as long as this stays the same.
  std::uint64_t sockets_generation() const { return generation_; }

  // Blocks until every queued and running request has finished (for tests and reconcile).
  void run_until_idle();

  std::size_t active() const { return live_.size() + queue_.size(); }
  const ClientOptions& options() const { return options_; }

 private:
  struct Transfer;
  void start_queued();
  std::vector<std::string> shared_lines() const;  // the defaults, then ClientOptions.headers
  void finish(Transfer* transfer, int curl_code);
  int drain_finished();
  static int on_socket(void* easy, int fd, int what, void* self, void* socket_data);
  static int on_timer(void* multi, long timeout_ms, void* self);

  ClientOptions options_;
  void* multi_ = nullptr;  // CURLM*
  void* shared_headers_ = nullptr;  // curl_slist* of the fixed headers
  std::deque<std::pair<Request, Callback>> queue_;
  std::unordered_set<Transfer*> live_;
  std::map<int, WaitSocket> sockets_;   // what libcurl asked to watch, by socket
  std::int64_t timer_due_ms_ = -1;      // steady clock; -1: no timeout wanted
  std::uint64_t generation_ = 0;
};

// libcurl must be initialised once per process before threads start; the worker calls this.
void global_init();

// Extra request headers from a private file (read_private_file's checks): one "Name: value" per
// line; blank lines and lines starting with '#' are skipped. Throws gateway::Error (F0000) for a
// bad file or line. Secrets such as Kong-Admin-Token live here rather than in a setting, because
// PostgreSQL logs the new value of every setting a reload changes.
// `role` names the file in errors and hints (which target, which setting).
struct FileRole {
  std::string what = "Kong Admin API header file";
  std::string setting = "gateway.kong_admin_headers_file";
  std::string example = "Kong-Admin-Token: ...";
};
std::vector<std::string> load_header_file(const std::string& path, const FileRole& role = {});

// The private key of the client certificate, with the same checks. Throws gateway::Error (F0000).
std::shared_ptr<const SecureBuffer> load_client_key(
    const std::string& path,
    const FileRole& role = {"Kong client key file", "gateway.kong_client_key", ""});

}  // namespace gateway::http
