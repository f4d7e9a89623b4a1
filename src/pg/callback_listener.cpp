// The Nexus completion callback listener (see callback_listener.hpp). HTTP is libmicrohttpd's, in
// its external-polling epoll mode: no thread of its own, because the backend is single-threaded
// and the database is used from the access handler, on this process's only thread. A request is
// answered only after its transaction committed, so a 2xx tells Temporal the completion is durable.
#include "callback_listener.hpp"

// Core and system headers before any PostgreSQL header: PostgreSQL redefines snprintf.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include <cctype>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <sodium.h>

#include "../core/nexus_call.hpp"
#include "../core/error.hpp"
#include "error_bridge.hpp"
#include "postgres.hpp"
#include "secrets.hpp"
#include "settings.hpp"
#include "uuid.hpp"
#include "worker_transaction.hpp"

extern "C" {
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "tcop/tcopprot.h"
#include "utils/elog.h"
}

extern "C" PGDLLEXPORT void gateway_callback_listener_main(Datum);

namespace gateway::pg {
namespace {

constexpr unsigned kConnectionTimeoutS = 10;    // idle time; libmicrohttpd restarts it on every byte
constexpr unsigned kConnectionLimit = 64;
constexpr std::size_t kConnectionMemory = 64 * 1024;  // headers (Nexus-Link lines) fit
constexpr long kMaxWaitMs = 1000;
constexpr long kBindRetryMs = 5000;

using Headers = std::vector<std::pair<std::string, std::string>>;  // names lower-cased

// A log line from inside libmicrohttpd's frames: an error in ereport itself must not longjmp
// over them.
void log_line(int level, const std::string& message) {
  try {
    pg_call([&] { ereport(level, (errmsg("pg_gateway callback listener: %s", message.c_str()))); });
  } catch (...) {
  }
}

// Open connections and when each was accepted: libmicrohttpd's timeout counts idle time only,
// so a client trickling a byte every few seconds would hold a slot for ever. The loop shuts down
// a connection's socket once it is older than gateway.callback_request_timeout (libmicrohttpd
// then closes it as a dropped connection).
std::map<int, TimestampTz> connection_opened;

void on_connection(void*, MHD_Connection* connection, void**, MHD_ConnectionNotificationCode code) noexcept {
  const MHD_ConnectionInfo* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (info == nullptr) return;
  try {
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
      connection_opened[info->connect_fd] = GetCurrentTimestamp();
    } else {
      connection_opened.erase(info->connect_fd);
    }
  } catch (...) {
  }
}

// Shuts down connections past their time; returns how long until the next one is due (ms).
long close_overdue_connections() {
  const TimestampTz now = GetCurrentTimestamp();
  long next = kMaxWaitMs;
  for (const auto& [fd, opened] : connection_opened) {
    const TimestampTz due = TimestampTzPlusMilliseconds(opened, settings.callback_request_timeout_ms);
    if (now >= due) {
      shutdown(fd, SHUT_RDWR);
      log_line(LOG, "closed a connection that took longer than gateway.callback_request_timeout");
    } else {
      next = std::min(next, static_cast<long>((due - now) / 1000) + 1);
    }
  }
  return next;
}

// One request being received: the call it completes and its body so far.
struct Request {
  std::string call_id;
  std::string body;
  std::size_t max_body = 0;
  bool too_large = false;
  bool answered = false;  // refused before the body: the rest is discarded
};

// The canonical (lower-case) text of a uuid in 8-4-4-4-12 form, or nullopt.
std::optional<std::string> canonical_uuid(std::string_view text) {
  if (text.size() != 36) return std::nullopt;
  std::string out(text);
  for (std::size_t i = 0; i < out.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? out[i] != '-' : !std::isxdigit(static_cast<unsigned char>(out[i]))) return std::nullopt;
    out[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(out[i])));
  }
  return out;
}

MHD_Result answer(MHD_Connection* connection, unsigned status, const char* message) {
  MHD_Response* response = nullptr;
  if (message == nullptr) {
    response = MHD_create_response_from_buffer(0, nullptr, MHD_RESPMEM_PERSISTENT);
  } else {
    const std::string body = nlohmann::json{{"message", message}}.dump();
    response = MHD_create_response_from_buffer(body.size(), const_cast<char*>(body.data()),
                                               MHD_RESPMEM_MUST_COPY);
    if (response != nullptr) MHD_add_response_header(response, "Content-Type", "application/json");
  }
  if (response == nullptr) return MHD_NO;
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED) MHD_add_response_header(response, "Allow", "POST");
  const MHD_Result queued = MHD_queue_response(connection, status, response);
  MHD_destroy_response(response);
  return queued;
}

