#include "nexus_call_job.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <memory>

#include "nexus_call.hpp"
#include "safe_text.hpp"
#include "url_escape.hpp"
#include "cpp_only.hpp"  // last: proves no PostgreSQL header came in above

namespace gateway::nexus {
namespace {

using sync::JobOutcome;
using sync::Verdict;

// curl gives up this long after the server would have (Request-Timeout): the server's own
// answer (408, 520) is worth more than our timeout.
constexpr long kTimeoutMarginMs = 2000;
constexpr std::size_t kMaxErrorText = 1000;

bool final_state(const std::string& s) {
  return s == "succeeded" || s == "failed" || s == "canceled" || s == "timed_out";
}

double system_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A header value that cannot end the line or the header block early.
bool header_safe(std::string_view value) {
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) return false;
  }
  return true;
}

// "Name: value" with a token name and a safe value.
bool header_line_ok(const std::string& line) {
  const std::size_t colon = line.find(':');
  if (colon == std::string::npos || colon == 0) return false;
  for (std::size_t i = 0; i < colon; ++i) {
    const auto c = static_cast<unsigned char>(line[i]);
    if (!(std::isalnum(c) || c == '-' || c == '_')) return false;
  }
  return header_safe(line);
}

// A connector's header line (auth_config "headers") that must not go out: names that frame the
// message or steer the connection (next to curl's own Content-Length, "Transfer-Encoding: gzip"
// lets a proxy in front of Temporal read the body otherwise: the shared keep-alive connection
// desyncs, a request smuggled into it), and names the call sets itself.
bool connector_header_forbidden(const std::string& line) {
  std::string name = line.substr(0, line.find(':'));
  while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.pop_back();
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const char* const kExact[] = {"transfer-encoding", "content-length", "content-encoding", "content-type",
                                       "te", "trailer", "connection", "keep-alive", "upgrade", "host", "expect",
                                       "request-timeout", "operation-timeout"};
  for (const char* n : kExact) {
    if (name == n) return true;
  }
  return name.rfind("nexus-", 0) == 0 || name.rfind("pg-gateway-", 0) == 0 || name.rfind("proxy-", 0) == 0;
}

// Milliseconds from the claim's now to the deadline (may be <= 0); nullopt without deadline.
std::optional<long long> remaining_ms(const CallRow& row) {
  if (!row.deadline) return std::nullopt;
  const double ms = std::floor((*row.deadline - row.now) * 1000.0);
  if (!(ms > -1e15 && ms < 1e15)) return ms > 0 ? 1000000000000000LL : -1;
  return static_cast<long long>(ms);
}

std::string operation_path(const CallRow& row) {
  return "/nexus/endpoints/" + url_escape(row.endpoint_id) + "/services/" + url_escape(row.service) + "/" +
         url_escape(row.operation);
}

// Request-Timeout header (and the transfer's timeout) for one request; `bound`: remaining ms.
void set_timeout(http::Request& request, long request_timeout_ms, std::optional<long long> bound) {
  std::optional<long long> ms;
  if (request_timeout_ms > 0) ms = request_timeout_ms;
  if (bound) ms = ms ? std::min(*ms, *bound) : *bound;
  if (!ms) return;
  const long long value = std::max<long long>(1, *ms);
  request.headers.push_back("Request-Timeout: " + std::to_string(value) + "ms");
  request.timeout_ms = static_cast<long>(std::min<long long>(value, 24LL * 3600 * 1000)) + kTimeoutMarginMs;
}

// What must hold before a request of this row is sent; "" when it does.
std::string request_problem(const http::Request& request, const CallRow& row,
                            const std::vector<std::string>& connector_headers) {
  if (row.service.empty() || row.operation.empty()) return "the call has no Nexus service or operation name";
  for (const std::string& line : connector_headers) {
    if (connector_header_forbidden(line)) {
      return "the connector's auth_config header " + safe_text(line.substr(0, std::min(line.find(':'), std::size_t{64})), 64) +
             " is one pg_gateway sets itself or one that frames the request; remove it from the auth_config";
    }
  }
  for (const std::string& line : request.headers) {
    if (!header_line_ok(line)) {
      const std::string name = line.substr(0, std::min(line.find(':'), std::size_t{64}));
      return "a request header (" + safe_text(name, 64) +
             ") is not a valid \"Name: value\" line (control characters, or a bad name); check the connector's "
             "auth_config headers and the interface's names";
    }
  }
  return "";
}

