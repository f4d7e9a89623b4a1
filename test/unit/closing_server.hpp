// Loopback HTTP servers for the unit tests. Each answers with Connection: close and then closes
// the socket, as a Kong behind some proxies does (each request of a client opens a new socket,
// and the number of the one just closed is often free again).
//   ScriptedServer: a handler decides each answer (status, headers, body) from the request, so a
//                   test can play a stateful fake or a hostile server; it records every request.
//   ClosingServer:  one fixed JSON body with 200 for every request.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "loopback_server.hpp"

namespace gateway::testing {

struct Received {
  std::string method, path, body;  // path with its query, as sent
};

struct Reply {
  long status = 200;
  std::string body = "{}";
  std::vector<std::string> headers;  // extra "Name: value" lines
};

class ScriptedServer {
 public:
  using Handler = std::function<Reply(const Received&)>;

  explicit ScriptedServer(Handler handler) : handler_(std::move(handler)) {
    listener_ = listen_on_loopback(port_);
    thread_ = std::thread([this] { serve(); });
  }
  virtual ~ScriptedServer() {
    stop_ = true;
    ::shutdown(listener_, SHUT_RDWR);
    ::close(listener_);
    thread_.join();
  }
  ScriptedServer(const ScriptedServer&) = delete;
  ScriptedServer& operator=(const ScriptedServer&) = delete;

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int requests() const { return requests_; }
  std::vector<Received> received() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return received_;
  }

 private:
  static std::size_t content_length(const std::string& head) {
    std::string lower;
    for (char c : head) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    std::size_t at = lower.find("\r\ncontent-length:");
    return at == std::string::npos ? 0 : std::strtoul(lower.c_str() + at + 17, nullptr, 10);
  }

  void serve() {
    while (!stop_) {
      int c = ::accept(listener_, nullptr, nullptr);
      if (c < 0) return;
      std::string request;
      char buffer[4096];
      std::size_t head_end;
      while ((head_end = request.find("\r\n\r\n")) == std::string::npos) {
        ssize_t n = ::read(c, buffer, sizeof buffer);
        if (n <= 0) break;
        request.append(buffer, static_cast<std::size_t>(n));
      }
      if (head_end == std::string::npos) {
        ::close(c);
        continue;
      }
      const std::size_t length = content_length(request.substr(0, head_end));
      while (request.size() < head_end + 4 + length) {
        ssize_t n = ::read(c, buffer, sizeof buffer);
        if (n <= 0) break;
        request.append(buffer, static_cast<std::size_t>(n));
      }
      Received received;
      const std::size_t space1 = request.find(' ');
      const std::size_t space2 = request.find(' ', space1 + 1);
      received.method = request.substr(0, space1);
      received.path = request.substr(space1 + 1, space2 - space1 - 1);
      received.body = request.substr(head_end + 4);
      Reply reply;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        received_.push_back(received);
        reply = handler_(received);
      }
      ++requests_;
      std::vector<std::string> headers{"Content-Type: application/json"};
      headers.insert(headers.end(), reply.headers.begin(), reply.headers.end());
      send_reply_and_close(c, reply.status, headers, reply.body);
    }
  }

  Handler handler_;
  mutable std::mutex mutex_;
  std::vector<Received> received_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

class ClosingServer : public ScriptedServer {
 public:
  explicit ClosingServer(std::string body = "{}")
      : ScriptedServer([body = std::move(body)](const Received&) { return Reply{200, body, {}}; }) {}
};

}  // namespace gateway::testing
