#include "nexus_call.hpp"

#include <sodium.h>

#include <cctype>
#include <cstdint>

#include "error.hpp"
#include "safe_text.hpp"
#include "cpp_only.hpp"  // last: proves no PostgreSQL header came in above

namespace gateway::nexus {
namespace {

constexpr std::size_t kMaxMessage = 16 * 1024;
constexpr std::size_t kMaxStackTrace = 64 * 1024;
constexpr std::size_t kMaxMetaText = 4096;
constexpr std::size_t kMaxErrorText = 1000;
constexpr std::size_t kMaxTokenBytes = 4096;
constexpr std::size_t kMaxUrlBytes = 4096;
constexpr std::size_t kMaxTypeBytes = 256;

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

const std::string* header(const Headers& headers, std::string_view name) {
  for (const auto& [n, v] : headers) {
    if (iequals(n, name)) return &v;
  }
  return nullptr;
}

std::vector<std::string> all_headers(const Headers& headers, std::string_view name) {
  std::vector<std::string> out;
  for (const auto& [n, v] : headers) {
    if (iequals(n, name)) out.push_back(v);
  }
  return out;
}

std::string quoted(std::string_view text, std::size_t max = 200) { return "\"" + safe_text(text, max) + "\""; }

// A copy with every string and key storable (valid UTF-8, no NUL); nullopt when it nests deeper
// than `budget` levels. Recursion is bounded by the budget.
std::optional<Json> storable_copy(const Json& in, int budget) {
  if (budget <= 0) return std::nullopt;
  if (in.is_string()) return Json(safe_text(in.get_ref<const std::string&>(), kMaxStackTrace));
  if (in.is_array()) {
    Json out = Json::array();
    for (const Json& item : in) {
      auto copy = storable_copy(item, budget - 1);
      if (!copy) return std::nullopt;
      out.push_back(std::move(*copy));
    }
    return out;
  }
  if (in.is_object()) {
    Json out = Json::object();
    for (auto it = in.begin(); it != in.end(); ++it) {
      auto copy = storable_copy(it.value(), budget - 1);
      if (!copy) return std::nullopt;
      out[safe_text(it.key(), kMaxMetaText)] = std::move(*copy);
    }
    return out;
  }
  if (in.is_binary() || in.is_discarded()) return Json();
  return in;
}

// JSON that jsonb takes as it is: no NUL in a string or key (\u0000 is refused), not too deep.
bool storable(const Json& j, int budget) {
  if (budget <= 0) return false;
  if (j.is_string()) return j.get_ref<const std::string&>().find('\0') == std::string::npos;
  if (j.is_array()) {
    for (const Json& item : j) {
      if (!storable(item, budget - 1)) return false;
    }
  } else if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key().find('\0') != std::string::npos || !storable(it.value(), budget - 1)) return false;
    }
  } else if (j.is_binary() || j.is_discarded()) {
    return false;
  }
  return true;
}

std::string base64(std::string_view bytes) {
  const std::size_t len = sodium_base64_ENCODED_LEN(bytes.size(), sodium_base64_VARIANT_ORIGINAL);
  std::string out(len, '\0');
  sodium_bin2base64(out.data(), len, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                    sodium_base64_VARIANT_ORIGINAL);
  out.resize(len - 1);  // the terminating NUL
  return out;
}

bool is_json_type(std::string_view content_type) {
  std::string_view media = trim(content_type.substr(0, content_type.find(';')));
  if (iequals(media, "application/json")) return true;
  const std::size_t slash = media.find('/');
  return slash != std::string_view::npos && media.size() >= 5 && iequals(media.substr(media.size() - 5), "+json");
}

bool printable_ascii(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) return false;
  }
  return true;
}

