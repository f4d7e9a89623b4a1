#include "temporal_target.hpp"

#include <malloc.h>

#include "../core/callback_reach.hpp"
#include "../core/temporal_endpoints.hpp"
#include "../core/temporal_sync.hpp"
#include "callback_listener.hpp"
#include "settings.hpp"
#include "worker_transaction.hpp"

namespace gateway::pg {
namespace {

using Json = nlohmann::json;

sync::JobOutcome outcome_of(sync::Verdict verdict, std::string message) {
  sync::JobOutcome outcome;
  outcome.verdict = verdict;
  outcome.error = std::move(message);
  return outcome;
}

class TemporalTarget final : public SyncTarget {
 public:
  const char* name() const override { return "temporal"; }
  const char* title() const override { return "Temporal"; }
  const char* url_setting() const override { return "gateway.temporal_url"; }
  const char* schema_probe() const override { return "gateway.project_connectors"; }
  RemoteSettings remote() const override {
    return {settings.temporal_url, settings.temporal_headers_file, settings.temporal_ca_file,
            settings.temporal_client_cert, settings.temporal_client_key,
            settings.temporal_connect_timeout_ms, settings.temporal_request_timeout_ms,
            settings.temporal_concurrency,
            {"Temporal header file", "gateway.temporal_headers_file", "Authorization: Bearer ..."},
            {"Temporal client key file", "gateway.temporal_client_key", ""}};
  }

  void client_built(http::Client&, std::function<void()>) override { owner_tag_ = owner_tag(); }

  void start_job(http::Client& client, const std::string& kind, const std::string& object_id,
                 const Json& state, JobDone done, sync::CallObserver on_call) override {
    temporal::ConnectorRow row = temporal::connector_row(state);
    row.id = object_id;  // the job's own id, whatever the state says
    auto finish = [done](sync::JobOutcome&& outcome) { done(std::move(outcome), std::nullopt); };
    if (kind == "project_connector") {
      temporal::run_connector_job(client, row, owner_tag_, finish, std::move(on_call));
    } else if (kind == "connector_test") {
      // Calls need Temporal to reach the callback listener too: a test that passes says so when
      // it cannot (a problem of this database's settings, not of the endpoint).
      std::optional<nexus::CallbackProblem> problem = nexus::callback_problem(
          settings.temporal_url != nullptr ? settings.temporal_url : "", callback_base_url());
      auto tested = [done, problem](sync::JobOutcome&& outcome) {
        if (problem && outcome.verdict == sync::Verdict::kDone && outcome.synced.is_object() &&
            outcome.synced.value("test_status", "") == "ok") {
          // No listener is a choice (synchronous calls work); one Temporal cannot reach is a fault.
          if (problem->fatal) outcome.synced["test_status"] = "failed";
          outcome.synced["test_detail"] =
              outcome.synced.value("test_detail", "") + (problem->fatal ? "; but " : "; note: ") + problem->text;
        }
        done(std::move(outcome), std::nullopt);
      };
      temporal::run_connector_test(client, row, owner_tag_, tested, std::move(on_call));
    } else {
      done(outcome_of(sync::Verdict::kDead, "unknown Temporal sync job kind " + kind), std::nullopt);
    }
  }

  void start_reconcile(http::Client& client, JobDone done, sync::CallObserver on_call) override {
    temporal::list_endpoints(client, owner_tag_, [this, &client, done, on_call](std::vector<Json>&& listed, std::string error) {
      // Runs inside the client's perform(): nothing may escape it.
      try {
        finish_reconcile(client, std::move(listed), error, done, on_call);
      } catch (const std::exception& e) {
        done(outcome_of(sync::Verdict::kRetry, std::string("pg_gateway worker: ") + e.what()), std::nullopt);
      } catch (...) {
        done(outcome_of(sync::Verdict::kRetry, "pg_gateway worker: internal error while reconciling"),
             std::nullopt);
      }
    });
  }

 private:
  void finish_reconcile(http::Client& client, std::vector<Json>&& listed, const std::string& error,
                        const JobDone& done, const sync::CallObserver& on_call) {
    if (!error.empty()) {
      done(outcome_of(sync::Verdict::kRetry, error), std::nullopt);
      return;
    }
    // Temporal was listed first, the tables are read now: an endpoint a job created after the
    // listing is recorded in nexus_endpoints by now, so it is never taken for an orphan.
    std::vector<temporal::ConnectorRow> desired, known;
    bool ok = in_transaction("pg_gateway: reading desired Temporal state", [&] {
      for (auto& r : spi_query("SELECT s FROM gateway._sync_desired_connectors() AS s")) {
        desired.push_back(temporal::connector_row(Json::parse(r[0].value_or("null"), nullptr, false)));
      }
      for (auto& r : spi_query("SELECT s FROM gateway._sync_known_endpoints() AS s")) {
        known.push_back(temporal::connector_row(Json::parse(r[0].value_or("null"), nullptr, false)));
      }
    });
    if (!ok) {
      done(outcome_of(sync::Verdict::kRetry, "could not read the desired state"), std::nullopt);
      return;
    }
    temporal::ReconcilePlan plan = temporal::plan_reconcile(desired, known, listed, owner_tag_);
    const std::size_t total = listed.size();  // ours only: the listing keeps no other
    listed.clear();
    listed.shrink_to_fit();
    malloc_trim(0);
    if (!plan.repair.empty()) {
      // One statement for every repair: a reconcile of 100,000 connectors must not make 100,000
      // round trips while the other target's engine waits for this one's step.
      std::string ids = "{";
      for (const std::string& id : plan.repair) ids += (ids.size() > 1 ? "," : "") + id;
      ids += "}";
      const bool queued = in_transaction("pg_gateway: queueing reconcile repairs", [&] {
        spi_query("SELECT count(*) FROM (SELECT gateway._sync_repair('project_connector', c)"
                  "                         FROM unnest($1::uuid[]) AS c) AS queued", {ids});
      });
      if (!queued) {
        // Reported done, the differences found would wait for the next reconcile: retry it.
        done(outcome_of(sync::Verdict::kRetry, "could not queue the reconcile's repair jobs"), std::nullopt);
        return;
      }
    }
    ereport(LOG, (errmsg("pg_gateway worker: reconciled %zu Nexus endpoints: %zu connectors to repair, %zu orphans of no connector to delete",
                         total, plan.repair.size(), plan.orphans.size())));
    temporal::delete_orphans(
        client, std::move(plan.orphans),
        [done](sync::JobOutcome&& deleted) { done(std::move(deleted), std::nullopt); }, on_call);
  }

  std::string owner_tag_;
};

}  // namespace

std::unique_ptr<SyncTarget> make_temporal_target() { return std::make_unique<TemporalTarget>(); }

}  // namespace gateway::pg
