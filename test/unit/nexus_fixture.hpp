// A loopback HTTP server for the Nexus tests: like closing_server.hpp's ScriptedServer, but it
// records each request's headers and gives the handler full control of the answer (no default
// Content-Type, a delay, or closing the socket without answering), so a test can play Temporal's
// Nexus handler, a hostile server or a slow one.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "loopback_server.hpp"

namespace gateway::testing {

struct NexusRequest {
  std::string method, path, body;                            // path with its query, as sent
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased

  // The first value of a header ("" when absent); `name` lower-case.
  std::string header(const std::string& name) const {
    for (const auto& [n, v] : headers) {
      if (n == name) return v;
    }
    return "";
  }
  int count(const std::string& name) const {
    int n = 0;
    for (const auto& h : headers) n += h.first == name;
    return n;
  }
};

struct NexusReply {
  long status = 200;
  std::string body;
  std::vector<std::string> headers;  // "Name: value" lines, Content-Type included when wanted
  int delay_ms = 0;                  // wait before answering
  bool hang_up = false;              // close the socket without an answer
};

class NexusServer {
 public:
  using Handler = std::function<NexusReply(const NexusRequest&)>;

  explicit NexusServer(Handler handler) : handler_(std::move(handler)) {
    listener_ = listen_on_loopback(port_);
    thread_ = std::thread([this] { serve(); });
  }
  ~NexusServer() {
    stop_ = true;
    ::shutdown(listener_, SHUT_RDWR);
    ::close(listener_);
    thread_.join();
  }
  NexusServer(const NexusServer&) = delete;
  NexusServer& operator=(const NexusServer&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<NexusRequest> received() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return received_;
  }

 private:
  static std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
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
      NexusRequest received;
      std::size_t length = 0;
      std::size_t line_start = request.find("\r\n") + 2;
      const std::string first = request.substr(0, line_start - 2);
      const std::size_t space1 = first.find(' ');
      const std::size_t space2 = first.find(' ', space1 + 1);
      received.method = first.substr(0, space1);
      received.path = first.substr(space1 + 1, space2 - space1 - 1);
      while (line_start < head_end) {
        std::size_t line_end = request.find("\r\n", line_start);
        const std::string line = request.substr(line_start, line_end - line_start);
        line_start = line_end + 2;
        const std::size_t colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.erase(0, 1);
        received.headers.emplace_back(lower(line.substr(0, colon)), value);
        if (received.headers.back().first == "content-length") length = std::strtoul(value.c_str(), nullptr, 10);
      }
      while (request.size() < head_end + 4 + length) {
        ssize_t n = ::read(c, buffer, sizeof buffer);
        if (n <= 0) break;
        request.append(buffer, static_cast<std::size_t>(n));
      }
      received.body = request.substr(head_end + 4);
      NexusReply reply;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        received_.push_back(received);
        reply = handler_(received);
      }
      if (reply.delay_ms > 0) {
        // Sliced, so a stopping server does not wait out a long delay.
        for (int waited = 0; waited < reply.delay_ms && !stop_; waited += 10) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
      }
      if (reply.hang_up) {
        ::close(c);
        continue;
      }
      send_reply_and_close(c, reply.status, reply.headers, reply.body);
    }
  }

  Handler handler_;
  mutable std::mutex mutex_;
  std::vector<NexusRequest> received_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace gateway::testing
