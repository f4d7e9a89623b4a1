#include "nexus_call_target.hpp"

#include <sodium.h>

#include <cctype>
#include <cstring>
#include <map>

#include "../core/nexus_call.hpp"
#include "../core/nexus_call_job.hpp"
#include "callback_listener.hpp"
#include "credentials.hpp"
#include "secrets.hpp"
#include "settings.hpp"
#include "worker_transaction.hpp"

namespace gateway::pg {
namespace {

using Json = nlohmann::json;

sync::JobOutcome call_failed(const std::string& message) {
  sync::JobOutcome outcome;
  outcome.synced = {{"state", "failed"},
                    {"failure",
                     {{"message", message},
                      {"metadata", {{"type", "nexus.HandlerError"}}},
                      {"details", {{"type", "pg_gateway"}}}}}};
  return outcome;
}

std::string from_base64(const std::string& text) {
  std::string out(text.size(), '\0');
  std::size_t len = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(), text.size(),
                        nullptr, &len, nullptr, sodium_base64_VARIANT_ORIGINAL) != 0) {
    return {};
  }
  out.resize(len);
  return out;
}

// A header a connector's auth config may set: an HTTP token for a name, no line break in the value
// (which would smuggle a second header in), and none of the headers the call itself sets.
bool header_ok(const std::string& name, const std::string& value) {
  if (name.empty() || name.size() > 256 || value.size() > 8192) return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || std::strchr("!#$%&'*+-.^_`|~", c) != nullptr)) return false;
  }
  for (char c : value) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  std::string lower;
  for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  // Also none that frames the message or steers the connection (the core job refuses them too):
  // next to curl's own Content-Length, "Transfer-Encoding: gzip" desyncs a proxy in front of Temporal.
  static const char* const kFraming[] = {"transfer-encoding", "content-encoding", "te", "trailer", "connection",
                                         "keep-alive", "upgrade", "expect"};
  for (const char* n : kFraming) {
    if (lower == n) return false;
  }
  return lower.rfind("nexus-", 0) != 0 && lower.rfind("pg-gateway-", 0) != 0 && lower.rfind("proxy-", 0) != 0 &&
         lower != "request-timeout" && lower != "operation-timeout" && lower != "content-type" &&
         lower != "content-length" && lower != "host";
}

class NexusCallTarget final : public SyncTarget {
 public:
  const char* name() const override { return "nexus"; }
  const char* title() const override { return "Nexus calls"; }
  const char* url_setting() const override { return "gateway.temporal_url"; }
  const char* schema_probe() const override { return "gateway.connector_calls"; }
  RemoteSettings remote() const override {
    return {settings.temporal_url, settings.temporal_headers_file, settings.temporal_ca_file,
            settings.temporal_client_cert, settings.temporal_client_key,
            settings.temporal_connect_timeout_ms, settings.temporal_request_timeout_ms,
            settings.nexus_concurrency,
            {"Temporal header file", "gateway.temporal_headers_file", "Authorization: Bearer ..."},
            {"Temporal client key file", "gateway.temporal_client_key", ""}};
  }

  void client_built(http::Client&, std::function<void()>) override { auth_cache_.clear(); }

  void start_job(http::Client& client, const std::string& kind, const std::string& object_id,
                 const Json& state, JobDone done, sync::CallObserver on_call) override {
    if (kind != "connector_call") {
      sync::JobOutcome dead;
      dead.verdict = sync::Verdict::kDead;
      dead.error = "unknown Nexus call job kind " + kind;
      done(std::move(dead), std::nullopt);
      return;
    }
    if (state.is_object() && state.value("state", "") == "gone") {
      done(sync::JobOutcome{}, std::nullopt);  // pruned meanwhile: nothing to do
      return;
    }
    nexus::CallRow row = nexus::call_row(state);
    row.id = object_id;  // the job's own id, whatever the state says

    nexus::CallOptions options;
    options.request_timeout_ms = settings.temporal_request_timeout_ms;
    // A result is bounded alike whichever way it comes (the start's answer or a completion).
    options.max_result_bytes = static_cast<std::size_t>(settings.callback_max_body);
    const std::string base = callback_base_url();
    if (!base.empty()) {
      options.callback_url = base;  // the job appends /nexus/calls/<id>
      options.callback_token = nexus::callback_token(callback_key(), object_id);
    }
    std::string auth_error;
    if (!auth_headers(state, options.headers, auth_error)) {
      done(call_failed(auth_error), std::nullopt);
      return;
    }
    nexus::run_call_job(client, row, options, std::move(done), std::move(on_call));
  }