// A refusal: logged with the call id and the reason, never the token or the body.
MHD_Result refuse(MHD_Connection* connection, unsigned status, const std::string& call_id,
                  const char* reason) {
  log_line(LOG, "refused a completion" +
                    (call_id.empty() ? std::string() : " for call " + call_id) + " with " +
                    std::to_string(status) + ": " + reason);
  return answer(connection, status, reason);
}


MHD_Result collect_header(void* cls, MHD_ValueKind, const char* key, const char* value) {
  auto* headers = static_cast<Headers*>(cls);
  std::string name = key != nullptr ? key : "";
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  headers->emplace_back(std::move(name), value != nullptr ? value : "");
  return MHD_YES;
}

constexpr char kCompleteSql[] =
    "SELECT gateway._connector_call_complete($1::uuid, $2, $3::jsonb, $4::jsonb, $5::jsonb, $6, "
    "to_timestamp($7::float8), to_timestamp($8::float8))";

std::optional<std::string> json_text(const nlohmann::json& value, bool present) {
  if (!present) return std::nullopt;
  return value.dump();
}

std::optional<std::string> time_text(const std::optional<double>& seconds) {
  if (!seconds) return std::nullopt;
  char text[64];
  snprintf(text, sizeof text, "%.6f", *seconds);
  return std::string(text);
}

// Records the completion in its own transaction and answers by its verdict once committed.
MHD_Result record(MHD_Connection* connection, const std::string& call_id, const nexus::Completion& c) {
  std::optional<std::string> verdict;
  std::string error;
  int sqlstate = 0;
  try {
    begin_worker_transaction("pg_gateway callback listener: completing a call");
    const bool succeeded = c.state == "succeeded";
    auto rows = spi_query(kCompleteSql, {call_id, c.state, json_text(c.result, succeeded),
                                         json_text(c.failure, !succeeded),
                                         json_text(c.links, c.links.is_array() && !c.links.empty()),
                                         c.token.empty() ? std::nullopt : std::optional<std::string>(c.token),
                                         time_text(c.start_time), time_text(c.close_time)});
    if (!rows.empty() && !rows[0].empty()) verdict = rows[0][0];
    commit_worker_transaction();
  } catch (const PgError& e) {
    // Copied before the rollback frees the transaction's memory, where the error lives.
    sqlstate = e.data->sqlerrcode;
    error = e.data->message != nullptr ? e.data->message : "unknown error";
    rollback_worker_transaction();
  } catch (const std::exception& e) {
    error = e.what();
    rollback_worker_transaction();
  }
  if (!error.empty()) {
    // A value PostgreSQL cannot read (a header's timestamp) is the caller's fault; anything else
    // is ours, and Temporal retries a 503.
    if (ERRCODE_TO_CATEGORY(sqlstate) == ERRCODE_DATA_EXCEPTION) {
      return refuse(connection, MHD_HTTP_BAD_REQUEST, call_id,
                    ("a completion value is invalid: " + error).c_str());
    }
    log_line(LOG, "recording the completion of call " + call_id + " failed: " + error);
    return refuse(connection, MHD_HTTP_SERVICE_UNAVAILABLE, call_id, "the database is unavailable");
  }
  if (verdict == std::optional<std::string>("accepted")) return answer(connection, MHD_HTTP_OK, nullptr);
  if (verdict == std::optional<std::string>("unknown")) {
    return refuse(connection, MHD_HTTP_NOT_FOUND, call_id, "no such call");
  }
  if (verdict == std::optional<std::string>("finished")) {
    return refuse(connection, MHD_HTTP_CONFLICT, call_id, "the call has already finished");
  }
  log_line(LOG, "gateway._connector_call_complete answered \"" + verdict.value_or("NULL") +
                    "\" for call " + call_id);
  return refuse(connection, MHD_HTTP_SERVICE_UNAVAILABLE, call_id, "unexpected answer from the database");
}