struct Job {
  http::Client* client = nullptr;
  CallRow row;
  CallOptions options;
  CallFinish finish;
  sync::CallObserver on_call;
  bool finished = false;
};
using JobPtr = std::shared_ptr<Job>;

std::optional<double> next_change(const Job& job, const Json& synced) {
  const bool running = synced.value("state", "") == "running" ||
                       (synced.value("state", "") == "unchanged" && job.row.state == "running");
  if (running && job.row.deadline && *job.row.deadline > job.row.now) return job.row.deadline;
  return std::nullopt;
}

void end(const JobPtr& job, JobOutcome&& outcome) {
  if (job->finished) return;
  job->finished = true;
  const std::optional<double> next = next_change(*job, outcome.synced);
  auto finish = std::move(job->finish);
  finish(std::move(outcome), next);
}

void done(const JobPtr& job, Json synced, const std::string& error = "", long status = 0) {
  JobOutcome outcome;
  outcome.verdict = Verdict::kDone;
  outcome.synced = std::move(synced);
  outcome.error = safe_text(error, kMaxErrorText);
  outcome.status = status;
  end(job, std::move(outcome));
}

void not_done(const JobPtr& job, Verdict verdict, const std::string& error, const http::Response* r = nullptr) {
  JobOutcome outcome;
  outcome.verdict = verdict;
  outcome.error = safe_text(error, kMaxErrorText);
  if (r != nullptr) {
    outcome.status = r->status;
    outcome.retry_after_s = r->retry_after_s;
  }
  outcome.synced = Json{{"state", "unchanged"}};
  end(job, std::move(outcome));
}

Json failed_with(const std::string& message, const std::string& type) {
  return Json{{"message", safe_text(message, kMaxErrorText)}, {"details", {{"type", type}}}};
}

// Submits one request; `handle` runs with the answer after the observer saw it. Anything thrown
// by our own code ends the job as a retry; a throw from the caller's `finish` goes on up.
void call(const JobPtr& job, http::Request request, std::function<void(http::Response&)> handle) {
  const std::string problem = request_problem(request, job->row, job->options.headers);
  if (!problem.empty()) {
    done(job, Json{{"state", "failed"}, {"failure", failed_with(problem, "bad_request")}}, problem);
    return;
  }
  job->client->submit(std::move(request), [job, handle = std::move(handle)](http::Response&& r) {
    try {
      if (job->on_call) job->on_call(r);
      handle(r);
    } catch (const std::exception& e) {
      if (job->finished) throw;
      not_done(job, Verdict::kRetry, std::string("internal error: ") + e.what());
    } catch (...) {
      if (job->finished) throw;
      not_done(job, Verdict::kRetry, "internal error");
    }
  });
}

// The deadline passed: cancel a started operation (best effort), then timed_out either way.
void time_out(const JobPtr& job) {
  Json synced{{"state", "timed_out"}, {"failure", failed_with("the call's deadline passed", "timed_out")}};
  if (job->row.token.empty() || job->row.endpoint_id.empty() || !valid_token(job->row.token)) {
    done(job, std::move(synced));
    return;
  }
  call(job, cancel_request(job->row, job->options), [job, synced](http::Response& r) mutable {
    if (r.status == 202) synced["cancel_sent"] = true;
    done(job, std::move(synced));
  });
}

