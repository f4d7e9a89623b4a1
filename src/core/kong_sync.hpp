// Making Kong match the desired objects of one row (a job), and finding every difference between
// Kong and the tables (reconciliation). Runs on an http::Client; never blocks.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <string>
#include <utility>
#include <vector>

#include "http_client.hpp"
#include "kong_mapping.hpp"
#include "retry_policy.hpp"
#include "sync_job.hpp"

namespace gateway::sync {

// Upserts the present objects in order (PUT), then deletes the absent ones in order (DELETE,
// "already gone" counts as done). A key-auth credential whose key was already handed over is
// only checked (GET): if Kong lost it, the job is dead with a hint to rotate the key.
// `synced` is what the last successful job recorded (JobOutcome::synced; null: unknown): objects
// whose fingerprint is unchanged are not sent again and objects never created are not deleted,
// so a change costs only the writes it needs. Reconciliation, which compares with what Kong holds,
// clears it for rows whose objects drifted.
// A key to hand over travels as the step's KeySecret and is spliced into the request body only
// when that request is submitted; the step lets go of it once the answer is read (the answer's
// echo of the key is overwritten first), and the client wipes the body once sent.
// The requests run_job would send, in order (for tests: a body that carries a key is a plain
// copy of it).
std::vector<http::Request> planned_requests(const kong::Desired& desired, const kong::Json& synced);

// `done` runs exactly once, from Client::perform(); `on_call`, when given, sees every answer
// (the circuit breaker judges the target by calls, not by whole jobs).
void run_job(http::Client& client, const kong::Desired& desired, const kong::Json& synced,
             std::function<void(JobOutcome&&)> done, CallObserver on_call = nullptr);

// Everything Kong holds under our tag, per collection, listed page by page (size 1000).
using Inventory = std::map<std::string, std::vector<kong::Json>>;
void list_inventory(http::Client& client, const std::string& owner_tag,
                    std::function<void(Inventory&&, std::string error)> done);

// A row whose Kong objects differ from what they should be: its job repairs it.
struct RowRef {
  std::string kind;  // public_interface, api_key
  std::string id;
  bool operator<(const RowRef& o) const { return std::tie(kind, id) < std::tie(o.kind, o.id); }
};

struct DesiredRow {
  RowRef row;
  kong::Desired desired;
};

struct ReconcilePlan {
  // Rows to enqueue a job for: their objects drifted, or Kong holds objects of theirs that they
  // do not want (the job deletes those, serialised with every other change to the row).
  std::set<RowRef> repair;
  // Tagged objects that belong to no row at all, in delete order: no job can ever create them
  // again, so the reconcile deletes them itself.
  std::vector<kong::KongObject> orphans;
};

// `rows`: every row that should have objects in Kong, and any other rows at hand (their
// `desired.absent` lets their unwanted objects be attributed to them). Compares only the fields
// we own, so Kong's defaults never count as drift. An unwanted object belongs to a row when its
// id is one of that row's object ids (kong::objects_of), the row found among `rows` or by the
// name of a service, route (gw-<id>) or consumer (gw-key-<id>) in the inventory. Orphans are
// ordered children first.
ReconcilePlan plan_reconcile(const std::vector<DesiredRow>& rows, const Inventory& inventory);

}  // namespace gateway::sync