// The first call for a request (headers received): path, method and token are checked before any
// of the body is read, so an unauthenticated caller cannot make us buffer anything.
MHD_Result start_request(MHD_Connection* connection, const char* url, const char* method,
                         void** state) {
  auto* request = new Request();
  *state = request;  // freed by request_completed, whatever happens next
  request->answered = true;
  constexpr std::string_view kPrefix = "/nexus/calls/";
  const std::string_view path(url != nullptr ? url : "");
  std::optional<std::string> call_id;
  if (path.substr(0, kPrefix.size()) == kPrefix) call_id = canonical_uuid(path.substr(kPrefix.size()));
  if (!call_id) return refuse(connection, MHD_HTTP_NOT_FOUND, "", "not a completion callback path");
  request->call_id = *call_id;
  if (std::strcmp(method, MHD_HTTP_METHOD_POST) != 0) {
    return refuse(connection, MHD_HTTP_METHOD_NOT_ALLOWED, request->call_id, "only POST is served");
  }
  const char* presented = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "Pg-Gateway-Token");
  if (presented == nullptr) {
    return refuse(connection, MHD_HTTP_UNAUTHORIZED, request->call_id, "the Pg-Gateway-Token header is missing");
  }
  bool valid = false;
  try {
    valid = nexus::callback_token_valid(callback_key(), request->call_id, presented);
  } catch (const Error& e) {
    log_line(LOG, std::string("cannot check callback tokens: ") + e.what());
    return refuse(connection, MHD_HTTP_SERVICE_UNAVAILABLE, request->call_id, "the master key is unavailable");
  }
  if (!valid) return refuse(connection, MHD_HTTP_UNAUTHORIZED, request->call_id, "the Pg-Gateway-Token is invalid");
  request->max_body = static_cast<std::size_t>(settings.callback_max_body);
  if (const char* length = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "Content-Length")) {
    errno = 0;
    char* end = nullptr;
    const unsigned long long n = std::strtoull(length, &end, 10);
    if (errno != 0 || end == length || n > request->max_body) {
      return refuse(connection, MHD_HTTP_CONTENT_TOO_LARGE, request->call_id,
                    "the body is larger than gateway.callback_max_body");
    }
  }
  request->answered = false;
  return MHD_YES;
}

MHD_Result handle(MHD_Connection* connection, const char* url, const char* method,
                  const char* upload_data, std::size_t* upload_size, void** state) {
  auto* request = static_cast<Request*>(*state);
  if (request == nullptr) return start_request(connection, url, method, state);
  if (request->answered) {  // a refusal is queued; the rest of the body is dropped
    *upload_size = 0;
    return MHD_YES;
  }
  if (*upload_size > 0) {
    if (!request->too_large && request->body.size() + *upload_size > request->max_body) {
      request->too_large = true;
      std::string().swap(request->body);
    }
    if (!request->too_large) request->body.append(upload_data, *upload_size);
    *upload_size = 0;
    return MHD_YES;
  }
  request->answered = true;
  if (request->too_large) {
    return refuse(connection, MHD_HTTP_CONTENT_TOO_LARGE, request->call_id,
                  "the body is larger than gateway.callback_max_body");
  }
  Headers headers;
  MHD_get_connection_values(connection, MHD_HEADER_KIND, &collect_header, &headers);
  nexus::Completion completion = nexus::parse_completion(headers, request->body, request->max_body);
  if (completion.too_large) {
    return refuse(connection, MHD_HTTP_CONTENT_TOO_LARGE, request->call_id,
                  "the body is larger than gateway.callback_max_body");
  }
  if (!completion.error.empty()) {
    return refuse(connection, MHD_HTTP_BAD_REQUEST, request->call_id, completion.error.c_str());
  }
  return record(connection, request->call_id, completion);
}

// libmicrohttpd's access handler: C frames around it, so nothing may be thrown out of it.
MHD_Result on_request(void*, MHD_Connection* connection, const char* url, const char* method,
                      const char*, const char* upload_data, std::size_t* upload_size,
                      void** state) noexcept {
  try {
    return handle(connection, url, method, upload_data, upload_size, state);
  } catch (...) {
    log_line(LOG, "a request failed inside the listener; its connection is closed");
    return MHD_NO;
  }
}

void request_completed(void*, MHD_Connection*, void** state, MHD_RequestTerminationCode) noexcept {
  delete static_cast<Request*>(*state);
  *state = nullptr;
}

void mhd_log(void*, const char* format, va_list args) {
  char line[512];
  vsnprintf(line, sizeof line, format, args);
  std::string text = line;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  log_line(LOG, "libmicrohttpd: " + text);
}