std::optional<Json> parse_json(std::string_view body) {
  Json j = Json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

FailureRead failure_at(const Json& value, int depth) {
  FailureRead out;
  if (!value.is_object()) {
    out.error = "a Failure must be a JSON object, not " + std::string(value.type_name());
    return out;
  }
  Json f = Json::object();
  const auto text = [&](const char* name, std::size_t max, bool keep_empty) -> bool {
    auto it = value.find(name);
    if (it == value.end() || it->is_null()) {
      if (keep_empty) f[name] = "";
      return true;
    }
    if (!it->is_string()) {
      out.error = std::string("Failure.") + name + " must be a string, not " + it->type_name();
      return false;
    }
    f[name] = safe_text(it->get_ref<const std::string&>(), max);
    return true;
  };
  if (!text("message", kMaxMessage, true) || !text("stackTrace", kMaxStackTrace, false)) return out;
  auto meta = value.find("metadata");
  if (meta != value.end() && !meta->is_null()) {
    if (!meta->is_object()) {
      out.error = std::string("Failure.metadata must be an object of strings, not ") + meta->type_name();
      return out;
    }
    Json m = Json::object();
    for (auto it = meta->begin(); it != meta->end(); ++it) {
      if (!it.value().is_string()) {
        out.error = "Failure.metadata." + safe_text(it.key(), 100) + " must be a string, not " + it.value().type_name();
        return out;
      }
      m[safe_text(it.key(), kMaxMetaText)] = safe_text(it.value().get_ref<const std::string&>(), kMaxMetaText);
    }
    f["metadata"] = std::move(m);
  }
  auto details = value.find("details");
  if (details != value.end()) {
    auto copy = storable_copy(*details, kMaxJsonDepth);
    if (!copy) {
      out.error = "Failure.details nests deeper than " + std::to_string(kMaxJsonDepth) + " levels";
      return out;
    }
    f["details"] = std::move(*copy);
  }
  auto cause = value.find("cause");
  if (cause != value.end() && !cause->is_null()) {
    if (depth + 1 > kMaxCauseDepth) {
      out.error = "Failure causes nest deeper than " + std::to_string(kMaxCauseDepth) + " levels";
      return out;
    }
    FailureRead inner = failure_at(*cause, depth + 1);
    if (!inner.error.empty()) {
      out.error = "cause: " + inner.error;
      return out;
    }
    f["cause"] = std::move(inner.failure);
  }
  out.failure = std::move(f);
  return out;
}

// --- times ---------------------------------------------------------------------------------------

// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int days_in_month(int y, int m) {
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : days[m - 1];
}

struct Cursor {
  std::string_view s;
  std::size_t i = 0;
  bool done() const { return i >= s.size(); }
  bool eat(char c) {
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
  // Exactly n digits (n = 0: one or more, at most 2 here for RFC 5322 days).
  bool digits(std::size_t n, int& value) {
    value = 0;
    std::size_t k = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) && k < n) {
      value = value * 10 + (s[i] - '0');
      ++i;
      ++k;
    }
    return k == n;
  }
  void spaces() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  }
};

std::optional<double> epoch(int y, int mo, int d, int h, int mi, int sec, double frac, int offset_min) {
  if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  const std::int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  return static_cast<double>(days * 86400 + h * 3600 + mi * 60 + sec - offset_min * 60) + frac;
}

std::optional<double> parse_rfc3339(std::string_view text) {
  Cursor c{text};
  int y, mo, d, h, mi, sec;
  if (!c.digits(4, y) || !c.eat('-') || !c.digits(2, mo) || !c.eat('-') || !c.digits(2, d)) return std::nullopt;
  if (!(c.eat('T') || c.eat('t') || c.eat(' '))) return std::nullopt;
  if (!c.digits(2, h) || !c.eat(':') || !c.digits(2, mi) || !c.eat(':') || !c.digits(2, sec)) return std::nullopt;
  double frac = 0, scale = 0.1;
  if (c.eat('.')) {
    std::size_t n = 0;
    while (!c.done() && std::isdigit(static_cast<unsigned char>(c.s[c.i]))) {
      frac += (c.s[c.i] - '0') * scale;
      scale /= 10;
      ++c.i;
      ++n;
    }
    if (n == 0) return std::nullopt;
  }
  int offset = 0;
  if (c.eat('Z') || c.eat('z')) {
  } else if (!c.done() && (c.s[c.i] == '+' || c.s[c.i] == '-')) {
    const int sign = c.s[c.i] == '-' ? -1 : 1;
    ++c.i;
    int oh, om;
    if (!c.digits(2, oh) || !c.eat(':') || !c.digits(2, om) || oh > 23 || om > 59) return std::nullopt;
    offset = sign * (oh * 60 + om);
  } else {
    return std::nullopt;
  }
  if (!c.done()) return std::nullopt;
  return epoch(y, mo, d, h, mi, sec, frac, offset);
}