// Cancels the running operation. `synced`: what to report on success (state running).
void cancel(const JobPtr& job, Json synced, bool after_start) {
  if (!valid_token(job->row.token)) {
    if (after_start) {
      done(job, std::move(synced));
    } else {
      not_done(job, Verdict::kDead, "the operation token recorded for this call cannot be sent in a header");
    }
    return;
  }
  call(job, cancel_request(job->row, job->options), [job, synced, after_start](http::Response& r) mutable {
    if (r.status == 202) {
      synced["cancel_sent"] = true;
      done(job, std::move(synced));
      return;
    }
    const StartAnswer a = classify_start(r);  // the same handler errors as a start
    const std::string error = "canceling the operation: " + a.error;
    if (after_start) {
      // The start's news (running, the token) must be recorded whatever the cancel's answer:
      // cancel_sent stays unset, so the cancel is asked for again.
      done(job, std::move(synced), error, r.status);
    } else {
      not_done(job, a.retryable || r.status == 0 ? Verdict::kRetry : Verdict::kDead, error, &r);
    }
  });
}

void start(const JobPtr& job) {
  call(job, start_request(job->row, job->options), [job](http::Response& r) {
    StartAnswer a = classify_start(r);
    const Json endpoint(job->row.endpoint_id);
    switch (a.kind) {
      case StartKind::kSucceeded:
        done(job, Json{{"state", "succeeded"}, {"result", std::move(a.result)}, {"links", std::move(a.links)},
                       {"endpoint_id", endpoint}});
        return;
      case StartKind::kRunning: {
        Json synced{{"state", "running"}, {"token", a.token}, {"links", std::move(a.links)}, {"endpoint_id", endpoint}};
        if (job->row.cancel_requested && !job->row.cancel_sent) {
          job->row.token = a.token;
          cancel(job, std::move(synced), /*after_start=*/true);
        } else {
          done(job, std::move(synced));
        }
        return;
      }
      case StartKind::kFailed:
      case StartKind::kCanceled:
        done(job, Json{{"state", a.kind == StartKind::kFailed ? "failed" : "canceled"}, {"failure", std::move(a.failure)},
                       {"links", std::move(a.links)}, {"endpoint_id", endpoint}});
        return;
      case StartKind::kHandlerError:
      case StartKind::kTransport:
        if (a.retryable) {
          not_done(job, Verdict::kRetry, a.error, &r);
        } else {
          done(job, Json{{"state", "failed"}, {"failure", std::move(a.failure)}, {"endpoint_id", endpoint}}, a.error,
               r.status);
        }
        return;
    }
  });
}

// Readers of the claim state: a missing or null field is the default, a wrong type an error.
struct Reader {
  const Json& state;
  std::string error;

  const Json* field(const char* name) {
    auto it = state.find(name);
    return it == state.end() || it->is_null() ? nullptr : &*it;
  }
  void wrong(const char* name, const char* what) {
    if (error.empty()) error = std::string("the call's claim state has no usable \"") + name + "\" (" + what + ")";
  }
  std::string text(const char* name, bool required = false) {
    const Json* f = field(name);
    if (f == nullptr) {
      if (required) wrong(name, "missing");
      return "";
    }
    if (!f->is_string()) {
      wrong(name, "not a string");
      return "";
    }
    return f->get<std::string>();
  }
  bool flag(const char* name) {
    const Json* f = field(name);
    if (f == nullptr) return false;
    if (!f->is_boolean()) {
      wrong(name, "not a boolean");
      return false;
    }
    return f->get<bool>();
  }
  std::optional<double> number(const char* name) {
    const Json* f = field(name);
    if (f == nullptr) return std::nullopt;
    if (!f->is_number() || !std::isfinite(f->get<double>())) {
      wrong(name, "not a number");
      return std::nullopt;
    }
    return f->get<double>();
  }
};

}  // namespace