  // No remote inventory to compare: the calls' own safety net. Every open call without a job
  // (none in a healthy database) gets one again.
  void start_reconcile(http::Client&, JobDone done, sync::CallObserver) override {
    int requeued = 0;
    bool ok = in_transaction("pg_gateway: looking for open calls without a job", [&] {
      auto rows = spi_query("SELECT gateway._connector_calls_requeue()");
      if (!rows.empty() && rows[0][0]) requeued = std::stoi(*rows[0][0]);
    });
    if (!ok) {
      sync::JobOutcome retry;
      retry.verdict = sync::Verdict::kRetry;
      retry.error = "could not look for open calls without a job";
      done(std::move(retry), std::nullopt);
      return;
    }
    if (requeued > 0) {
      ereport(LOG, (errmsg("pg_gateway worker: %d open Nexus calls had no job and were queued again", requeued)));
    }
    done(sync::JobOutcome{}, std::nullopt);
  }

 private:
  // The connector auth config's "headers" object as request header lines, opened once per sealed
  // value (a changed auth config is a new value). False: the call cannot be authenticated.
  bool auth_headers(const Json& state, std::vector<std::string>& headers, std::string& error) {
    if (!state.is_object() || !state.contains("auth_config_sealed") || !state["auth_config_sealed"].is_string()) {
      return true;
    }
    const std::string sealed = state["auth_config_sealed"].get<std::string>();
    const std::string connector = state.value("connector_id", std::string());
    auto cached = auth_cache_.find(connector);
    if (cached != auth_cache_.end() && cached->second.first == sealed) {
      headers = cached->second.second;
      return true;
    }
    std::vector<std::string> lines;
    std::string failure;
    bool ok = in_transaction("pg_gateway: opening a connector's auth config", [&] {
      try {
        SecureBuffer plain = open_sealed(from_base64(sealed), "project_connector:" + connector);
        Json config = Json::parse(plain.data(), plain.data() + plain.size(), nullptr, false);
        if (config.is_object() && config.contains("headers")) {
          const Json& h = config["headers"];
          if (!h.is_object()) {
            failure = "the connector's auth_config \"headers\" must be an object of header names to values";
            return;
          }
          for (auto it = h.begin(); it != h.end(); ++it) {
            if (!it.value().is_string() || !header_ok(it.key(), it.value().get<std::string>())) {
              failure = "the connector's auth_config header \"" + it.key() + "\" is not a valid header";
              return;
            }
            lines.push_back(it.key() + ": " + it.value().get<std::string>());
          }
        }
      } catch (const std::exception& e) {
        failure = std::string("the connector's auth_config could not be opened: ") + e.what();
      }
    });
    if (!ok && failure.empty()) failure = "the connector's auth_config could not be read";
    if (!failure.empty()) {
      error = failure;
      return false;
    }
    if (auth_cache_.size() >= 256) auth_cache_.clear();
    auth_cache_[connector] = {sealed, lines};
    headers = std::move(lines);
    return true;
  }

  // Connector id -> (sealed value, its header lines).
  std::map<std::string, std::pair<std::string, std::vector<std::string>>> auth_cache_;
};

}  // namespace

std::unique_ptr<SyncTarget> make_nexus_call_target() { return std::make_unique<NexusCallTarget>(); }

}  // namespace gateway::pg
