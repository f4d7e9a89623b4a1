#include "kong_target.hpp"

#include <malloc.h>
#include <sodium.h>

#include <chrono>

#include "../core/kong_mapping.hpp"
#include "../core/kong_sync.hpp"
#include "key_handoff.hpp"
#include "settings.hpp"
#include "worker_transaction.hpp"

namespace gateway::pg {
namespace {

using kong::Json;

std::optional<double> number_or_null(const Json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  if (j[key].is_number()) return j[key].get<double>();
  if (j[key].is_string()) return std::stod(j[key].get<std::string>());  // numeric as text
  return std::nullopt;
}

kong::InterfaceRow interface_row(const std::string& id, const Json& state) {
  kong::InterfaceRow row;
  row.id = id;
  if (!state.is_object()) return row;  // gone
  row.exists = true;
  row.is_public = state.value("is_public", false);
  row.http_method = state.value("http_method", "POST");
  row.http_path = state.value("http_path", "");
  row.auth_type = state.value("auth_type", "api_key");
  if (auto limit = number_or_null(state, "rate_limit_per_minute")) {
    row.rate_limit_per_minute = static_cast<std::int64_t>(*limit);
  }
  return row;
}

std::vector<std::uint8_t> from_base64(const std::string& text) {
  std::vector<std::uint8_t> out(text.size());
  std::size_t len = 0;
  if (sodium_base642bin(out.data(), out.size(), text.data(), text.size(), "\n\r ", &len, nullptr,
                        sodium_base64_VARIANT_ORIGINAL) != 0) {
    return {};
  }
  out.resize(len);
  return out;
}

// The key row; opens the sealed key when there is one. Throws std::runtime_error when the sealed
// key does not open (that job is dead: the message says why).
kong::KeyRow key_row(const std::string& id, const Json& state) {
  kong::KeyRow row;
  row.id = id;
  if (!state.is_object()) return row;
  row.exists = true;
  row.is_active = state.value("is_active", false);
  if (state.contains("public_interface_id") && state["public_interface_id"].is_string()) {
    row.interface_id = state["public_interface_id"].get<std::string>();
  }
  row.revoked_at = number_or_null(state, "revoked_at");
  row.expires_at = number_or_null(state, "expires_at");
  if (state.contains("sealed_key") && state["sealed_key"].is_string()) {
    row.has_sealed_key = true;
    std::optional<SecureBuffer> plain =
        open_key_handoff(from_base64(state["sealed_key"].get<std::string>()), id);
    if (!plain) {
      throw std::runtime_error(
          "the key sealed for Kong does not open with this server's master key; rotate the key "
          "(gateway.api_key_rotate)");
    }
    row.plaintext = std::make_shared<const SecureBuffer>(std::move(*plain));
  }
  return row;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

sync::JobOutcome dead(std::string message) {
  sync::JobOutcome outcome;
  outcome.verdict = sync::Verdict::kDead;
  outcome.error = std::move(message);
  return outcome;
}

sync::JobOutcome retry(std::string message) {
  sync::JobOutcome outcome;
  outcome.verdict = sync::Verdict::kRetry;
  outcome.error = std::move(message);
  return outcome;
}

class KongTarget final : public SyncTarget {
 public:
  const char* name() const override { return "kong"; }
  const char* title() const override { return "Kong"; }
  const char* url_setting() const override { return "gateway.kong_admin_url"; }
  const char* schema_probe() const override { return "gateway._sync_claim"; }
  RemoteSettings remote() const override {
    return {settings.kong_admin_url, settings.kong_admin_headers_file, settings.kong_ca_file,
            settings.kong_client_cert, settings.kong_client_key, settings.kong_connect_timeout_ms,
            settings.kong_request_timeout_ms, settings.sync_concurrency,
            {"Kong Admin API header file", "gateway.kong_admin_headers_file", "Kong-Admin-Token: ..."},
            {"Kong client key file", "gateway.kong_client_key", ""}};
  }

  void client_built(http::Client& client, std::function<void()> claim_again) override {
    mapping_.owner_tag = owner_tag();
    mapping_.upstream_url = settings.kong_upstream_url != nullptr ? settings.kong_upstream_url : "";
    check_kong_mode(client, std::move(claim_again));
  }

  void start_job(http::Client& client, const std::string& kind, const std::string& object_id,
                 const Json& state, JobDone done, sync::CallObserver on_call) override {
    if (dbless_) {
      done(dead("Kong runs in DB-less mode (GET / says database = off): its Admin API cannot "
                "change configuration. Point gateway.kong_admin_url at a Kong node with a "
                "database, then gateway.sync_retry() this job."),
           std::nullopt);
      return;
    }
    kong::Desired desired;
    Json synced;
    try {
      if (state.is_object() && state.contains("synced")) synced = state["synced"];
      if (kind == "public_interface") {
        desired = kong::desired_for_interface(interface_row(object_id, state), mapping_);
      } else if (kind == "api_key") {
        desired = kong::desired_for_key(key_row(object_id, state), mapping_, now_s());
      } else {
        done(dead("unknown Kong sync job kind " + kind), std::nullopt);
        return;
      }
    } catch (const std::exception& e) {
      done(dead(e.what()), std::nullopt);
      return;
    }
    std::optional<double> next_change = desired.next_change;
    sync::run_job(
        client, desired, synced,
        [done, next_change](sync::JobOutcome&& outcome) { done(std::move(outcome), next_change); },
        std::move(on_call));
    // A key to deliver, if any, is now held only by the job's step (guarded memory, wiped when
    // the step has its answer) and then by the client's request body (wiped when sent).
  }

  void start_reconcile(http::Client& client, JobDone done, sync::CallObserver on_call) override {
    sync::list_inventory(client, mapping_.owner_tag,
                         [this, &client, done, on_call](sync::Inventory&& inventory, std::string error) {
                           // Runs inside the client's perform(): nothing may escape it.
                           try {
                             finish_reconcile(client, std::move(inventory), error, done, on_call);
                           } catch (const std::exception& e) {
                             done(retry(std::string("pg_gateway worker: ") + e.what()), std::nullopt);
                           } catch (...) {
                             done(retry("pg_gateway worker: internal error while reconciling"), std::nullopt);
                           }
                         });
  }

 private:
  // Kong in DB-less mode cannot be configured through the Admin API: every job would fail with
  // 405. Detected up front (GET /) and reported as a permanent error on each job.
  void check_kong_mode(http::Client& client, std::function<void()> claim_again) {
    client.submit({"GET", "/", ""}, [this, &client, claim_again](http::Response&& r) {
      if (r.status != 200) return;  // down or odd: jobs will tell
      Json root = Json::parse(r.body, nullptr, false);
      bool dbless = root.is_object() && root.contains("configuration") &&
                    root["configuration"].is_object() &&
                    root["configuration"].value("database", "") == "off";
      if (dbless && !dbless_) {
        ereport(WARNING, (errmsg("pg_gateway: Kong at %s runs in DB-less mode", client.options().base_url.c_str()),
                          errdetail("Its Admin API cannot change configuration (database = off)."),
                          errhint("Point gateway.kong_admin_url at a Kong node with a database.")));
      }
      dbless_ = dbless;
      claim_again();
    });
  }

  void finish_reconcile(http::Client& client, sync::Inventory&& inventory, const std::string& error,
                        const JobDone& done, const sync::CallObserver& on_call) {
    sync::JobOutcome outcome;
    if (!error.empty()) {
      outcome.verdict = sync::Verdict::kRetry;
      outcome.error = error;
      done(std::move(outcome), std::nullopt);
      return;
    }
    // Kong was listed first, the tables are read now: an object a job created after our listing
    // is not in the listing, so it cannot be mistaken for an orphan. Unwanted objects of a row
    // are left to the row's job (queued below with the repairs); only objects of no row are
    // deleted here, and no job can create those again.
    std::vector<sync::DesiredRow> rows;
    const double now = now_s();
    bool ok = in_transaction("pg_gateway: reading desired Kong state", [&] {
      for (auto& r : spi_query("SELECT s FROM gateway._sync_desired_interfaces() AS s")) {
        Json state = Json::parse(r[0].value_or("null"), nullptr, false);
        std::string id = state.value("id", "");
        rows.push_back({{"public_interface", id}, kong::desired_for_interface(interface_row(id, state), mapping_)});
      }
      for (auto& r : spi_query("SELECT s FROM gateway._sync_desired_keys() AS s")) {
        Json state = Json::parse(r[0].value_or("null"), nullptr, false);
        std::string id = state.value("id", "");
        // Reconcile compares; it sends keys only through the key's job, so it never opens one.
        state.erase("sealed_key");
        kong::KeyRow key = key_row(id, state);
        rows.push_back({{"api_key", id}, kong::desired_for_key(key, mapping_, now)});
      }
    });
    if (!ok) {
      outcome.verdict = sync::Verdict::kRetry;
      outcome.error = "could not read the desired state";
      done(std::move(outcome), std::nullopt);
      return;
    }
    sync::ReconcilePlan plan = sync::plan_reconcile(rows, inventory);
    std::size_t total = 0;
    for (const auto& [collection, objects] : inventory) total += objects.size();
    inventory.clear();
    rows.clear();
    rows.shrink_to_fit();
    // A large listing leaves freed heap behind; hand it back so the worker stays small between
    // reconciles.
    malloc_trim(0);
    queue_repairs(plan.repair);
    ereport(LOG, (errmsg("pg_gateway worker: reconciled %zu Kong objects: %zu rows to repair, %zu orphans of no row to delete",
                         total, plan.repair.size(), plan.orphans.size())));
    // Orphans go children first; each waits for the one before, like a job's deletes.
    kong::Desired removal;
    removal.absent = std::move(plan.orphans);
    // The reconcile job's own outcome touches no row: _sync_finish ignores key and fingerprint.
    sync::run_job(
        client, removal, Json(),
        [done](sync::JobOutcome&& deleted) { done(std::move(deleted), std::nullopt); }, on_call);
  }

  static void queue_repairs(const std::set<sync::RowRef>& repair) {
    if (repair.empty()) return;
    in_transaction("pg_gateway: queueing reconcile repairs", [&] {
      for (const sync::RowRef& ref : repair) {
        spi_query("SELECT gateway._sync_repair($1, $2::uuid)", {ref.kind, ref.id});
      }
    });
  }

  kong::MappingSettings mapping_;
  bool dbless_ = false;
};

}  // namespace

std::unique_ptr<SyncTarget> make_kong_target() { return std::make_unique<KongTarget>(); }

}  // namespace gateway::pg
