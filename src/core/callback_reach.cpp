#include "callback_reach.hpp"

#include <cctype>

namespace gateway::nexus {

std::string url_host(const std::string& url) {
  std::size_t start = url.find("://");
  start = start == std::string::npos ? 0 : start + 3;
  std::size_t end = url.find_first_of("/?#", start);
  std::string authority = url.substr(start, end == std::string::npos ? std::string::npos : end - start);
  const std::size_t at = authority.rfind('@');
  if (at != std::string::npos) authority.erase(0, at + 1);
  std::string host;
  if (!authority.empty() && authority[0] == '[') {
    const std::size_t close = authority.find(']');
    host = authority.substr(1, close == std::string::npos ? std::string::npos : close - 1);
  } else {
    host = authority.substr(0, authority.find(':'));
  }
  for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return host;
}

bool is_loopback_host(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1" ||
         (host.size() > 10 && host.compare(host.size() - 10, 10, ".localhost") == 0);
}

std::optional<CallbackProblem> callback_problem(const std::string& temporal_url, const std::string& callback_base) {
  if (callback_base.empty()) {
    return CallbackProblem{"no callback listener is configured (gateway.callback_listen): an asynchronous "
                           "operation's completion cannot arrive, so such calls end timed_out",
                           false};
  }
  const std::string callback_host = url_host(callback_base);
  const std::string temporal_host = url_host(temporal_url);
  if (is_loopback_host(callback_host) && !temporal_host.empty() && !is_loopback_host(temporal_host)) {
    return CallbackProblem{"Temporal (" + temporal_host + ") cannot reach the callback listener at " +
                               callback_base +
                               ", a loopback address of the database host: set gateway.callback_url to an "
                               "address Temporal reaches, and allow it in Temporal's callback.allowedAddresses",
                           true};
  }
  return std::nullopt;
}

}  // namespace gateway::nexus