// Binds the configured address (our own socket, so a failure can name its errno) and starts
// libmicrohttpd on it, with `epoll_fd` its epoll set; nullptr and `error` when either fails.
MHD_Daemon* start_daemon(const sockaddr_in& address, std::string& error, int& epoll_fd) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    error = std::string("could not create a socket: ") + strerror(errno);
    return nullptr;
  }
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
      listen(fd, 128) != 0) {
    error = strerror(errno);
    close(fd);
    return nullptr;
  }
  MHD_Daemon* daemon = MHD_start_daemon(
      MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, nullptr, nullptr, &on_request, nullptr,
      MHD_OPTION_EXTERNAL_LOGGER, &mhd_log, nullptr,  // first, or earlier options log to stderr
      MHD_OPTION_LISTEN_SOCKET, static_cast<MHD_socket>(fd),
      MHD_OPTION_CONNECTION_TIMEOUT, kConnectionTimeoutS,
      MHD_OPTION_CONNECTION_LIMIT, kConnectionLimit,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, kConnectionMemory,
      MHD_OPTION_NOTIFY_COMPLETED, &request_completed, nullptr,
      MHD_OPTION_NOTIFY_CONNECTION, &on_connection, nullptr,
      MHD_OPTION_END);
  if (daemon == nullptr) {
    error = "libmicrohttpd could not start (see the lines above)";
    close(fd);
    return nullptr;
  }
  const MHD_DaemonInfo* info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_EPOLL_FD);
  epoll_fd = info != nullptr ? info->epoll_fd : -1;
  if (epoll_fd < 0) {  // the epoll mode always has one; without it there is nothing to wait on
    MHD_stop_daemon(daemon);  // closes the listening socket too
    error = "libmicrohttpd has no epoll descriptor";
    return nullptr;
  }
  return daemon;
}

// PostgreSQL's own interrupts (a cancel, barriers), where an ERROR cannot longjmp over C++ frames.
void process_interrupts() {
  if (!INTERRUPTS_PENDING_CONDITION()) return;
  try {
    pg_call([] { CHECK_FOR_INTERRUPTS(); });
  } catch (const PgError& e) {
    ereport(LOG, (errmsg("pg_gateway callback listener: interrupt: %s",
                         e.data->message != nullptr ? e.data->message : "")));
  }
}

void handle_signals() {
  if (ConfigReloadPending) {
    ConfigReloadPending = false;
    ProcessConfigFile(PGC_SIGHUP);  // gateway.callback_max_body applies to the next requests
  }
}

}  // namespace

bool parse_listen_address(const char* text, sockaddr_in* out, std::string& error) {
  const std::string value = text != nullptr ? text : "";
  const std::size_t colon = value.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == value.size()) {
    error = "\"" + value + "\" is not host:port.";
    return false;
  }
  std::string host = value.substr(0, colon);
  const std::string port = value.substr(colon + 1);
  if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stol(port) < 1 || std::stol(port) > 65535) {
    error = "\"" + port + "\" is not a port number (1-65535).";
    return false;
  }
  if (host == "localhost") host = "127.0.0.1";
  in_addr address{};
  if (inet_pton(AF_INET, host.c_str(), &address) != 1) {
    error = "\"" + host + "\" is not an IPv4 address or localhost.";
    return false;
  }
  if (out != nullptr) {
    std::memset(out, 0, sizeof *out);
    out->sin_family = AF_INET;
    out->sin_port = htons(static_cast<std::uint16_t>(std::stol(port)));
    out->sin_addr = address;
  }
  return true;
}

std::string callback_base_url() {
  if (settings.callback_listen == nullptr || settings.callback_listen[0] == '\0') return "";
  std::string base = settings.callback_url != nullptr && settings.callback_url[0] != '\0'
                         ? std::string(settings.callback_url)
                         : std::string("http://") + settings.callback_listen;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base;
}

void register_callback_listener() {
  if (settings.callback_listen == nullptr || settings.callback_listen[0] == '\0') return;
  BackgroundWorker worker{};
  worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
  worker.bgw_restart_time = 5;
  snprintf(worker.bgw_library_name, BGW_MAXLEN, "pg_gateway");
  snprintf(worker.bgw_function_name, BGW_MAXLEN, "gateway_callback_listener_main");
  snprintf(worker.bgw_name, BGW_MAXLEN, "pg_gateway callback listener");
  snprintf(worker.bgw_type, BGW_MAXLEN, "pg_gateway callback listener");
  RegisterBackgroundWorker(&worker);
}

}  // namespace gateway::pg

