// Cross-project calls through Nexus: reading what Temporal's Nexus handler answers (start,
// completion callbacks) and the callback token. Pure: no I/O. Every reader takes hostile input
// (bad UTF-8, huge, deep, wrong JSON) without throwing, and everything it returns is storable:
// text is valid UTF-8 without NUL, JSON is shallow enough for jsonb.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "retry_policy.hpp"
#include "secure_buffer.hpp"

namespace gateway::nexus {

using Json = nlohmann::json;
// Response headers as http::Client records them: names lower-cased, values trimmed.
using Headers = std::vector<std::pair<std::string, std::string>>;

// --- Callback token ---------------------------------------------------------------------------
// base64url (no padding) of keyed BLAKE2b-256 of the call id's text, under a 32-byte key.
std::string callback_token(const SecureBuffer& key, std::string_view call_id);
// Constant time on tokens of the right length; false for any other length or bad base64.
bool callback_token_valid(const SecureBuffer& key, std::string_view call_id, std::string_view presented);

// `<base>/nexus/calls/<call id>` (a trailing '/' of the base is dropped).
std::string callback_url_for(std::string_view base, std::string_view call_id);

// --- Readers -----------------------------------------------------------------------------------
inline constexpr int kMaxCauseDepth = 32;     // nested `cause`s of a Failure
inline constexpr int kMaxJsonDepth = 100;     // nesting of any JSON we keep
inline constexpr std::size_t kMaxLinks = 32;  // Nexus-Link entries kept

struct FailureRead {
  Json failure;       // {"message": string, "metadata"?: {string: string}, "details"?: any, "cause"?: Failure, "stackTrace"?: string}
  std::string error;  // empty: `failure` is set
};
// A Nexus Failure object, normalized (unknown members dropped, texts made storable).
FailureRead parse_failure(const Json& value);

struct OperationInfo {
  std::string token;  // never empty when `error` is
  std::string state;  // as sent ("running"), may be empty
  std::string error;
};
// The 201 answer's body: {"token","state"} (before v1.31 also "id": taken as the token when
// there is no "token").
OperationInfo parse_operation_info(std::string_view body);

// Nexus-Link header values (each may hold several comma-separated `<url>; type="..."`) ->
// [{"url","type"}]. Entries without a url or a type, or not storable, are skipped; at most kMaxLinks.
Json parse_links(const std::vector<std::string>& values);

// A plausible operation token: 1..4096 bytes, printable ASCII (it goes back in a header).
bool valid_token(std::string_view token);

// Epoch seconds of an RFC 3339 or RFC 5322 (HTTP date) time; nullopt when it is neither.
std::optional<double> parse_time(std::string_view text);

// --- The start call's answer ------------------------------------------------------------------
enum class StartKind { kSucceeded, kRunning, kFailed, kCanceled, kHandlerError, kTransport };

struct StartAnswer {
  StartKind kind = StartKind::kTransport;
  Json result;                      // succeeded: the result (see result_of)
  std::string token;                // running
  Json failure;                     // failed/canceled: the operation's Failure; handler error: it as a Failure
  Json links = Json::array();       // from Nexus-Link
  bool retryable = false;           // handler error/transport: may a later attempt succeed?
  std::string error;                // handler error/transport: log-safe, at most 1000 bytes
};
// 200 succeeded; 201 running (no usable token: a retryable handler error); 424 failed/canceled
// (Nexus-Operation-State, else details.state of the Failure, else failed); handler errors by
// status with Nexus-Request-Retryable and details.retryableOverride; status 0 transport.
StartAnswer classify_start(const sync::CallResult& answer);

// A result body as it is stored: empty -> null; JSON content type (application/json, */*+json,
// with or without parameters) that parses and is storable -> the JSON; anything else ->
// {"contentType": ..., "base64": <the bytes>} so nothing is lost. `strict`: JSON that does not
// parse is an error (returned in `error`) instead.
Json result_of(std::string_view content_type, std::string_view body, bool strict = false, std::string* error = nullptr);

// Handler error type for an HTTP status (BAD_REQUEST, ..., UPSTREAM_TIMEOUT; UNKNOWN otherwise).
std::string handler_error_type(long status);

// --- Completion callbacks ---------------------------------------------------------------------
struct Completion {
  std::string state;               // succeeded | failed | canceled
  Json result;                     // succeeded
  Json failure;                    // failed/canceled
  Json links = Json::array();
  std::string token;               // Nexus-Operation-Token when valid, else empty
  std::optional<double> start_time, close_time;  // epoch seconds; absent when missing or invalid
  std::string error;               // non-empty: malformed completion (answer 400/413), nothing else set
  bool too_large = false;          // the error is the body's size (answer 413)
};
Completion parse_completion(const Headers& headers, std::string_view body, std::size_t max_body);

}  // namespace gateway::nexus
