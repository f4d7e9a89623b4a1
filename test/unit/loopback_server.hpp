// The answer the unit tests' loopback servers write: a status line, the given header lines, the
// body with its length, and a closed connection (one request per connection keeps them simple).
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace gateway::testing {

inline void send_reply_and_close(int fd, long status, const std::vector<std::string>& headers,
                                 const std::string& body) {
  std::string answer = "HTTP/1.1 " + std::to_string(status) + " X\r\n";
  for (const std::string& h : headers) answer += h + "\r\n";
  answer += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  answer += body;
  std::size_t sent = 0;
  while (sent < answer.size()) {
    ssize_t n = ::send(fd, answer.data() + sent, answer.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
  }
  ::close(fd);
}

}  // namespace gateway::testing
