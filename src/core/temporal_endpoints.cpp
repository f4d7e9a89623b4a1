#include "temporal_endpoints.hpp"

#include <cstdint>

#include "safe_text.hpp"
#include "cpp_only.hpp"  // last: proves no PostgreSQL header came in above

namespace gateway::temporal {
namespace {

constexpr char kMarkerPrefix[] = "pg_gateway owner=";
constexpr char kMarkerConnector[] = " connector=";

// A string field, or "" when missing, null or not a string.
std::string text_field(const Json& object, const char* key) {
  if (!object.is_object()) return "";
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

const Json& field(const Json& object, const char* key) {
  static const Json null_value;
  if (!object.is_object()) return null_value;
  auto it = object.find(key);
  return it != object.end() ? *it : null_value;
}

std::optional<bool> bool_field(const Json& object, const char* key) {
  const Json& v = field(object, key);
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number_integer()) return v.get<std::int64_t>() != 0;
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    if (s == "t" || s == "true") return true;
    if (s == "f" || s == "false") return false;
  }
  return std::nullopt;
}

bool plausible_connector_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '-';
    if (!ok) return false;
  }
  return true;
}

// Standard or URL-safe alphabet, padding optional. nullopt for anything else.
std::optional<std::string> base64_decode(const std::string& in) {
  if (in.size() > (1u << 22)) return std::nullopt;
  std::string out;
  out.reserve(in.size() / 4 * 3 + 3);
  std::uint32_t acc = 0;
  int bits = 0;
  std::size_t padding = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+' || c == '-') v = 62;
    else if (c == '/' || c == '_') v = 63;
    else if (c == '=') { ++padding; continue; }
    else return std::nullopt;
    if (padding > 0) return std::nullopt;  // data after padding
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  if (padding > 2) return std::nullopt;
  return out;
}

}  // namespace

ConnectorRow connector_row(const Json& state) {
  ConnectorRow row;
  row.id = text_field(state, "id");
  row.present = bool_field(state, "present").value_or(false);
  row.exists = bool_field(state, "exists").value_or(row.present);
  row.endpoint_name = text_field(state, "endpoint_name");
  row.namespace_name = text_field(state, "namespace");
  row.task_queue = text_field(state, "task_queue");
  row.description = text_field(state, "description");
  row.endpoint_id = text_field(state, "endpoint_id");
  row.endpoint_version = version_text(field(state, "endpoint_version"));
  row.consent_approved = bool_field(state, "consent_approved");
  row.has_workers = bool_field(state, "has_workers");
  row.sync_state = text_field(state, "sync_state");
  return row;
}

std::string endpoint_description(const std::string& owner_tag, const std::string& connector_id,
                                 const std::string& user_description) {
  return kMarkerPrefix + owner_tag + kMarkerConnector + connector_id + "\n\n" + user_description;
}

std::optional<std::string> marked_connector(const std::string& description, const std::string& owner_tag) {
  const std::string head = kMarkerPrefix + owner_tag + kMarkerConnector;
  if (owner_tag.empty() || description.compare(0, head.size(), head) != 0) return std::nullopt;
  const std::size_t end = description.find('\n', head.size());
  std::string id = description.substr(head.size(), end == std::string::npos ? std::string::npos : end - head.size());
  if (!plausible_connector_id(id)) return std::nullopt;
  return id;
}

Json endpoint_spec(const ConnectorRow& row, const std::string& owner_tag) {
  return Json{{"name", row.endpoint_name},
              {"description", endpoint_description(owner_tag, row.id, row.description)},
              {"target", {{"worker", {{"namespace", row.namespace_name}, {"taskQueue", row.task_queue}}}}}};
}

std::optional<std::string> description_text(const Json& description) {
  if (description.is_string()) return description.get<std::string>();
  if (!description.is_object()) return std::nullopt;
  const Json& data = field(description, "data");
  if (!data.is_string()) return std::nullopt;
  std::optional<std::string> bytes = base64_decode(data.get<std::string>());
  if (!bytes) return std::nullopt;
  std::string encoding = "json/plain";
  const Json& metadata = field(description, "metadata");
  const Json& encoded = field(metadata, "encoding");
  if (encoded.is_string()) {
    std::optional<std::string> e = base64_decode(encoded.get<std::string>());
    if (!e) return std::nullopt;
    encoding = *e;
  } else if (!encoded.is_null()) {
    return std::nullopt;
  }
  if (encoding == "binary/plain") return bytes;
  if (encoding != "json/plain") return std::nullopt;
  Json value = Json::parse(*bytes, nullptr, /*allow_exceptions=*/false);
  if (!value.is_string()) return std::nullopt;
  return value.get<std::string>();
}

std::string spec_difference(const Json& remote_endpoint, const Json& spec) {
  const Json& remote = field(remote_endpoint, "spec");
  if (text_field(remote, "name") != text_field(spec, "name")) return "name";
  const std::string wanted_description = text_field(spec, "description");
  const Json& remote_description = field(remote, "description");
  std::optional<std::string> description = description_text(remote_description);
  // proto3 omits an empty payload: missing equals empty.
  if (remote_description.is_null()) description = "";
  if (!description || *description != wanted_description) return "description";
  const Json& target = field(remote, "target");
  if (target.is_object() && target.contains("external")) return "target";
  const Json& worker = field(target, "worker");
  const Json& wanted_worker = field(field(spec, "target"), "worker");
  if (!worker.is_null() && !worker.is_object()) return "target";
  if (text_field(worker, "namespace") != text_field(wanted_worker, "namespace")) return "target.worker.namespace";
  if (text_field(worker, "taskQueue") != text_field(wanted_worker, "taskQueue")) return "target.worker.taskQueue";
  return "";
}

