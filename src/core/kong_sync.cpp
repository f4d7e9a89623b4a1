#include "kong_sync.hpp"

#include <sodium.h>

#include <set>

#include <algorithm>
#include <cctype>
#include <iterator>
#include <memory>
#include <string_view>
#include <tuple>

#include "url_escape.hpp"
#include "cpp_only.hpp"  // last: proves no PostgreSQL header came in above

namespace gateway::sync {
namespace {

using kong::Json;
using kong::KongObject;

struct Step {
  http::Request request;
  bool missing_ok = false;
  bool checks_credential = false;
  // The key this PUT hands over: spliced into the body only when the request is submitted, and
  // let go of as soon as its answer has been read, so no copy waits in the job's steps.
  kong::KeySecret key;
};

// `fields` as JSON with "key" added, in one buffer sized up front: no reallocation leaves a
// partial copy of the key behind in freed memory. The client wipes the body once it is sent.
std::string body_with_key(const std::string& fields_json, const SecureBuffer& key) {
  std::string body;
  body.reserve(fields_json.size() + 10 + 6 * key.size());
  body.append(fields_json, 0, fields_json.size() - 1);  // without the closing brace
  body.append(fields_json.size() > 2 ? ",\"key\":\"" : "\"key\":\"");
  static const char hex[] = "0123456789abcdef";
  for (std::size_t i = 0; i < key.size(); ++i) {
    unsigned char c = key.data()[i];
    if (c == '"' || c == '\\' || c < 0x20) {
      const char escaped[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      body.append(escaped, sizeof escaped);
    } else {
      body.push_back(static_cast<char>(c));
    }
  }
  body.append("\"}");
  return body;
}

// Kong echoes a credential's key in its answer (and in a unique violation's message): overwrite
// it in place before the answer is parsed, classified or described.
void redact_key(std::string& body, const SecureBuffer& key) {
  if (key.size() == 0) return;
  const std::string_view secret(reinterpret_cast<const char*>(key.data()), key.size());
  for (std::size_t at = std::string_view(body).find(secret); at != std::string_view::npos;
       at = std::string_view(body).find(secret, at + secret.size())) {
    body.replace(at, secret.size(), secret.size(), '*');
  }
}

std::vector<Step> steps_for(const kong::Desired& desired, const Json& synced) {
  const bool known = synced.is_object();
  auto unchanged = [&](const KongObject& o) {
    auto it = known ? synced.find(o.path) : synced.end();
    return known && it != synced.end() && *it == kong::fingerprint(o);
  };
  std::vector<Step> steps;
  for (const KongObject& o : desired.present) {
    if (o.carries_key()) {
      steps.push_back(Step{{"PUT", o.path, o.fields.dump()}, false, false, o.key});
    } else if (unchanged(o)) {
      continue;
    } else if (o.collection == "key-auths") {
      steps.push_back(Step{{"GET", o.path, ""}, false, true, nullptr});
    } else {
      steps.push_back(Step{{"PUT", o.path, o.fields.dump()}, false, false, nullptr});
    }
  }
  for (const KongObject& o : desired.absent) {
    if (known && !synced.contains(o.path)) continue;  // we never created it
    steps.push_back(Step{{"DELETE", o.path, ""}, true, false, nullptr});
  }
  return steps;
}

struct JobState {
  http::Client* client;
  std::vector<Step> steps;
  Json fingerprints;  // recorded as JobOutcome::synced when every step succeeded
  std::size_t next = 0;
  bool delivers_key_when_done = false;
  JobOutcome outcome;
  std::function<void(JobOutcome&&)> done;
  CallObserver on_call;
  bool finished = false;
};

// `done` runs once: a job whose own code throws afterwards is not finished twice.
void finish(const std::shared_ptr<JobState>& state) {
  state->finished = true;
  state->done(std::move(state->outcome));
}

void answered(const std::shared_ptr<JobState>& state, http::Response& response);

void advance(const std::shared_ptr<JobState>& state) {
  if (state->next == state->steps.size()) {
    state->outcome.key_delivered = state->delivers_key_when_done;
    state->outcome.synced = std::move(state->fingerprints);
    finish(state);
    return;
  }
  Step& step = state->steps[state->next];
  http::Request request = std::move(step.request);
  if (step.key) request.body = body_with_key(request.body, *step.key);
  state->client->submit(std::move(request), [state](http::Response&& response) {
    // The job's own code (an observer, a hostile answer that slipped through) may throw: the job
    // ends as a retry rather than holding its slot and its object until the worker restarts.
    try {
      answered(state, response);
    } catch (const std::exception& e) {
      if (state->finished) throw;
      state->outcome = JobOutcome{};
      state->outcome.verdict = Verdict::kRetry;
      state->outcome.error = std::string("internal error: ") + e.what();
      finish(state);
    }
  });
}

void answered(const std::shared_ptr<JobState>& state, http::Response& response) {
  Step& step = state->steps[state->next];
  if (step.key) {
    redact_key(response.body, *step.key);
    step.key.reset();  // delivered or not, this step is done with it
  }
  if (state->on_call) state->on_call(response);
  Verdict verdict = classify(response, step.missing_ok);
  if (step.checks_credential && response.status == 404) {
    state->outcome.verdict = Verdict::kDead;
    state->outcome.status = 404;
    state->outcome.error =
        "Kong has no key-auth credential for this key, and the key was already handed over "
        "and wiped, so it cannot be sent again: rotate the key (gateway.api_key_rotate)";
    finish(state);
    return;
  }
  if (verdict != Verdict::kDone) {
    state->outcome.verdict = verdict;
    state->outcome.status = response.status;
    state->outcome.retry_after_s = response.retry_after_s;
    state->outcome.error = describe_failure(response);
    if (response.status == 405) {
      state->outcome.error +=
          " (Kong answers writes with 405 in DB-less mode: pg_gateway needs Kong with a database)";
    }
    finish(state);
    return;
  }
  ++state->next;
  advance(state);
}

// What reconciliation needs of a remote object: its id, references and the fields we set. Kong's
// defaults and timestamps are dropped at once, so listing 100,000 objects stays small.
Json owned_fields(Json&& remote) {
  static const char* const kKept[] = {"id",      "name",  "tags",     "protocol", "host",
                                      "port",    "path",  "methods",  "paths",    "strip_path",
                                      "service", "route", "consumer", "config",   "username",
                                      "group"};
  if (!remote.is_object()) return std::move(remote);
  Json kept = Json::object();
  for (const char* key : kKept) {
    auto it = remote.find(key);
    if (it != remote.end()) kept[key] = std::move(*it);
  }
  return kept;
}

// Pages through one collection; `done` gets every object or an error.
struct Listing {
  http::Client* client;
  std::string collection;
  std::vector<Json> objects;
  std::function<void(std::vector<Json>&&, std::string)> done;
  std::set<std::string> pages_seen;  // a `next` that comes round again would page forever
};

// A string field of a remote object, or "" when it is missing, null or not a string (Kong sends
// `"name": null` for unnamed objects; a hostile answer may send anything).
std::string text_field(const Json& object, const char* key) {
  if (!object.is_object()) return "";
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

// Kong's `next` is a path on the same Admin API. Anything else (a host, `//host`, `.evil/x`
// glued onto the base URL) would carry the admin headers and client certificate elsewhere.
bool same_api_path(const std::string& next) {
  return next.size() > 1 && next[0] == '/' && next[1] != '/' &&
         next.find_first_of("\r\n\\ ") == std::string::npos;
}

// At most this many pages per collection (of up to 1,000 objects): a listing that goes on
// beyond it is a broken or hostile Kong, retried later rather than held in memory.
constexpr std::size_t kMaxPages = 2000;

void next_page(const std::shared_ptr<Listing>& listing, const std::string& path) {
  listing->client->submit({"GET", path, ""}, [listing](http::Response&& response) {
    if (response.status != 200) {
      listing->done({}, "listing " + listing->collection + " failed: " + describe_failure(response));
      return;
    }
    Json page = Json::parse(response.body, nullptr, false);
    // key-auth pages hold every consumer's key: wipe them once parsed, and the keys in the parse
    // tree before it is freed (only the fields reconcile compares are kept).
    sodium_memzero(response.body.data(), response.body.size());
    if (!page.is_object() || !page.contains("data") || !page["data"].is_array()) {
      listing->done({}, "listing " + listing->collection + ": Kong's answer has no data array");
      return;
    }
    for (Json& o : page["data"]) {
      if (o.is_object() && o.contains("key") && o["key"].is_string()) {
        std::string& key = o["key"].get_ref<std::string&>();
        sodium_memzero(key.data(), key.size());
      }
      listing->objects.push_back(owned_fields(std::move(o)));
    }
    std::string next = text_field(page, "next");
    if (!next.empty()) {
      if (!same_api_path(next)) {
        listing->done({}, "listing " + listing->collection + ": Kong's next page is not a path of its Admin API");
      } else if (!listing->pages_seen.insert(next).second || listing->pages_seen.size() > kMaxPages) {
        listing->done({}, "listing " + listing->collection + ": Kong's pages do not end (a repeated or endless next)");
      } else {
        next_page(listing, next);
      }
    } else {
      listing->done(std::move(listing->objects), "");
    }
  });
}

const char* const kCollections[] = {"services", "routes", "plugins", "consumers", "key-auths", "acls"};

// Delete order for orphans: children before what they hang on.
int delete_rank(const std::string& collection) {
  if (collection == "plugins" || collection == "acls" || collection == "key-auths") return 0;
  if (collection == "routes") return 1;
  return 2;
}

std::string path_of(const std::string& collection, const Json& remote) {
  // Remote ids go into paths escaped: a hostile id must not become `..` or another path.
  std::string id = url_escape(text_field(remote, "id"));
  if (collection == "key-auths" || collection == "acls") {
    std::string consumer = url_escape(text_field(remote.is_object() ? remote.value("consumer", Json()) : Json(), "id"));
    return "/consumers/" + consumer + (collection == "acls" ? "/acls/" : "/key-auth/") + id;
  }
  return "/" + collection + "/" + id;
}

}  // namespace

std::vector<http::Request> planned_requests(const kong::Desired& desired, const Json& synced) {
  std::vector<http::Request> out;
  for (Step& step : steps_for(desired, synced)) {
    if (step.key) step.request.body = body_with_key(step.request.body, *step.key);
    out.push_back(std::move(step.request));
  }
  return out;
}

void run_job(http::Client& client, const kong::Desired& desired, const Json& synced,
             std::function<void(JobOutcome&&)> done, CallObserver on_call) {
  auto state = std::make_shared<JobState>();
  state->client = &client;
  state->steps = steps_for(desired, synced);
  state->fingerprints = Json::object();
  for (const KongObject& o : desired.present) state->fingerprints[o.path] = kong::fingerprint(o);
  state->done = std::move(done);
  state->on_call = std::move(on_call);
  for (const KongObject& o : desired.present) {
    if (o.carries_key()) state->delivers_key_when_done = true;
  }
  // Nothing of the key left to deliver when its objects are being removed.
  if (desired.present.empty()) state->delivers_key_when_done = true;
  advance(state);
}

void list_inventory(http::Client& client, const std::string& owner_tag,
                    std::function<void(Inventory&&, std::string error)> done) {
  struct Gather {
    Inventory inventory;
    std::string error;
    int remaining = 0;
    std::function<void(Inventory&&, std::string)> done;
  };
  auto gather = std::make_shared<Gather>();
  gather->done = std::move(done);
  gather->remaining = static_cast<int>(std::size(kCollections));
  for (const char* collection : kCollections) {
    auto listing = std::make_shared<Listing>();
    listing->client = &client;
    listing->collection = collection;
    listing->done = [gather, collection](std::vector<Json>&& objects, std::string error) {
      if (!error.empty() && gather->error.empty()) gather->error = error;
      gather->inventory[collection] = std::move(objects);
      if (--gather->remaining == 0) gather->done(std::move(gather->inventory), gather->error);
    };
    next_page(listing, "/" + std::string(collection) + "?size=1000&tags=" + url_escape(owner_tag));
  }
}

ReconcilePlan plan_reconcile(const std::vector<DesiredRow>& rows, const Inventory& inventory) {
  std::map<std::pair<std::string, std::string>, const Json*> remote;
  for (const auto& [collection, objects] : inventory) {
    for (const Json& o : objects) {
      if (o.is_object() && o.contains("id") && o["id"].is_string()) {
        remote[{collection, o["id"].get<std::string>()}] = &o;
      }
    }
  }
  ReconcilePlan plan;
  std::set<std::pair<std::string, std::string>> wanted;
  for (const DesiredRow& row : rows) {
    for (const KongObject& o : row.desired.present) {
      wanted.insert({o.collection, o.id});
      auto it = remote.find({o.collection, o.id});
      Json owned = o.fields;
      owned.erase("ttl");  // counts down inside Kong
      if (it == remote.end() || !kong::fields_match(owned, *it->second)) plan.repair.insert(row.row);
    }
  }
  std::vector<std::pair<std::string, const Json*>> unwanted;
  for (const auto& [key, object] : remote) {
    if (!wanted.count(key)) unwanted.emplace_back(key.first, object);
  }
  if (unwanted.empty()) return plan;

  // An unwanted object that belongs to a row (its id is one the row's objects can have) is the
  // row's job's to delete: that job runs under the per-object exclusion, so a change committed
  // meanwhile (a republish) is never undone by a delete from this older look at the tables.
  std::map<std::pair<std::string, std::string>, RowRef> owner;
  for (const DesiredRow& row : rows) {
    for (const KongObject& o : row.desired.absent) owner.emplace(std::make_pair(o.collection, o.id), row.row);
  }
  // Rows the tables no longer show as wanting objects (unpublished, deleted, revoked) are found by
  // the names their objects carry.
  auto claim_by_name = [&](const std::string& kind, const std::string& name, const char* prefix) {
    const std::string p = prefix;
    if (name.size() != p.size() + 36 || name.compare(0, p.size(), p) != 0) return;
    const std::string id = name.substr(p.size());
    if (id.find_first_not_of("0123456789abcdef-") != std::string::npos) return;
    for (const KongObject& o : kong::objects_of(kind, id)) {
      owner.emplace(std::make_pair(o.collection, o.id), RowRef{kind, id});
    }
  };
  for (const auto& [collection, object] : unwanted) {
    if (collection == "services" || collection == "routes") {
      claim_by_name("public_interface", text_field(*object, "name"), "gw-");
    } else if (collection == "consumers") {
      claim_by_name("api_key", text_field(*object, "username"), "gw-key-");
    }
  }
  for (const auto& [collection, object] : unwanted) {
    const std::string id = (*object)["id"].get<std::string>();
    auto it = owner.find({collection, id});
    if (it != owner.end()) {
      plan.repair.insert(it->second);
      continue;
    }
    KongObject orphan;
    orphan.collection = collection;
    orphan.id = id;
    orphan.path = path_of(collection, *object);
    plan.orphans.push_back(std::move(orphan));
  }
  std::stable_sort(plan.orphans.begin(), plan.orphans.end(),
                   [](const KongObject& a, const KongObject& b) {
                     return delete_rank(a.collection) < delete_rank(b.collection);
                   });
  return plan;
}

}  // namespace gateway::sync