using namespace gateway::pg;

// Waits on its latch and libmicrohttpd's epoll set (readable when a connection or the listening
// socket has something), at most until libmicrohttpd's next connection timeout; then lets it run.
extern "C" void gateway_callback_listener_main(Datum) {
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
  BackgroundWorkerUnblockSignals();
  BackgroundWorkerInitializeConnection(settings.database, nullptr, 0);
  pgstat_report_appname("pg_gateway callback listener");
  // A completion waits this long at most for a row another transaction holds (the listener
  // serves one request at a time); then 503, and Temporal retries.
  // A 2xx tells Temporal to stop retrying, so it must follow a durable commit even where the
  // administrator turned synchronous_commit off for speed.
  try {
    pg_call([] {
      SetConfigOption("lock_timeout", "5s", PGC_SUSET, PGC_S_OVERRIDE);
      if (synchronous_commit == SYNCHRONOUS_COMMIT_OFF) {
        SetConfigOption("synchronous_commit", "on", PGC_SUSET, PGC_S_OVERRIDE);
      }
    });
  } catch (const PgError&) {
  }

  sockaddr_in address{};
  std::string error;
  if (!parse_listen_address(settings.callback_listen, &address, error)) {
    // The check hook refuses such a value; kept so a bad one can never bind something else.
    ereport(LOG, (errmsg("pg_gateway callback listener: gateway.callback_listen: %s", error.c_str())));
    proc_exit(1);
  }

  MHD_Daemon* daemon = nullptr;
  int epoll_fd = -1;
  int bind_failures = 0;
  while (!ShutdownRequestPending) {
    if (daemon == nullptr) {
      daemon = start_daemon(address, error, epoll_fd);
      if (daemon == nullptr) {
        // Logged at the first failure and then once a minute, tried every few seconds.
        if (bind_failures++ % 12 == 0) {
          ereport(LOG, (errmsg("pg_gateway callback listener could not listen on %s: %s",
                               settings.callback_listen, error.c_str()),
                        errhint("Free the address or change gateway.callback_listen (a restart "
                                "is needed). The listener tries again every %ld seconds; "
                                "Temporal retries completions until then.",
                                kBindRetryMs / 1000)));
        }
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, kBindRetryMs,
                        PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        process_interrupts();
        handle_signals();
        continue;
      }
      bind_failures = 0;
      ereport(LOG, (errmsg("pg_gateway callback listener listening on %s in database \"%s\"",
                           settings.callback_listen, settings.database)));
    }

    long timeout = close_overdue_connections();
    MHD_UNSIGNED_LONG_LONG mhd_timeout = 0;
    if (MHD_get_timeout(daemon, &mhd_timeout) == MHD_YES && mhd_timeout < static_cast<MHD_UNSIGNED_LONG_LONG>(timeout)) {
      timeout = static_cast<long>(mhd_timeout);
    }
    long stats_due = pgstat_report_stat(false);
    if (stats_due > 0 && stats_due < timeout) timeout = stats_due;
    (void)WaitLatchOrSocket(MyLatch,
                            WL_LATCH_SET | WL_SOCKET_READABLE | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
                            epoll_fd, timeout, PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
    process_interrupts();
    if (ShutdownRequestPending) break;
    handle_signals();
    MHD_run(daemon);
  }

  if (daemon != nullptr) MHD_stop_daemon(daemon);
  ereport(LOG, (errmsg("pg_gateway callback listener stopped")));
  // As the sync worker: exit code 1 has the postmaster start it again (pg_terminate_backend is a
  // restart); during a shutdown nothing is restarted.
  proc_exit(1);
}

extern "C" {
PG_FUNCTION_INFO_V1(gateway_callback_token);
}

// gateway._callback_token(call_id uuid) -> text: the token a completion for this call must carry.
// Superuser only (tests and diagnostics); the start request computes it itself.
extern "C" Datum gateway_callback_token(PG_FUNCTION_ARGS) {
  using namespace gateway;
  return sql_function([&]() -> Datum {
    pg_call([] {
      if (!superuser()) {
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("permission denied for function _callback_token"),
                        errhint("Only a superuser may compute a callback token.")));
      }
    });
    const std::string call_id = id_to_text(uuid_to_id(PG_GETARG_DATUM(0)));
    const std::string token = nexus::callback_token(callback_key(), call_id);
    Datum out = 0;
    pg_call([&] { out = CStringGetTextDatum(token.c_str()); });
    return out;
  });
}
