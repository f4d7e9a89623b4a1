// Desired state -> Temporal Nexus endpoints, and reading what the Temporal operator HTTP API
// answers. Pure functions: the connector row behind a job (the claim state of
// /work/plan/contract.md), the ownership marker in an endpoint's description, the spec we send
// and the comparison with what Temporal holds, and the classification of Temporal's answers.
// Every reader here takes hostile input (wrong types, bad UTF-8, huge bodies) without throwing.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "retry_policy.hpp"

namespace gateway::temporal {

using Json = nlohmann::json;

// The claim state of a project_connector or connector_test job (and a row of
// _sync_desired_connectors / _sync_known_endpoints). Missing keys, nulls and wrong types read as
// empty / false; endpoint_version may come as a string or a number.
struct ConnectorRow {
  std::string id;
  bool exists = false;   // the connector row exists (a project_connector state has no "exists":
                         // then it is true when present is)
  bool present = false;  // the endpoint should exist: row exists, consent approved, workers row
  std::string endpoint_name, namespace_name, task_queue, description, endpoint_id, endpoint_version;
  // Optional extras of a connector_test state: why a connector is not present, when the SQL
  // side says so ("consent_approved", "has_workers" booleans), and its "sync_state".
  std::optional<bool> consent_approved, has_workers;
  std::string sync_state;
};
ConnectorRow connector_row(const Json& state);

// The ownership marker: the description's first line is
// "pg_gateway owner=<owner_tag> connector=<connector id>", then "\n\n" and the user's text.
std::string endpoint_description(const std::string& owner_tag, const std::string& connector_id,
                                 const std::string& user_description);
// The connector id of the marker, only when the first line is exactly ours (this owner tag, a
// plausible connector id, nothing after it on the line).
std::optional<std::string> marked_connector(const std::string& description, const std::string& owner_tag);

// {"name","description" (a JSON string: the payload shorthand),"target":{"worker":{"namespace","taskQueue"}}}
Json endpoint_spec(const ConnectorRow& row, const std::string& owner_tag);

// An endpoint's description payload as text: a JSON string (shorthand), or the full payload form
// {"metadata":{"encoding":base64},"data":base64} of a JSON string (json/plain) or of raw text
// (binary/plain). nullopt when absent or anything else.
std::optional<std::string> description_text(const Json& description);

// The first field we own that differs between an endpoint as Temporal returns it
// ({"id","version","spec":{...}}) and our spec: "name", "description", "target" (not a worker
// target), "target.worker.namespace", "target.worker.taskQueue"; "" when they match. Fields
// proto3 omitted read as empty; fields we do not own (times, urlPrefix) are not compared.
std::string spec_difference(const Json& remote_endpoint, const Json& spec);
inline bool spec_matches(const Json& remote_endpoint, const Json& spec) {
  return spec_difference(remote_endpoint, spec).empty();
}

// ^[a-zA-Z][a-zA-Z0-9-]*[a-zA-Z0-9]$, at most 200 characters (Temporal's rule).
bool valid_endpoint_name(std::string_view name);
// What an endpoint id from Temporal may look like before it goes into a path or a table:
// 1-128 characters of [A-Za-z0-9_-] (Temporal makes UUIDs).
bool plausible_endpoint_id(std::string_view id);
// A version Temporal may send (int64 as a string, or a number): a positive decimal without
// leading zeros, at most int64's maximum. "" when not one.
std::string version_text(const Json& version);

// An endpoint read from an answer: id checked, spec kept as given (null when absent).
struct RemoteEndpoint {
  std::string id;
  std::string version;  // "" when missing or not a version
  std::string name;     // spec.name, "" when missing
  std::optional<std::string> description;  // description_text(spec.description)
  Json spec;
};
// "" and `out` filled, or why `endpoint` is not a usable endpoint ("not an object", "no id",
// "an implausible id").
std::string read_endpoint(const Json& endpoint, RemoteEndpoint& out);
// The same for a whole answer body {"endpoint":{...}} (get, create, update).
std::string read_endpoint_answer(const std::string& body, RemoteEndpoint& out);

// One page of GET /cluster/nexus/endpoints: the entries that are objects with a plausible string
// id (others skipped), trimmed to id, version and spec; the next page token ("" at the end).
// `error` is set for a body that is not a page (not a JSON object, endpoints not a list, a token
// that is not a string or absurdly long).
struct ListPage {
  std::vector<Json> endpoints;
  std::string next_page_token;
  std::string error;
};
ListPage parse_list_page(const std::string& body);

// A gRPC status body {"code","message"} read defensively: code -1 when absent or not a small
// integer; message made safe (safe_text) and short.
struct StatusBody {
  int code = -1;
  std::string message;
};
StatusBody parse_status(const std::string& body);
// "ALREADY_EXISTS" for 6, ..., "" for an unknown code.
const char* grpc_code_name(int code);

// gRPC codes the steps look at.
constexpr int kInvalidArgument = 3;
constexpr int kNotFound = 5;
constexpr int kAlreadyExists = 6;
constexpr int kFailedPrecondition = 9;

// Retry: no answer, 5xx, 429, 408, and 400 code 9 (a failed precondition can pass: a version
// conflict, a namespace being registered). Dead: 400 code 3, 409 code 6, 401, 403, 404 and every
// other 4xx. The job's steps handle 404, 409 code 6 and 400 code 9 themselves where they mean
// something (vanished endpoint, name taken, version conflict).
sync::Verdict classify_temporal(const sync::CallResult& result);

// Short and log-safe: "Temporal answered 409 (code 6 ALREADY_EXISTS): <message>", "Temporal did
// not answer: <curl error>"; 401 and 403 carry a hint about gateway.temporal_headers_file.
std::string describe_temporal(const sync::CallResult& result);

}  // namespace gateway::temporal