CallRow call_row(const Json& state) {
  CallRow row;
  try {
    if (!state.is_object()) {
      row.error = "the call's claim state is not a JSON object";
      return row;
    }
    Reader r{state, {}};
    row.id = r.text("id", true);
    row.state = r.text("state", true);
    row.connector_id = r.text("connector_id");
    row.endpoint_id = r.text("endpoint_id");
    row.service = r.text("service");
    row.operation = r.text("operation");
    row.interface_type = r.text("interface_type");
    row.callable_name = r.text("callable_name");
    row.source_project_id = r.text("source_project_id");
    auto input = state.find("input");
    if (input != state.end()) row.input = *input;
    row.token = r.text("token");
    row.cancel_requested = r.flag("cancel_requested");
    row.cancel_sent = r.flag("cancel_sent");
    row.deadline = r.number("deadline");
    row.now = r.number("now").value_or(system_now());
    row.auth_config_sealed = r.text("auth_config_sealed");
    const std::optional<double> attempts = r.number("attempts");
    if (attempts && *attempts >= 0 && *attempts < 2e9) row.attempts = static_cast<int>(*attempts);
    if (r.error.empty() && (row.id.empty() || row.id.size() > 64 || !header_safe(row.id))) {
      r.error = "the call's claim state has no usable \"id\"";
    }
    row.error = safe_text(r.error, kMaxErrorText);
  } catch (const std::exception& e) {
    row.error = safe_text(std::string("the call's claim state could not be read: ") + e.what(), kMaxErrorText);
  }
  return row;
}

http::Request start_request(const CallRow& row, const CallOptions& options) {
  http::Request request;
  request.method = "POST";
  request.path = operation_path(row);
  if (!options.callback_url.empty()) request.path += "?callback=" + url_escape(callback_url_for(options.callback_url, row.id));
  request.body = row.input.dump(-1, ' ', false, Json::error_handler_t::replace);
  request.headers = {"Content-Type: application/json", "Nexus-Request-Id: " + row.id};
  request.max_body_bytes = options.max_result_bytes;
  const std::optional<long long> remaining = remaining_ms(row);
  set_timeout(request, options.request_timeout_ms, remaining);
  if (remaining) request.headers.push_back("Operation-Timeout: " + std::to_string(std::max<long long>(1, *remaining)) + "ms");
  if (!options.callback_url.empty()) {
    request.headers.push_back("Nexus-Callback-Pg-Gateway-Token: " + options.callback_token);
  }
  if (!row.interface_type.empty()) request.headers.push_back("Pg-Gateway-Interface-Type: " + row.interface_type);
  if (!row.callable_name.empty()) request.headers.push_back("Pg-Gateway-Callable: " + row.callable_name);
  if (!row.source_project_id.empty()) request.headers.push_back("Pg-Gateway-Source-Project: " + row.source_project_id);
  request.headers.insert(request.headers.end(), options.headers.begin(), options.headers.end());
  return request;
}

http::Request cancel_request(const CallRow& row, const CallOptions& options) {
  http::Request request;
  request.method = "POST";
  request.path = operation_path(row) + "/cancel";
  request.headers = {"Nexus-Operation-Token: " + row.token};
  set_timeout(request, options.request_timeout_ms, std::nullopt);
  request.headers.insert(request.headers.end(), options.headers.begin(), options.headers.end());
  return request;
}

void run_call_job(http::Client& client, const CallRow& row, const CallOptions& options, CallFinish finish,
                  sync::CallObserver on_call) {
  auto job = std::make_shared<Job>();
  job->client = &client;
  job->row = row;
  job->options = options;
  job->finish = std::move(finish);
  job->on_call = std::move(on_call);
  try {
    if (final_state(row.state)) {
      done(job, Json{{"state", "unchanged"}});  // a final state never changes
    } else if (!row.error.empty()) {
      done(job, Json{{"state", "failed"}, {"failure", failed_with(row.error, "bad_claim_state")}}, row.error);
    } else if (row.deadline && row.now >= *row.deadline) {
      time_out(job);
    } else if (row.endpoint_id.empty()) {
      const std::string message = "the connector has no Nexus endpoint now";
      done(job, Json{{"state", "failed"}, {"failure", failed_with(message, "no_endpoint")}}, message);
    } else if (row.state == "running" && !row.token.empty()) {
      if (row.cancel_requested && !row.cancel_sent) {
        cancel(job, Json{{"state", "running"}}, /*after_start=*/false);
      } else {
        done(job, Json{{"state", "unchanged"}});
      }
    } else {
      start(job);
    }
  } catch (const std::exception& e) {
    if (job->finished) throw;
    not_done(job, Verdict::kRetry, std::string("internal error: ") + e.what());
  }
}

}  // namespace gateway::nexus
