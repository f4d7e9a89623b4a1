#include "health.hpp"

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/master_key.hpp"
#include "error_bridge.hpp"
#include "settings.hpp"
#include "shared_state.hpp"
#include "target_health.hpp"
#include "worker_transaction.hpp"

extern "C" {
#include "miscadmin.h"
#include "utils/tuplestore.h"
}

namespace gateway::pg {
namespace {

struct Check {
  std::string name, status, detail, hint, problem;
};

// The key file settings are superuser-only (GUC_SUPERUSER_ONLY): a caller who is not a superuser
// (service_role reading gateway.health) is told the setting's name where the path would be.
std::string without_path(std::string text, const std::string& path, const char* setting) {
  if (path.empty()) return text;
  const std::string quoted = "\"" + path + "\"";
  const std::string named = std::string("(") + setting + ")";
  for (std::size_t at = text.find(quoted); at != std::string::npos; at = text.find(quoted, at + named.size())) {
    text.replace(at, quoted.size(), named);
  }
  return text;
}

Check key_file_check(const char* name, const char* setting, const char* path, bool show_path) {
  const std::string file = path != nullptr ? path : "";
  auto shown = [&](const std::string& text) { return show_path ? text : without_path(text, file, setting); };
  try {
    MasterKey::check_file(file);
  } catch (const Error& e) {
    // The message names the file and what is wrong with it; never its contents.
    std::string detail = e.what();
    if (!e.detail().empty()) detail += ". " + e.detail();
    return {name, "critical", shown(detail), shown(e.hint()), shown(e.what())};
  }
  return {name, "ok", shown("\"" + file + "\" is private to the server user"), "", ""};
}

std::string time_text(std::int64_t unix_ms) {
  std::string text;
  pg_call([&] { text = timestamptz_to_str(time_t_to_timestamptz(static_cast<pg_time_t>(unix_ms / 1000))); });
  return text;
}

Check target_check(const char* name, const char* title, const char* url_setting, bool worker) {
  TargetHealth h;
  const std::string hint_url = std::string("Check that ") + title + " answers at " + url_setting +
                               "; the worker probes it again by itself and jobs wait meanwhile.";
  if (!worker) {
    return {name, "warning", std::string("unknown: the worker is not running, so nothing is synced to ") + title,
            "See the worker check.", "no_worker"};
  }
  if (!read_target_health(name, &h) || !h.published) {
    return {name, "ok", "the worker has not reported on it yet", "", ""};
  }
  if (h.paused) return {name, "ok", std::string("not configured (") + url_setting + " is empty): its jobs wait", "", ""};
  if (h.file_error) {
    return {name, "critical",
            std::string("the worker cannot use the header or TLS files configured for ") + title,
            "See the WARNING in the server log, fix the file (owner, mode 600) and reload the configuration.",
            "file_error"};
  }
  const std::string failures = std::to_string(h.failures_in_row) + " failed call(s) in a row, the last at " +
                               time_text(h.last_failure_ms);
  // Five failures in a row is what opens the worker's circuit breaker; a reconcile's failures
  // count here too, though they do not move the breaker.
  if (h.circuit_open || h.failures_in_row >= 5) {
    return {name, "critical",
            std::string(title) + " is unreachable: " + failures +
                (h.circuit_open ? "; the worker's circuit is open (it pauses calls)" : ""),
            hint_url, "unreachable"};
  }
  if (h.failures_in_row > 0) {
    return {name, "warning", std::string(title) + " is failing: " + failures, hint_url, "failing"};
  }
  if (h.last_answer_ms == 0) return {name, "ok", "reachable as far as known: no call yet", "", ""};
  return {name, "ok", "last answered at " + time_text(h.last_answer_ms), "", ""};
}

std::vector<Check> internal_checks(bool show_paths) {
  std::vector<Check> checks;
  checks.push_back(key_file_check("master_key_file", "gateway.master_key_file", settings.master_key_file, show_paths));
  if (settings.previous_master_key_file != nullptr && settings.previous_master_key_file[0] != '\0') {
    checks.push_back(key_file_check("previous_master_key_file", "gateway.previous_master_key_file",
                                    settings.previous_master_key_file, show_paths));
  }
  const bool running = worker_running();
  if (!running) {
    checks.push_back({"worker", "critical", "the pg_gateway worker is not running: nothing is synced, last use and audit events queue up",
                      "Check shared_preload_libraries and the server log; the postmaster restarts the worker 5 s after it stops.",
                      "not_running"});
  } else if (!worker_serves_this_database()) {
    checks.push_back({"worker", "warning",
                      std::string("the worker serves database \"") + (settings.database ? settings.database : "") +
                          "\", not this one",
                      "Create the extension only in the database named by gateway.database.", "other_database"});
  } else {
    checks.push_back({"worker", "ok", "running", "", ""});
  }
  checks.push_back(target_check("kong", "Kong", "gateway.kong_admin_url", running));
  checks.push_back(target_check("temporal", "Temporal", "gateway.temporal_url", running));
  checks.push_back(target_check("nexus", "Temporal (Nexus calls)", "gateway.temporal_url", running));
  return checks;
}

Datum text_datum(const std::string& s, bool* isnull) {
  *isnull = s.empty();
  return *isnull ? Datum(0) : CStringGetTextDatum(s.c_str());
}

}  // namespace

void run_self_check() {
  static std::set<std::string> reported;  // problems already logged, as name + problem
  std::vector<TextRow> rows;
  std::string error;
  const bool ok = try_transaction("pg_gateway: self-check", error, [&] {
    auto probe = spi_query("SELECT to_regprocedure('gateway._health_checks()') IS NOT NULL");
    if (probe.empty() || probe[0][0] != std::optional<std::string>("t")) return;  // older schema
    rows = spi_query("SELECT name, status, detail, hint, problem FROM gateway._health_checks()"
                     " WHERE status <> 'ok'");
  });
  if (!ok) {
    ereport(LOG, (errmsg("pg_gateway worker: the self-check failed: %s", error.c_str())));
    return;
  }
  std::set<std::string> now;
  for (const TextRow& r : rows) {
    if (r.size() < 5 || !r[0] || !r[1]) continue;
    const std::string key = *r[0] + '\n' + r[4].value_or("");
    now.insert(key);
    if (reported.count(key) != 0) continue;
    const std::string detail = r[2].value_or("");
    const std::string hint = r[3].value_or("");
    ereport(WARNING, (errmsg("pg_gateway self-check, %s (%s): %s", r[0]->c_str(), r[1]->c_str(), detail.c_str()),
                      hint.empty() ? 0 : errhint("%s", hint.c_str())));
  }
  reported = std::move(now);
}

}  // namespace gateway::pg

using namespace gateway::pg;

extern "C" {
PG_FUNCTION_INFO_V1(gateway_health_internal);
}

// gateway._health_internal() -> SETOF (name, status, detail, hint, problem).
extern "C" Datum gateway_health_internal(PG_FUNCTION_ARGS) {
  return sql_function([&]() -> Datum {
    bool superuser_caller = false;  // the request's role, not this SECURITY DEFINER's owner
    pg_call([&] { superuser_caller = superuser_arg(GetOuterUserId()); });
    const std::vector<Check> checks = internal_checks(superuser_caller);
    pg_call([&] {
      InitMaterializedSRF(fcinfo, 0);
      ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
      for (const Check& c : checks) {
        Datum values[5];
        bool nulls[5];
        values[0] = text_datum(c.name, &nulls[0]);
        values[1] = text_datum(c.status, &nulls[1]);
        values[2] = text_datum(c.detail, &nulls[2]);
        values[3] = text_datum(c.hint, &nulls[3]);
        values[4] = text_datum(c.problem, &nulls[4]);
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
      }
    });
    return Datum(0);
  });
}
