// The unit tests' loopback servers: their listening socket, and the answer they write: a status line, the given header lines, the
// body with its length, and a closed connection (one request per connection keeps them simple).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace gateway::testing {

// A listening socket on 127.0.0.1 at a port the kernel picks (written to `port`).
inline int listen_on_loopback(int& port) {
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::listen(listener, 16);
  socklen_t len = sizeof addr;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  port = ntohs(addr.sin_port);
  return listener;
}

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
