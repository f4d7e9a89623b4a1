// Making Temporal's Nexus endpoints match the connectors (a job per connector), testing a
// connector, and finding every difference between Temporal and the tables (reconciliation).
// Runs on an http::Client; never blocks. Every callback runs from Client::perform(); `done` runs
// exactly once; `on_call`, when given, sees every answer (the circuit breaker judges Temporal by
// calls, not by whole jobs). When no call is needed (nothing to do, or a row that cannot be
// synced) `done` runs before the function returns, as kong_sync's run_job does.
#pragma once

#include <functional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "http_client.hpp"
#include "sync_job.hpp"
#include "temporal_endpoints.hpp"

namespace gateway::temporal {

// Present, no endpoint recorded: create, then confirm with a GET (a 404 right after the create is
// a retry that still records the new id in `synced`). The name taken (409 code 6): adopt the
// endpoint of that name only when it carries our marker for this very connector, else dead.
// Present, endpoint recorded: GET it; gone -> create again; differs -> update with the version
// just read (a version conflict re-reads, at most 3 times, then retry). Never delete-and-recreate.
// Not present: delete the recorded endpoint with the version of a fresh GET (gone counts as
// done); nothing recorded -> done. An endpoint at the recorded id without our marker for this
// connector is never updated or deleted (dead).
// outcome.synced: {"endpoint_id","endpoint_version","endpoint_name"} (strings) when the endpoint
// exists now, null when it does not (done); on retry and dead the same object whenever the id is
// known, so a created endpoint's id is never lost.
void run_connector_job(http::Client& client, const ConnectorRow& row, const std::string& owner_tag,
                       std::function<void(sync::JobOutcome&&)> done, sync::CallObserver on_call = nullptr);

// The connector test: the connector exists and is present, its endpoint exists, matches the
// connector, and its target namespace exists. Always verdict done, with
// synced = {"test_status": "ok"|"failed", "test_detail": "..."}.
void run_connector_test(http::Client& client, const ConnectorRow& row, const std::string& owner_tag,
                        std::function<void(sync::JobOutcome&&)> done, sync::CallObserver on_call = nullptr);

// Every Nexus endpoint, page by page (pageSize=100: pages of large descriptions must fit the client), trimmed to id, version and spec. `error` is
// set (and the list empty) for a failed call, a page that is not a page, or pages that do not end.
void list_endpoints(http::Client& client, std::function<void(std::vector<Json>&&, std::string error)> done);
// The same, keeping only the endpoints that carry `owner_tag`'s marker (for any connector): a
// shared cluster's other endpoints are never held in memory (plan_reconcile ignores them anyway).
void list_endpoints(http::Client& client, const std::string& owner_tag,
                    std::function<void(std::vector<Json>&&, std::string error)> done);

struct ReconcilePlan {
  std::set<std::string> repair;  // connector ids whose job should run
  std::vector<std::pair<std::string, std::string>> orphans;  // endpoint id, version: ours, no connector
};

// `desired`: every connector that should have an endpoint (present); `known`: every recorded
// endpoint (connector id, endpoint_id, ...); `listed`: list_endpoints. Only endpoints carrying our
// marker count. A desired connector whose endpoint is missing from the list, differs, or is listed
// under another id than recorded is repaired, as is a known connector no longer desired whose
// endpoint is still listed or recorded (its job deletes it). An endpoint of ours whose connector
// is neither desired nor known is an orphan.
ReconcilePlan plan_reconcile(const std::vector<ConnectorRow>& desired, const std::vector<ConnectorRow>& known,
                             const std::vector<Json>& listed, const std::string& owner_tag);

// Deletes orphans one after the other with the version they were listed with. An orphan gone
// already counts as deleted; one changed since it was listed (version conflict) is left for the
// next reconcile. done: verdict done, or the first failure's verdict and message.
void delete_orphans(http::Client& client, const std::vector<std::pair<std::string, std::string>>& orphans,
                    std::function<void(sync::JobOutcome&&)> done, sync::CallObserver on_call = nullptr);

}  // namespace gateway::temporal