// RFC 5322 date-time (HTTP's IMF-fixdate included): [Day ","] D Mon YYYY hh:mm[:ss] zone.
std::optional<double> parse_rfc5322(std::string_view text) {
  static const char* const months[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                       "jul", "aug", "sep", "oct", "nov", "dec"};
  Cursor c{text};
  const std::size_t comma = text.find(',');
  if (comma != std::string_view::npos) {
    if (comma != 3) return std::nullopt;
    c.i = 4;
  }
  c.spaces();
  int d = 0;
  std::size_t start = c.i;
  while (!c.done() && std::isdigit(static_cast<unsigned char>(c.s[c.i])) && c.i - start < 2) d = d * 10 + (c.s[c.i++] - '0');
  if (c.i == start) return std::nullopt;
  c.spaces();
  if (c.i + 3 > text.size()) return std::nullopt;
  int mo = 0;
  for (int k = 0; k < 12; ++k) {
    if (iequals(text.substr(c.i, 3), months[k])) mo = k + 1;
  }
  if (mo == 0) return std::nullopt;
  c.i += 3;
  c.spaces();
  int y, h, mi, sec = 0;
  if (!c.digits(4, y)) return std::nullopt;
  c.spaces();
  if (!c.digits(2, h) || !c.eat(':') || !c.digits(2, mi)) return std::nullopt;
  if (c.eat(':') && !c.digits(2, sec)) return std::nullopt;
  c.spaces();
  int offset = 0;
  const std::string_view zone = c.s.substr(c.i);
  if (iequals(zone, "GMT") || iequals(zone, "UT") || iequals(zone, "UTC") || iequals(zone, "Z")) {
  } else if (zone.size() == 5 && (zone[0] == '+' || zone[0] == '-')) {
    Cursor z{zone, 1};
    int oh, om;
    if (!z.digits(2, oh) || !z.digits(2, om) || om > 59) return std::nullopt;
    offset = (zone[0] == '-' ? -1 : 1) * (oh * 60 + om);
  } else {
    return std::nullopt;
  }
  return epoch(y, mo, d, h, mi, sec, 0, offset);
}

Json base64_form(std::string_view content_type, std::string_view body) {
  return Json{{"contentType", safe_text(content_type, kMaxTypeBytes)}, {"base64", base64(body)}};
}

bool default_retryable(const std::string& type, long status) {
  if (type == "BAD_REQUEST" || type == "UNAUTHENTICATED" || type == "UNAUTHORIZED" || type == "NOT_FOUND" ||
      type == "CONFLICT" || type == "NOT_IMPLEMENTED") {
    return false;
  }
  if (type == "REQUEST_TIMEOUT" || type == "RESOURCE_EXHAUSTED" || type == "INTERNAL" || type == "UNAVAILABLE" ||
      type == "UPSTREAM_TIMEOUT") {
    return true;
  }
  return status >= 500 || status == 408 || status == 429;
}

// A handler error type a body may name: upper-case letters and '_' only, short.
bool plausible_type(const std::string& t) {
  if (t.empty() || t.size() > 64) return false;
  for (char c : t) {
    if (!((c >= 'A' && c <= 'Z') || c == '_')) return false;
  }
  return true;
}

