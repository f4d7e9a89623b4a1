// The job of one cross-project call (kind connector_call, target nexus): start the Nexus
// operation, cancel it, or time it out, by the call's claim state. Runs on an http::Client and
// never blocks: every callback runs from Client::perform(); `finish` runs exactly once (before
// run_call_job returns when no call is needed); `on_call`, when given, sees every answer (the
// circuit breaker judges Temporal by calls).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "http_client.hpp"
#include "sync_job.hpp"

namespace gateway::nexus {

// The claim state of a connector_call job (gateway._sync_claim('nexus', ...)).
struct CallRow {
  std::string id;                 // the call's uuid = Nexus-Request-Id
  std::string state;              // queued|started|running|succeeded|failed|canceled|timed_out
  std::string connector_id;
  std::string endpoint_id;        // "" when the connector has no Nexus endpoint now
  std::string service, operation;
  std::string interface_type;     // signal|query|update
  std::string callable_name;
  std::string source_project_id;
  nlohmann::json input;           // the body sent
  std::string token;              // the operation token ("" when none)
  bool cancel_requested = false;
  bool cancel_sent = false;
  std::optional<double> deadline; // epoch seconds; absent: no deadline
  double now = 0;                 // epoch seconds of the claim (the database's clock)
  std::string auth_config_sealed; // base64, "" when none (the PostgreSQL side unseals it)
  int attempts = 0;
  // Non-empty: the state could not be read (missing or ill-typed fields); the job ends the
  // call as failed with this message (a final call stays unchanged).
  std::string error;
};
// Never throws: a bad field is named in `error`.
CallRow call_row(const nlohmann::json& state);

struct CallOptions {
  // The callback base (gateway.callback_url, else http://<gateway.callback_listen>); the job
  // sends `<base>/nexus/calls/<call id>` (callback_url_for). Empty: no listener, no callback.
  std::string callback_url;
  std::string callback_token;         // callback_token(callback_key(), call id)
  std::vector<std::string> headers;   // "Name: value" from the connector's auth_config
  long request_timeout_ms = 30000;    // gateway.temporal_request_timeout
  // The largest start answer read (gateway.callback_max_body, as for completions): a longer
  // result is not stored (the call fails with result_too_large). 0: the client's 16 MiB bound.
  std::size_t max_result_bytes = 0;
};

// outcome.synced (connector_call):
//   {"state": "running"|"succeeded"|"failed"|"canceled"|"timed_out"|"unchanged", "token"?,
//    "result"?, "failure"?, "links"?, "cancel_sent"?: true, "endpoint_id"?}
// Verdict done for every state change; retry (error says why, synced {"state":"unchanged"})
// for retryable handler errors, transport errors and 5xx; dead only for a non-retryable
// refusal of a cancel (the call stays running). next_change: the deadline (epoch s) when the
// call is running and its deadline is ahead.
using CallFinish = std::function<void(sync::JobOutcome&&, std::optional<double> next_change)>;
void run_call_job(http::Client& client, const CallRow& row, const CallOptions& options, CallFinish finish,
                  sync::CallObserver on_call = nullptr);

// The request that starts the operation (exposed for tests); timeouts from row.now and row.deadline.
http::Request start_request(const CallRow& row, const CallOptions& options);
// The request that cancels it.
http::Request cancel_request(const CallRow& row, const CallOptions& options);

}  // namespace gateway::nexus
