// Can Temporal reach the callback listener? Temporal calls back the URL the worker gives it: a
// loopback address there works only when Temporal runs on the database's own host. The connector
// test says so rather than letting every asynchronous call run into its deadline.
#pragma once

#include <optional>
#include <string>

namespace gateway::nexus {

// The host of an http(s) URL, lower-cased, without port or brackets ("" when it has none).
std::string url_host(const std::string& url);

bool is_loopback_host(const std::string& host);

struct CallbackProblem {
  std::string text;
  bool fatal;  // calls cannot work as configured (not merely: no listener, so no async completions)
};

// A problem with the callback URL for a Temporal at `temporal_url`, or nullopt when none is seen.
// `callback_base` empty: no listener is configured.
std::optional<CallbackProblem> callback_problem(const std::string& temporal_url, const std::string& callback_base);

}  // namespace gateway::nexus