StartAnswer handler_error(const sync::CallResult& r) {
  StartAnswer a;
  a.kind = StartKind::kHandlerError;
  std::string type = handler_error_type(r.status);
  std::string message;
  std::optional<bool> override_retryable;
  Json cause;
  std::optional<Json> body = r.body_truncated ? std::nullopt : parse_json(r.body);
  if (body && body->is_object()) {
    auto m = body->find("message");
    if (m != body->end() && m->is_string()) message = safe_text(m->get_ref<const std::string&>(), 500);
    FailureRead f = parse_failure(*body);
    if (f.error.empty()) {
      const Json& failure = f.failure;
      const bool is_handler_error = failure.contains("metadata") &&
                                    failure["metadata"].value("type", "") == "nexus.HandlerError";
      if (is_handler_error) {
        // The Failure's own type wins over the status (the spec says so).
        if (failure.contains("details") && failure["details"].is_object()) {
          const Json& details = failure["details"];
          auto t = details.find("type");
          if (t != details.end() && t->is_string() && plausible_type(t->get<std::string>())) type = t->get<std::string>();
          auto o = details.find("retryableOverride");
          if (o != details.end() && o->is_boolean()) override_retryable = o->get<bool>();
        }
        if (failure.contains("cause")) cause = failure["cause"];
      } else if (failure.size() > 1 || !message.empty()) {
        cause = failure;
      }
    }
  } else if (!r.body.empty()) {
    message = safe_text(r.body, 200);  // not JSON (a proxy's page, ...): its start says most
  }
  bool retryable = default_retryable(type, r.status);
  if (const std::string* h = header(r.headers, "nexus-request-retryable")) {
    if (iequals(trim(*h), "true")) retryable = true;
    if (iequals(trim(*h), "false")) retryable = false;
  }
  if (override_retryable) retryable = *override_retryable;
  if (r.status < 400) {
    type = "UNKNOWN";
    retryable = false;
  }
  a.retryable = retryable;
  std::string error;
  if (type == "UPSTREAM_TIMEOUT" || r.status == 520) {
    error = "no worker polls the target's task queue (520 upstream timeout)";
  } else if (r.status < 400) {
    error = "unexpected answer from the Nexus handler (HTTP " + std::to_string(r.status) + ")";
  } else {
    error = "the Nexus handler refused the call: " + type + " (HTTP " + std::to_string(r.status) + ")";
  }
  if (!message.empty()) error += ": " + message;
  if (r.body_truncated) error += " (answer body cut: larger than pg_gateway reads)";
  a.error = safe_text(error, kMaxErrorText);
  a.failure = Json{{"message", message.empty() ? a.error : message},
                   {"metadata", {{"type", "nexus.HandlerError"}}},
                   {"details", {{"type", type}, {"status", r.status}, {"retryable", retryable}}}};
  if (!cause.is_null()) a.failure["cause"] = std::move(cause);
  return a;
}

}  // namespace

// --- token ---------------------------------------------------------------------------------------

std::string callback_token(const SecureBuffer& key, std::string_view call_id) {
  if (key.size() < crypto_generichash_KEYBYTES_MIN || key.size() > crypto_generichash_KEYBYTES_MAX) {
    throw Error(sqlstate::kInternalError, "the callback key has a wrong length");
  }
  ensure_sodium();
  unsigned char hash[crypto_generichash_BYTES];
  crypto_generichash(hash, sizeof hash, reinterpret_cast<const unsigned char*>(call_id.data()), call_id.size(),
                     key.data(), key.size());
  constexpr int variant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
  char text[sodium_base64_ENCODED_LEN(crypto_generichash_BYTES, variant)];
  sodium_bin2base64(text, sizeof text, hash, sizeof hash, variant);
  sodium_memzero(hash, sizeof hash);
  std::string out(text);
  sodium_memzero(text, sizeof text);
  return out;
}