bool valid_endpoint_name(std::string_view name) {
  if (name.size() < 2 || name.size() > 200) return false;
  auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (!letter(name.front())) return false;
  if (!letter(name.back()) && !digit(name.back())) return false;
  for (char c : name) {
    if (!letter(c) && !digit(c) && c != '-') return false;
  }
  return true;
}

bool plausible_endpoint_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

std::string version_text(const Json& version) {
  if (version.is_number_unsigned()) {
    const auto v = version.get<std::uint64_t>();
    return v > 0 && v <= static_cast<std::uint64_t>(INT64_MAX) ? std::to_string(v) : "";
  }
  if (version.is_number_integer()) {
    const auto v = version.get<std::int64_t>();
    return v > 0 ? std::to_string(v) : "";
  }
  if (!version.is_string()) return "";
  const std::string& s = version.get_ref<const std::string&>();
  if (s.empty() || s.size() > 19 || s[0] == '0') return "";
  for (char c : s) {
    if (c < '0' || c > '9') return "";
  }
  if (s.size() == 19 && s > "9223372036854775807") return "";
  return s;
}

std::string read_endpoint(const Json& endpoint, RemoteEndpoint& out) {
  if (!endpoint.is_object()) return "not an object";
  const Json& id = field(endpoint, "id");
  if (!id.is_string()) return "no id";
  if (!plausible_endpoint_id(id.get_ref<const std::string&>())) return "an implausible id";
  out.id = id.get<std::string>();
  out.version = version_text(field(endpoint, "version"));
  out.spec = field(endpoint, "spec");
  out.name = text_field(out.spec, "name");
  out.description = description_text(field(out.spec, "description"));
  return "";
}

std::string read_endpoint_answer(const std::string& body, RemoteEndpoint& out) {
  Json answer = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!answer.is_object()) return "not JSON";
  const Json& endpoint = field(answer, "endpoint");
  if (endpoint.is_null()) return "no endpoint";
  return read_endpoint(endpoint, out);
}

ListPage parse_list_page(const std::string& body) {
  ListPage page;
  Json answer = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!answer.is_object()) {
    page.error = "Temporal's answer is not a JSON object";
    return page;
  }
  Json& endpoints = answer["endpoints"];  // an empty list is omitted (proto3): null then
  if (!endpoints.is_null() && !endpoints.is_array()) {
    page.error = "Temporal's answer has endpoints that are not a list";
    return page;
  }
  if (endpoints.is_array()) {
    for (Json& e : endpoints) {
      RemoteEndpoint read;
      if (!read_endpoint(e, read).empty()) continue;  // a bad entry is skipped, never thrown
      Json kept = Json::object();
      kept["id"] = read.id;
      if (auto it = e.find("version"); it != e.end()) kept["version"] = std::move(*it);
      if (auto it = e.find("spec"); it != e.end()) kept["spec"] = std::move(*it);
      page.endpoints.push_back(std::move(kept));
    }
  }
  const Json& token = field(answer, "nextPageToken");
  if (token.is_string()) {
    page.next_page_token = token.get<std::string>();
    if (page.next_page_token.size() > 4096) {
      page.error = "Temporal's next page token is absurdly long";
      page.next_page_token.clear();
    }
  } else if (!token.is_null()) {
    page.error = "Temporal's next page token is not a string";
  }
  return page;
}

StatusBody parse_status(const std::string& body) {
  StatusBody status;
  // A status is small: a huge body is not parsed, only its start quoted.
  Json parsed = body.size() <= 65536 ? Json::parse(body, nullptr, /*allow_exceptions=*/false) : Json();
  if (!parsed.is_object()) {
    status.message = safe_text(body, 200);
    return status;
  }
  const Json& code = field(parsed, "code");
  if (code.is_number_integer() || code.is_number_unsigned()) {
    if (code.is_number_unsigned() ? code.get<std::uint64_t>() <= 16 : (code.get<std::int64_t>() >= 0 && code.get<std::int64_t>() <= 16)) {
      status.code = static_cast<int>(code.get<std::int64_t>());
    }
  }
  status.message = safe_text(text_field(parsed, "message"), 500);
  return status;
}

const char* grpc_code_name(int code) {
  static const char* const kNames[] = {
      "OK",           "CANCELLED",        "UNKNOWN",          "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
      "NOT_FOUND",    "ALREADY_EXISTS",   "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED",      "OUT_OF_RANGE",     "UNIMPLEMENTED",    "INTERNAL",         "UNAVAILABLE",
      "DATA_LOSS",    "UNAUTHENTICATED"};
  return code >= 0 && code <= 16 ? kNames[code] : "";
}

sync::Verdict classify_temporal(const sync::CallResult& r) {
  using sync::Verdict;
  if (r.status >= 200 && r.status < 300) return Verdict::kDone;
  if (r.status <= 0 || r.status >= 500 || r.status == 429 || r.status == 408) return Verdict::kRetry;
  if (r.status == 400 && parse_status(r.body).code == kFailedPrecondition) return Verdict::kRetry;
  return Verdict::kDead;
}

std::string describe_temporal(const sync::CallResult& r) {
  if (r.status <= 0) return "Temporal did not answer: " + safe_text(r.transport_error, 500);
  const StatusBody status = parse_status(r.body);
  std::string text = "Temporal answered " + std::to_string(r.status);
  if (status.code >= 0) text += " (code " + std::to_string(status.code) + " " + grpc_code_name(status.code) + ")";
  if (!status.message.empty()) text += ": " + status.message;
  if (r.status == 401 || r.status == 403) {
    text += " (Temporal refused our credentials: check the headers in gateway.temporal_headers_file, "
            "or the client certificate settings)";
  }
  return safe_text(text, 1000);
}

}  // namespace gateway::temporal
