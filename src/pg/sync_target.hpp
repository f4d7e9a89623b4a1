// A remote system the sync engine keeps in step with the tables (Kong, Temporal). The engine owns
// what is common: claiming, recording, backoff, dead letters, wake-up, the circuit breaker and
// the HTTP client; a target brings its settings, the mapping of a job's rows to requests, and its
// reconciliation. Each target gets its own engine, so one being down never slows the other.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "../core/http_client.hpp"
#include "../core/sync_job.hpp"

namespace gateway::pg {

// How a job ended, and when its object changes next by itself (a key's expiry; none: nullopt).
using JobDone = std::function<void(sync::JobOutcome&&, std::optional<double> next_change)>;

// The connection settings every target has (GUCs gateway.<target>_*).
struct RemoteSettings {
  const char* url;
  const char* headers_file;
  const char* ca_file;
  const char* client_cert;
  const char* client_key;
  int connect_timeout_ms;
  int request_timeout_ms;
  int concurrency;
  // How errors name the files: which target, which settings.
  http::FileRole headers_role;
  http::FileRole key_role;
};

// Client options from the settings. Throws gateway::Error when the headers or key file cannot be
// read (the engine then waits for a fixed file and a reload).
http::ClientOptions client_options(const RemoteSettings& remote);

// The tag on everything this database owns at a target: gateway.kong_owner_tag, or
// pg-gateway-<system identifier>-<database oid> (a physical standby shares it).
std::string owner_tag();

class SyncTarget {
 public:
  virtual ~SyncTarget() = default;

  // The value of gateway.sync_jobs.target, and the name people read ("Kong").
  virtual const char* name() const = 0;
  virtual const char* title() const = 0;
  virtual RemoteSettings remote() const = 0;
  // Says in a log line's hint which setting un-pauses the target.
  virtual const char* url_setting() const = 0;
  // Is this target's part of the schema installed (the extension may be at an older version)?
  virtual const char* schema_probe() const = 0;

  // The engine built a new client (settings changed). `claim_again` asks the engine to look for
  // jobs (e.g. after a probe of the target finished).
  virtual void client_built(http::Client& client, std::function<void()> claim_again) {
    (void)client;
    (void)claim_again;
  }
  // Starts the job of `kind` for `object_id`; `state` is what _sync_claim returned for it.
  // `done` runs exactly once (from Client::perform or right away); throwing means the job's own
  // code failed (the engine retries it later).
  virtual void start_job(http::Client& client, const std::string& kind, const std::string& object_id,
                         const nlohmann::json& state, JobDone done, sync::CallObserver on_call) = 0;
  // A full comparison with what the target holds: queues repair jobs, deletes orphans of ours.
  virtual void start_reconcile(http::Client& client, JobDone done, sync::CallObserver on_call) = 0;
};

}  // namespace gateway::pg