bool callback_token_valid(const SecureBuffer& key, std::string_view call_id, std::string_view presented) {
  if (key.size() < crypto_generichash_KEYBYTES_MIN || key.size() > crypto_generichash_KEYBYTES_MAX) return false;
  // Comparing the canonical text: any other spelling (bad base64, padding, other bits) differs.
  std::string expected = callback_token(key, call_id);
  const bool ok = presented.size() == expected.size() &&
                  sodium_memcmp(expected.data(), presented.data(), expected.size()) == 0;
  sodium_memzero(expected.data(), expected.size());
  return ok;
}

std::string callback_url_for(std::string_view base, std::string_view call_id) {
  while (!base.empty() && base.back() == '/') base.remove_suffix(1);
  return std::string(base) + "/nexus/calls/" + std::string(call_id);
}

// --- readers -------------------------------------------------------------------------------------

FailureRead parse_failure(const Json& value) {
  try {
    return failure_at(value, 0);
  } catch (const std::exception& e) {
    FailureRead out;
    out.error = safe_text(std::string("unreadable Failure: ") + e.what(), kMaxErrorText);
    return out;
  }
}

OperationInfo parse_operation_info(std::string_view body) {
  OperationInfo out;
  std::optional<Json> j = parse_json(body);
  if (!j || !j->is_object()) {
    out.error = "the answer is not a JSON object";
    return out;
  }
  auto token = j->find("token");
  if (token == j->end() || !token->is_string() || token->get_ref<const std::string&>().empty()) token = j->find("id");
  if (token == j->end() || !token->is_string()) {
    out.error = "the answer has no operation token";
    return out;
  }
  if (!valid_token(token->get_ref<const std::string&>())) {
    out.error = "the operation token is empty, longer than 4096 bytes or not printable ASCII";
    return out;
  }
  out.token = token->get<std::string>();
  auto state = j->find("state");
  if (state != j->end() && state->is_string()) out.state = safe_text(state->get_ref<const std::string&>(), 64);
  return out;
}

bool valid_token(std::string_view token) {
  return !token.empty() && token.size() <= kMaxTokenBytes && printable_ascii(token);
}

Json parse_links(const std::vector<std::string>& values) {
  Json links = Json::array();
  for (const std::string& v : values) {
    std::size_t i = 0;
    const std::size_t n = v.size();
    const auto skip_space = [&] {
      while (i < n && (v[i] == ' ' || v[i] == '\t')) ++i;
    };
    while (i < n && links.size() < kMaxLinks) {
      while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) ++i;
      if (i >= n) break;
      bool bad = false;
      std::string url, type;
      if (v[i] != '<') {
        bad = true;
      } else {
        const std::size_t close = v.find('>', i + 1);
        if (close == std::string::npos) break;
        url = v.substr(i + 1, close - i - 1);
        i = close + 1;
        // Parameters: ; key=value | ; key="quoted \" value"
        while (!bad) {
          skip_space();
          if (i >= n || v[i] == ',') break;
          if (v[i] != ';') {
            bad = true;
            break;
          }
          ++i;
          skip_space();
          const std::size_t key_start = i;
          while (i < n && v[i] != '=' && v[i] != ';' && v[i] != ',') ++i;
          const std::string key(trim(std::string_view(v).substr(key_start, i - key_start)));
          std::string value;
          if (i < n && v[i] == '=') {
            ++i;
            skip_space();
            if (i < n && v[i] == '"') {
              ++i;
              bool closed = false;
              while (i < n) {
                if (v[i] == '\\' && i + 1 < n) {
                  value.push_back(v[i + 1]);
                  i += 2;
                } else if (v[i] == '"') {
                  ++i;
                  closed = true;
                  break;
                } else {
                  value.push_back(v[i++]);
                }
              }
              if (!closed) bad = true;
            } else {
              const std::size_t value_start = i;
              while (i < n && v[i] != ';' && v[i] != ',') ++i;
              value = std::string(trim(std::string_view(v).substr(value_start, i - value_start)));
            }
          }
          if (iequals(key, "type")) type = value;
        }
      }
      if (bad) {
        while (i < n && v[i] != ',') ++i;  // skip to the next entry
        continue;
      }
      const std::string_view u = trim(url);
      if (!u.empty() && u.size() <= kMaxUrlBytes && !type.empty() && type.size() <= kMaxTypeBytes &&
          safe_text(u, kMaxUrlBytes) == u && safe_text(type, kMaxTypeBytes) == type && printable_ascii(type)) {
        bool control = false;
        for (char c : u) control = control || static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
        if (!control) links.push_back(Json{{"url", std::string(u)}, {"type", type}});
      }
    }
    if (links.size() >= kMaxLinks) break;
  }
  return links;
}

