#include "temporal_sync.hpp"

#include <map>
#include <memory>

#include "safe_text.hpp"
#include "url_escape.hpp"
#include "cpp_only.hpp"  // last: proves no PostgreSQL header came in above

namespace gateway::temporal {
namespace {

using sync::JobOutcome;
using sync::Verdict;

const std::string kEndpoints = "/cluster/nexus/endpoints";

// Calls one job may make. Every step that loops (re-read after a version conflict, create again
// after the endpoint vanished, adopt, confirm) goes through call(), so a Temporal whose answers
// keep changing, or a hostile one, ends the job with a retry instead of keeping it forever.
constexpr int kMaxCalls = 16;
// Re-reads after a version conflict before the job gives up and is retried later.
constexpr int kMaxConflicts = 3;
// Endpoints per page. Anyone with access to the cluster may make endpoints with descriptions of
// up to 20,000 bytes (more as JSON escapes or base64): 100 of them stay well inside the 16 MiB the
// client keeps of a body, where a page of 1,000 would be cut and every reconcile would fail.
constexpr int kPageSize = 100;
// A listing that goes on beyond this many pages (200,000 endpoints) is broken or hostile.
constexpr std::size_t kMaxPages = 2000;

bool ok(const http::Response& r) { return r.status >= 200 && r.status < 300; }

std::string endpoint_path(const std::string& id) { return kEndpoints + "/" + url_escape(id); }

std::string dump(const Json& value) { return value.dump(-1, ' ', false, Json::error_handler_t::replace); }

// Remote or user text quoted in a message: valid UTF-8, short.
std::string in_quotes(const std::string& text) { return "\"" + safe_text(text, 200) + "\""; }

bool is_status(const http::Response& r, long status, int code) {
  return r.status == status && parse_status(r.body).code == code;
}

struct Job {
  http::Client* client = nullptr;
  ConnectorRow row;
  std::string owner_tag;
  Json spec;
  std::function<void(JobOutcome&&)> done;
  sync::CallObserver on_call;
  bool finished = false;
  int calls = 0;
  int conflicts = 0;
  bool created = false;  // this job created the endpoint: a 404 on its GET is the registry catching up
  std::string id, version, name;  // what we know Temporal holds
};
using JobPtr = std::shared_ptr<Job>;

// The record of what Temporal holds, also on retry and dead (the engine records it whatever the
// outcome, so a created endpoint's id is never lost). Without a version there is no record: the
// table's endpoint_version is NOT NULL, and a refused outcome would turn a retry into a dead letter.
Json synced_of(const Job& job) {
  if (job.id.empty() || job.version.empty()) return Json();
  return Json{{"endpoint_id", job.id},
              {"endpoint_version", job.version.empty() ? Json() : Json(job.version)},
              // A name from an answer only when it is one (a NUL would make the outcome unstorable).
              {"endpoint_name", valid_endpoint_name(job.name) ? job.name : job.row.endpoint_name}};
}

void finish(const JobPtr& job, JobOutcome&& outcome) {
  if (job->finished) return;
  job->finished = true;
  auto done = std::move(job->done);
  done(std::move(outcome));
}

void succeed(const JobPtr& job, bool exists) {
  JobOutcome outcome;
  outcome.verdict = Verdict::kDone;
  outcome.synced = exists ? synced_of(*job) : Json();
  finish(job, std::move(outcome));
}

void fail(const JobPtr& job, Verdict verdict, const std::string& error, const http::Response* r = nullptr) {
  JobOutcome outcome;
  outcome.verdict = verdict;
  outcome.error = safe_text(error, 1000);
  if (r != nullptr) {
    outcome.status = r->status;
    outcome.retry_after_s = r->retry_after_s;
  }
  outcome.synced = synced_of(*job);
  finish(job, std::move(outcome));
}

void fail_from(const JobPtr& job, const http::Response& r, const std::string& context) {
  Verdict verdict = classify_temporal(r);
  if (verdict == Verdict::kDone) verdict = Verdict::kDead;  // a 2xx no step expected
  fail(job, verdict, context + describe_temporal(r), &r);
}

// Submits one request of the job; `handle` runs with the answer after the observer saw it. A
// throw from our own code ends the job as a retry; one from the caller's `done` goes on up.
void call(const JobPtr& job, http::Request request, std::function<void(http::Response&)> handle) {
  if (job->calls >= kMaxCalls) {
    fail(job, Verdict::kRetry,
         "the job made " + std::to_string(kMaxCalls) + " calls without settling (Temporal's answers keep changing)");
    return;
  }
  ++job->calls;
  job->client->submit(std::move(request), [job, handle = std::move(handle)](http::Response&& r) {
    try {
      if (job->on_call) job->on_call(r);
      handle(r);
    } catch (const std::exception& e) {
      if (job->finished) throw;
      fail(job, Verdict::kRetry, std::string("internal error: ") + e.what());
    }
  });
}

std::string not_ours(const std::string& id) {
  return "the Nexus endpoint " + in_quotes(id) +
         " recorded for this connector does not carry this database's ownership marker for it (edited "
         "outside pg_gateway, or the database was copied and its owner tag changed): pg_gateway neither "
         "updates nor deletes it";
}

void create(const JobPtr& job);
void read_present(const JobPtr& job);

void update(const JobPtr& job) {
  Json body{{"version", job->version}, {"spec", job->spec}};
  call(job, {"POST", endpoint_path(job->id) + "/update", dump(body)}, [job](http::Response& r) {
    if (ok(r)) {
      RemoteEndpoint e;
      const std::string error = read_endpoint_answer(r.body, e);
      if (error.empty() && e.id == job->id && !e.version.empty()) {
        job->version = e.version;
        if (!e.name.empty()) job->name = e.name;
        succeed(job, true);
      } else {
        read_present(job);  // updated, but the answer does not say to what version: read it
      }
    } else if (is_status(r, 400, kFailedPrecondition)) {
      if (++job->conflicts > kMaxConflicts) {
        fail(job, Verdict::kRetry, "the endpoint kept changing while we updated it: " + describe_temporal(r), &r);
      } else {
        read_present(job);
      }
    } else if (r.status == 404) {
      job->id.clear();  // vanished between the read and the update
      job->version.clear();
      create(job);
    } else {
      fail_from(job, r, "updating the Nexus endpoint: ");
    }
  });
}

// A GET of the job's endpoint answered 2xx: is it a usable endpoint, the one asked for, and ours
// for this connector? An unusable answer fails the job here (kFailed).
enum class ReadVerdict { kOurs, kNotOurs, kFailed };
ReadVerdict read_job_endpoint(const JobPtr& job, http::Response& r, RemoteEndpoint& e) {
  const std::string error = read_endpoint_answer(r.body, e);
  if (!error.empty()) {
    fail(job, Verdict::kDead, "Temporal's answer to reading the endpoint is not a usable endpoint: " + error, &r);
  } else if (e.id != job->id) {
    fail(job, Verdict::kDead, "Temporal answered with another endpoint than the one asked for", &r);
  } else if (e.version.empty()) {
    fail(job, Verdict::kDead, "Temporal's answer to reading the endpoint carries no version", &r);
  } else {
    return marked_connector(e.description.value_or(""), job->owner_tag) == job->row.id ? ReadVerdict::kOurs
                                                                                        : ReadVerdict::kNotOurs;
  }
  return ReadVerdict::kFailed;
}

// The endpoint as Temporal holds it now: ours for this connector, then equal to the spec or
// updated to it.
void read_present(const JobPtr& job) {
  call(job, {"GET", endpoint_path(job->id), ""}, [job](http::Response& r) {
    if (ok(r)) {
      RemoteEndpoint e;
      const ReadVerdict read = read_job_endpoint(job, r, e);
      if (read == ReadVerdict::kFailed) {
        return;
      } else if (read == ReadVerdict::kNotOurs) {
        if (job->created) {
          // The id came from a create's answer and is not ours for this connector (a hostile or
          // broken Temporal answered with another endpoint): never recorded as this connector's.
          job->id.clear();
          job->version.clear();
          fail(job, Verdict::kDead,
               "Temporal answered our create with an endpoint that does not carry this database's ownership "
               "marker for this connector",
               &r);
        } else {
          fail(job, Verdict::kDead, not_ours(e.id), &r);
        }
      } else {
        job->version = e.version;
        job->name = e.name;
        if (spec_matches(Json{{"spec", e.spec}}, job->spec)) {
          succeed(job, true);
        } else {
          update(job);
        }
      }
    } else if (r.status == 404 && job->created) {
      fail(job, Verdict::kRetry,
           "the Nexus endpoint " + in_quotes(job->id) +
               " was just created but Temporal does not find it yet; the next attempt confirms it",
           &r);
    } else if (r.status == 404) {
      job->id.clear();  // the endpoint vanished: create it again (a new id)
      job->version.clear();
      create(job);
    } else {
      fail_from(job, r, "reading the Nexus endpoint: ");
    }
  });
}

// The name is taken: the endpoint holding it is adopted only when it carries our marker for this
// very connector (a create whose answer was lost, or a record lost), else it is someone else's.
void adopt(const JobPtr& job) {
  const std::string name = job->row.endpoint_name;
  call(job, {"GET", kEndpoints + "?name=" + url_escape(name), ""}, [job, name](http::Response& r) {
    if (!ok(r)) {
      fail_from(job, r, "looking up the endpoint that holds the name: ");
      return;
    }
    ListPage page = parse_list_page(r.body);
    if (!page.error.empty()) {
      fail(job, Verdict::kDead, "looking up the endpoint that holds the name: " + page.error, &r);
      return;
    }
    for (const Json& listed : page.endpoints) {
      RemoteEndpoint e;
      if (!read_endpoint(listed, e).empty() || e.name != name) continue;
      if (marked_connector(e.description.value_or(""), job->owner_tag) != job->row.id) {
        fail(job, Verdict::kDead,
             "the Nexus endpoint name " + in_quotes(name) +
                 " is held by an endpoint pg_gateway does not own here; choose another nexus_endpoint_name",
             &r);
        return;
      }
      job->id = e.id;
      job->version = e.version;
      job->name = e.name;
      job->created = false;
      read_present(job);  // a fresh read: the listing may lag behind
      return;
    }
    fail(job, Verdict::kRetry,
         "the Nexus endpoint name " + in_quotes(name) +
             " is taken but Temporal's listing does not show it yet (it is eventually consistent)",
         &r);
  });
}

void create(const JobPtr& job) {
  call(job, {"POST", kEndpoints, dump(Json{{"spec", job->spec}})}, [job](http::Response& r) {
    if (ok(r)) {
      RemoteEndpoint e;
      const std::string error = read_endpoint_answer(r.body, e);
      if (!error.empty()) {
        fail(job, Verdict::kDead, "Temporal's answer to creating the endpoint is not a usable endpoint: " + error, &r);
        return;
      }
      job->id = e.id;
      job->version = e.version;
      job->name = e.name;
      job->created = true;
      read_present(job);  // confirm before reporting success
    } else if (is_status(r, 409, kAlreadyExists)) {
      adopt(job);
    } else {
      fail_from(job, r, "creating the Nexus endpoint: ");
    }
  });
}

void delete_endpoint(const JobPtr& job);

// Before a delete: the current version, and proof the endpoint is still ours.
void read_for_delete(const JobPtr& job) {
  call(job, {"GET", endpoint_path(job->id), ""}, [job](http::Response& r) {
    if (r.status == 404) {
      succeed(job, false);
    } else if (!ok(r)) {
      fail_from(job, r, "reading the Nexus endpoint before deleting it: ");
    } else {
      RemoteEndpoint e;
      const ReadVerdict read = read_job_endpoint(job, r, e);
      if (read == ReadVerdict::kNotOurs) {
        fail(job, Verdict::kDead, not_ours(e.id), &r);
      } else if (read == ReadVerdict::kOurs) {
        job->version = e.version;
        job->name = e.name;
        delete_endpoint(job);
      }
    }
  });
}

void delete_endpoint(const JobPtr& job) {
  call(job, {"DELETE", endpoint_path(job->id) + "?version=" + url_escape(job->version), ""}, [job](http::Response& r) {
    if (ok(r) || r.status == 404) {
      succeed(job, false);
    } else if (is_status(r, 400, kFailedPrecondition)) {
      if (++job->conflicts > kMaxConflicts) {
        fail(job, Verdict::kRetry, "the endpoint kept changing while we deleted it: " + describe_temporal(r), &r);
      } else {
        read_for_delete(job);
      }
    } else {
      fail_from(job, r, "deleting the Nexus endpoint: ");
    }
  });
}

// Why a connector has no endpoint, from what its state says.
std::string absent_reason(const ConnectorRow& row) {
  if (!row.exists) return "connector deleted";
  if (row.consent_approved == false) return "consent not approved";
  if (row.has_workers == false) return "target project has no Temporal workers row";
  // The namespace comes from the target project's workers row: known, so the row is there.
  if (!row.namespace_name.empty() && !row.consent_approved.has_value()) return "consent not approved";
  return "the connector is not active (consent not approved, or the target project has no Temporal workers row)";
}

struct Test {
  std::function<void(JobOutcome&&)> done;
  sync::CallObserver on_call;
  bool finished = false;
};

void report(const std::shared_ptr<Test>& test, bool passed, const std::string& detail) {
  if (test->finished) return;
  test->finished = true;
  JobOutcome outcome;
  outcome.verdict = Verdict::kDone;
  outcome.synced = Json{{"test_status", passed ? "ok" : "failed"}, {"test_detail", safe_text(detail, 1000)}};
  auto done = std::move(test->done);
  done(std::move(outcome));
}

void test_call(http::Client& client, const std::shared_ptr<Test>& test, http::Request request,
               std::function<void(http::Response&)> handle) {
  client.submit(std::move(request), [test, handle = std::move(handle)](http::Response&& r) {
    try {
      if (test->on_call) test->on_call(r);
      if (r.status <= 0) {
        report(test, false, describe_temporal(r));  // "Temporal did not answer: ..."
        return;
      }
      handle(r);
    } catch (const std::exception& e) {
      if (test->finished) throw;
      report(test, false, std::string("internal error: ") + e.what());
    }
  });
}

struct Listing {
  http::Client* client = nullptr;
  std::string owner_tag;  // "": keep every endpoint
  std::vector<Json> endpoints;
  std::set<std::string> tokens_seen;
  std::function<void(std::vector<Json>&&, std::string)> done;
  bool finished = false;
};

void end_listing(const std::shared_ptr<Listing>& listing, std::string error) {
  if (listing->finished) return;
  listing->finished = true;
  auto done = std::move(listing->done);
  if (!error.empty()) listing->endpoints.clear();
  done(std::move(listing->endpoints), safe_text(error, 1000));
}

void next_page(const std::shared_ptr<Listing>& listing, const std::string& token) {
  std::string path = kEndpoints + "?pageSize=" + std::to_string(kPageSize);
  if (!token.empty()) path += "&nextPageToken=" + url_escape(token);
  listing->client->submit({"GET", path, ""}, [listing](http::Response&& r) {
    try {
      if (!ok(r)) {
        end_listing(listing, "listing Nexus endpoints failed: " + describe_temporal(r));
        return;
      }
      ListPage page = parse_list_page(r.body);
      if (!page.error.empty()) {
        end_listing(listing, "listing Nexus endpoints: " + page.error);
        return;
      }
      for (Json& e : page.endpoints) {
        if (!listing->owner_tag.empty()) {
          RemoteEndpoint read;
          if (!read_endpoint(e, read).empty() ||
              !marked_connector(read.description.value_or(""), listing->owner_tag)) {
            continue;  // not ours: never compared, never kept
          }
        }
        listing->endpoints.push_back(std::move(e));
      }
      if (page.next_page_token.empty()) {
        end_listing(listing, "");
      } else if (!listing->tokens_seen.insert(page.next_page_token).second ||
                 listing->tokens_seen.size() >= kMaxPages) {
        end_listing(listing, "listing Nexus endpoints: Temporal's pages do not end (a repeated or endless next page token)");
      } else {
        next_page(listing, page.next_page_token);
      }
    } catch (const std::exception& e) {
      if (listing->finished) throw;
      end_listing(listing, std::string("listing Nexus endpoints: internal error: ") + e.what());
    }
  });
}

struct OrphanDeletion {
  http::Client* client = nullptr;
  std::vector<std::pair<std::string, std::string>> orphans;
  std::size_t next = 0;
  int skipped = 0;
  std::function<void(JobOutcome&&)> done;
  sync::CallObserver on_call;
  bool finished = false;
};

void end_deletion(const std::shared_ptr<OrphanDeletion>& d, JobOutcome&& outcome) {
  if (d->finished) return;
  d->finished = true;
  auto done = std::move(d->done);
  done(std::move(outcome));
}

void delete_next(const std::shared_ptr<OrphanDeletion>& d) {
  while (d->next < d->orphans.size()) {
    const auto& [id, version] = d->orphans[d->next];
    if (plausible_endpoint_id(id) && !version_text(Json(version)).empty()) break;
    ++d->next;  // not an endpoint we can address: never guessed at
    ++d->skipped;
  }
  if (d->next == d->orphans.size()) {
    JobOutcome outcome;
    if (d->skipped > 0) {
      outcome.error = std::to_string(d->skipped) +
                      " orphan endpoint(s) changed since they were listed or could not be addressed; "
                      "left for the next reconcile";
    }
    end_deletion(d, std::move(outcome));
    return;
  }
  const auto& [id, version] = d->orphans[d->next];
  const std::string orphan_id = id;
  d->client->submit({"DELETE", endpoint_path(id) + "?version=" + url_escape(version), ""},
                    [d, orphan_id](http::Response&& r) {
                      try {
                        if (d->on_call) d->on_call(r);
                        if (ok(r) || r.status == 404) {
                          ++d->next;
                        } else if (is_status(r, 400, kFailedPrecondition)) {
                          ++d->next;  // changed since listed (a job touched it): not ours to judge now
                          ++d->skipped;
                        } else {
                          JobOutcome outcome;
                          outcome.verdict = classify_temporal(r);
                          if (outcome.verdict == Verdict::kDone) outcome.verdict = Verdict::kDead;
                          outcome.status = r.status;
                          outcome.retry_after_s = r.retry_after_s;
                          outcome.error = safe_text(
                              "deleting the orphan Nexus endpoint " + in_quotes(orphan_id) + ": " + describe_temporal(r), 1000);
                          end_deletion(d, std::move(outcome));
                          return;
                        }
                        delete_next(d);
                      } catch (const std::exception& e) {
                        if (d->finished) throw;
                        JobOutcome outcome;
                        outcome.verdict = Verdict::kRetry;
                        outcome.error = safe_text(std::string("internal error: ") + e.what(), 1000);
                        end_deletion(d, std::move(outcome));
                      }
                    });
}

}  // namespace

void run_connector_job(http::Client& client, const ConnectorRow& row, const std::string& owner_tag,
                       std::function<void(JobOutcome&&)> done, sync::CallObserver on_call) {
  auto job = std::make_shared<Job>();
  job->client = &client;
  job->row = row;
  job->owner_tag = owner_tag;
  job->spec = endpoint_spec(row, owner_tag);
  job->done = std::move(done);
  job->on_call = std::move(on_call);
  if (!row.endpoint_id.empty() && !plausible_endpoint_id(row.endpoint_id)) {
    fail(job, Verdict::kDead, "the endpoint id recorded for this connector is not a plausible Temporal endpoint id");
    return;
  }
  job->id = row.endpoint_id;
  job->version = row.endpoint_version;
  if (!row.present) {
    if (job->id.empty()) {
      succeed(job, false);  // nothing recorded, nothing to remove
    } else {
      read_for_delete(job);
    }
    return;
  }
  if (!valid_endpoint_name(row.endpoint_name)) {
    fail(job, Verdict::kDead,
         "nexus_endpoint_name " + in_quotes(row.endpoint_name) +
             " is not a valid Nexus endpoint name (letters, digits and '-', starting with a letter and not "
             "ending with '-', at most 200 characters)");
  } else if (row.namespace_name.empty() || row.task_queue.empty()) {
    fail(job, Verdict::kDead, "the target project's Temporal workers row has no namespace or task queue");
  } else if (job->id.empty()) {
    create(job);
  } else {
    read_present(job);
  }
}

void run_connector_test(http::Client& client, const ConnectorRow& row, const std::string& owner_tag,
                        std::function<void(JobOutcome&&)> done, sync::CallObserver on_call) {
  auto test = std::make_shared<Test>();
  test->done = std::move(done);
  test->on_call = std::move(on_call);
  if (!row.exists || !row.present) {
    report(test, false, absent_reason(row));
    return;
  }
  if (row.endpoint_id.empty()) {
    report(test, false,
           "the endpoint is not created yet" + (row.sync_state.empty() ? "" : " (sync_state " + row.sync_state + ")"));
    return;
  }
  if (!plausible_endpoint_id(row.endpoint_id)) {
    report(test, false, "the endpoint id recorded for this connector is not a plausible Temporal endpoint id");
    return;
  }
  const Json spec = endpoint_spec(row, owner_tag);
  http::Client* c = &client;
  test_call(client, test, {"GET", endpoint_path(row.endpoint_id), ""}, [test, spec, row, c](http::Response& r) {
    if (r.status == 404) {
      report(test, false, "endpoint not found in Temporal");
      return;
    }
    if (!ok(r)) {
      report(test, false, describe_temporal(r));
      return;
    }
    RemoteEndpoint e;
    const std::string error = read_endpoint_answer(r.body, e);
    if (!error.empty()) {
      report(test, false, "Temporal's answer is not a usable endpoint: " + error);
      return;
    }
    const std::string difference = spec_difference(Json{{"spec", e.spec}}, spec);
    if (!difference.empty()) {
      report(test, false, "endpoint differs from the connector: " + difference);
      return;
    }
    const std::string ns = row.namespace_name;
    test_call(*c, test, {"GET", "/api/v1/namespaces/" + url_escape(ns), ""}, [test, row](http::Response& r) {
      if (r.status == 404) {
        report(test, false, "namespace " + in_quotes(row.namespace_name) + " does not exist");
      } else if (!ok(r)) {
        report(test, false, describe_temporal(r));
      } else {
        report(test, true,
               "endpoint " + in_quotes(row.endpoint_id) + " targets namespace " + in_quotes(row.namespace_name) +
                   ", task queue " + in_quotes(row.task_queue));
      }
    });
  });
}

void list_endpoints(http::Client& client, std::function<void(std::vector<Json>&&, std::string error)> done) {
  list_endpoints(client, "", std::move(done));
}

void list_endpoints(http::Client& client, const std::string& owner_tag,
                    std::function<void(std::vector<Json>&&, std::string error)> done) {
  auto listing = std::make_shared<Listing>();
  listing->client = &client;
  listing->owner_tag = owner_tag;
  listing->done = std::move(done);
  next_page(listing, "");
}

ReconcilePlan plan_reconcile(const std::vector<ConnectorRow>& desired, const std::vector<ConnectorRow>& known,
                             const std::vector<Json>& listed, const std::string& owner_tag) {
  // Our endpoints, by the connector their marker names.
  std::map<std::string, std::vector<RemoteEndpoint>> ours;
  for (const Json& entry : listed) {
    RemoteEndpoint e;
    if (!read_endpoint(entry, e).empty()) continue;
    std::optional<std::string> connector = marked_connector(e.description.value_or(""), owner_tag);
    if (connector) ours[*connector].push_back(std::move(e));
  }
  std::map<std::string, std::string> recorded;  // connector id -> endpoint id
  for (const ConnectorRow& k : known) {
    if (!k.id.empty() && !k.endpoint_id.empty()) recorded[k.id] = k.endpoint_id;
  }
  ReconcilePlan plan;
  std::set<std::string> wanted;
  for (const ConnectorRow& d : desired) {
    if (d.id.empty()) continue;
    wanted.insert(d.id);
    std::string id = d.endpoint_id;
    if (id.empty()) {
      auto it = recorded.find(d.id);
      if (it != recorded.end()) id = it->second;
    }
    auto it = ours.find(d.id);
    if (id.empty() || it == ours.end()) {
      plan.repair.insert(d.id);  // missing (or the listing lags: the job's GET decides)
      continue;
    }
    const Json spec = endpoint_spec(d, owner_tag);
    bool found = false;
    for (const RemoteEndpoint& e : it->second) {
      if (e.id != id) {
        plan.repair.insert(d.id);  // ours for this connector, but not the one recorded
      } else {
        found = true;
        if (!spec_matches(Json{{"spec", e.spec}}, spec)) plan.repair.insert(d.id);
      }
    }
    if (!found) plan.repair.insert(d.id);
  }
  for (const auto& [connector, endpoints] : ours) {
    if (wanted.count(connector)) continue;
    if (recorded.count(connector)) {
      plan.repair.insert(connector);  // its job deletes it, serialised with the connector's changes
      continue;
    }
    for (const RemoteEndpoint& e : endpoints) plan.orphans.emplace_back(e.id, e.version);
  }
  // Recorded endpoints of connectors no longer desired that the listing lacks: the job's GET
  // finds them gone (or not yet listed) and clears or deletes them.
  for (const auto& [connector, endpoint_id] : recorded) {
    if (!wanted.count(connector) && !ours.count(connector)) plan.repair.insert(connector);
  }
  return plan;
}

void delete_orphans(http::Client& client, const std::vector<std::pair<std::string, std::string>>& orphans,
                    std::function<void(JobOutcome&&)> done, sync::CallObserver on_call) {
  auto d = std::make_shared<OrphanDeletion>();
  d->client = &client;
  d->orphans = orphans;
  d->done = std::move(done);
  d->on_call = std::move(on_call);
  delete_next(d);
}

}  // namespace gateway::temporal