std::optional<double> parse_time(std::string_view text) {
  text = trim(text);
  if (text.empty() || text.size() > 64) return std::nullopt;
  if (auto t = parse_rfc3339(text)) return t;
  return parse_rfc5322(text);
}

std::string handler_error_type(long status) {
  switch (status) {
    case 400: return "BAD_REQUEST";
    case 401: return "UNAUTHENTICATED";
    case 403: return "UNAUTHORIZED";
    case 404: return "NOT_FOUND";
    case 408: return "REQUEST_TIMEOUT";
    case 409: return "CONFLICT";
    case 429: return "RESOURCE_EXHAUSTED";
    case 500: return "INTERNAL";
    case 501: return "NOT_IMPLEMENTED";
    case 503: return "UNAVAILABLE";
    case 520: return "UPSTREAM_TIMEOUT";
    default: return "UNKNOWN";
  }
}

Json result_of(std::string_view content_type, std::string_view body, bool strict, std::string* error) {
  if (body.empty()) return Json();
  if (is_json_type(content_type)) {
    std::optional<Json> j = parse_json(body);
    if (j && storable(*j, kMaxJsonDepth)) return std::move(*j);
    if (!j && strict) {
      if (error != nullptr) *error = "the body is not valid JSON (UTF-8) although its content type says JSON";
      return Json();
    }
  }
  return base64_form(content_type, body);  // kept byte for byte
}

StartAnswer classify_start(const sync::CallResult& r) {
  StartAnswer a;
  try {
    if (r.status == 0) {
      a.kind = StartKind::kTransport;
      a.retryable = true;
      a.error = safe_text("no answer from Temporal's Nexus handler: " + r.transport_error, kMaxErrorText);
      return a;
    }
    if (r.status == 200 || r.status == 201 || r.status == 424) a.links = parse_links(all_headers(r.headers, "nexus-link"));
    if (r.status == 200) {
      if (r.body_truncated) {
        a.kind = StartKind::kFailed;
        a.failure = Json{{"message", "the operation succeeded, but its result is larger than pg_gateway keeps (gateway.callback_max_body, at most 16 MiB)"},
                         {"details", {{"type", "result_too_large"}}}};
        return a;
      }
      a.kind = StartKind::kSucceeded;
      a.result = result_of(r.content_type, r.body);
      return a;
    }
    if (r.status == 201) {
      OperationInfo info = parse_operation_info(r.body);
      if (!info.error.empty()) {
        // Started, but we cannot tell which operation: the same request id gets the same token.
        a.kind = StartKind::kHandlerError;
        a.retryable = true;
        a.error = "Temporal answered 201 (started) without a usable operation: " + info.error;
        a.failure = Json{{"message", a.error}, {"metadata", {{"type", "nexus.HandlerError"}}},
                         {"details", {{"type", "UNKNOWN"}, {"status", 201}, {"retryable", true}}}};
        return a;
      }
      a.kind = StartKind::kRunning;
      a.token = info.token;
      return a;
    }
    if (r.status == 424) {
      std::optional<Json> body = r.body_truncated ? std::nullopt : parse_json(r.body);
      FailureRead f;
      if (body) f = parse_failure(*body);
      if (!body || !f.error.empty()) {
        const std::string why = body ? f.error : "not JSON";
        f.failure = Json{{"message", safe_text("the operation ended unsuccessfully, but its Failure could not be read: " + why, kMaxErrorText)},
                         {"details", {{"type", "unreadable_failure"}, {"body", safe_text(r.body, 2000)}}}};
      }
      a.failure = std::move(f.failure);
      a.kind = StartKind::kFailed;
      const std::string* state = header(r.headers, "nexus-operation-state");
      if (state != nullptr && (iequals(trim(*state), "canceled") || iequals(trim(*state), "failed"))) {
        a.kind = iequals(trim(*state), "canceled") ? StartKind::kCanceled : StartKind::kFailed;
      } else if (a.failure.contains("details") && a.failure["details"].is_object() &&
                 a.failure["details"].value("state", Json()) == "canceled") {
        a.kind = StartKind::kCanceled;
      }
      return a;
    }
    return handler_error(r);
  } catch (const std::exception& e) {
    StartAnswer out;
    out.kind = StartKind::kHandlerError;
    out.retryable = true;
    out.error = safe_text(std::string("reading the Nexus answer failed: ") + e.what(), kMaxErrorText);
    out.failure = Json{{"message", out.error}};
    return out;
  }
}

Completion parse_completion(const Headers& headers, std::string_view body, std::size_t max_body) {
  Completion c;
  const auto fail = [&c](const std::string& error) {
    Completion bad;
    bad.error = safe_text(error, kMaxErrorText);
    bad.too_large = c.too_large;
    return bad;
  };
  try {
    if (body.size() > max_body) {
      c.too_large = true;
      return fail("the completion body is larger than " + std::to_string(max_body) + " bytes (gateway.callback_max_body)");
    }
    const std::string* state = header(headers, "nexus-operation-state");
    if (state == nullptr) return fail("the completion has no Nexus-Operation-State header");
    const std::string_view s = trim(*state);
    if (iequals(s, "succeeded")) {
      c.state = "succeeded";
    } else if (iequals(s, "failed")) {
      c.state = "failed";
    } else if (iequals(s, "canceled")) {
      c.state = "canceled";
    } else {
      return fail("Nexus-Operation-State " + quoted(s, 64) + " is not succeeded, failed or canceled");
    }
    const std::string* type = header(headers, "content-type");
    if (c.state == "succeeded") {
      std::string error;
      c.result = result_of(type != nullptr ? *type : std::string(), body, /*strict=*/true, &error);
      if (!error.empty()) return fail("the completion's result: " + error);
    } else {
      std::optional<Json> j = parse_json(body);
      if (!j || !j->is_object()) return fail("a " + c.state + " completion must carry a Failure JSON object");
      FailureRead f = parse_failure(*j);
      if (!f.error.empty()) return fail("the completion's Failure: " + f.error);
      c.failure = std::move(f.failure);
    }
    c.links = parse_links(all_headers(headers, "nexus-link"));
    if (const std::string* token = header(headers, "nexus-operation-token"); token != nullptr && valid_token(*token)) {
      c.token = *token;
    }
    if (const std::string* t = header(headers, "nexus-operation-start-time")) c.start_time = parse_time(*t);
    // The spec makes the close time a must-be-valid RFC 3339 stamp: a sender writing garbage there
    // is broken, and the completion is refused rather than dated by guesswork. (An unreadable start
    // time is only informational and is dropped.)
    if (const std::string* t = header(headers, "nexus-operation-close-time")) {
      c.close_time = parse_time(*t);
      if (!c.close_time) return fail("Nexus-Operation-Close-Time is not an RFC 3339 timestamp");
    }
    return c;
  } catch (const std::exception& e) {
    return fail(std::string("unreadable completion: ") + e.what());
  }
}

}  // namespace gateway::nexus
