#include "http_client.hpp"

#include <curl/curl.h>
#include <sodium.h>
#include <poll.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string_view>
#include <stdexcept>
#include <utility>

#include "error.hpp"
#include "private_file.hpp"
#include "cpp_only.hpp"  // last: proves no PostgreSQL header came in above

namespace gateway::http {

namespace {

void check(CURLcode code, const char* what) {
  if (code != CURLE_OK) throw std::runtime_error(std::string(what) + ": " + curl_easy_strerror(code));
}

void check(CURLMcode code, const char* what) {
  if (code != CURLM_OK) throw std::runtime_error(std::string(what) + ": " + curl_multi_strerror(code));
}

// Answers are small; a runaway body is cut (and said to be) rather than held.
std::size_t append_body(Response* response, std::size_t limit, const char* data, std::size_t n) {
  const std::size_t room = limit - std::min(limit, response->body.size());
  if (n > room) response->body_truncated = true;
  response->body.append(data, std::min(n, room));
  return n;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user) {
  auto* response = static_cast<Response*>(user);
  const std::size_t n = size * count;
  std::string_view line(data, n);
  if (line.compare(0, 5, "HTTP/") == 0) {
    // A new answer's status line (after a 1xx): only the final answer's headers count.
    response->headers.clear();
    response->content_type.clear();
    response->retry_after_s = -1;
    return n;
  }
  const std::size_t colon = line.find(':');
  // Blank end-of-headers line, obsolete folded continuation lines, lines without a name.
  if (colon == std::string_view::npos || colon == 0 || is_space(line[0])) return n;
  std::string name(line.substr(0, colon));
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && is_space(value.front())) value.remove_prefix(1);
  while (!value.empty() && is_space(value.back())) value.remove_suffix(1);
  if (name == "retry-after") response->retry_after_s = std::strtol(std::string(value).c_str(), nullptr, 10);
  if (name == "content-type") response->content_type = std::string(value.substr(0, kMaxHeaderValueBytes));
  if (response->headers.size() < kMaxResponseHeaders) {
    response->headers.emplace_back(std::move(name), std::string(value.substr(0, kMaxHeaderValueBytes)));
  }
  return n;
}

// The header name of a "Name: value" line, lower-cased.
std::string header_name(const std::string& line) {
  std::string name = line.substr(0, line.find(':'));
  while (!name.empty() && is_space(name.back())) name.pop_back();
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

// Frees a header list after wiping its text: a per-request list may carry a connector's token.
void free_wiped(curl_slist* list) {
  for (curl_slist* item = list; item != nullptr; item = item->next) {
    if (item->data != nullptr) sodium_memzero(item->data, std::strlen(item->data));
  }
  curl_slist_free_all(list);
}

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// One counter for every client: a rebuilt client never reuses a generation of the old one.
std::uint64_t last_generation = 0;

}  // namespace

struct Client::Transfer {
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  Request request;
  Callback done;
  Response response;
  char error[CURL_ERROR_SIZE] = {0};
  ~Transfer() { free_wiped(headers); }  // this request's own header lines, if any
};

int Client::on_socket(void*, int fd, int what, void* self, void*) {
  auto* client = static_cast<Client*>(self);
  if (what == CURL_POLL_REMOVE) {
    client->sockets_.erase(fd);
  } else {
    client->sockets_[fd] = WaitSocket{fd, (what & CURL_POLL_IN) != 0, (what & CURL_POLL_OUT) != 0};
  }
  client->generation_ = ++last_generation;
  return 0;
}

int Client::on_timer(void*, long timeout_ms, void* self) {
  auto* client = static_cast<Client*>(self);
  client->timer_due_ms_ = timeout_ms < 0 ? -1 : steady_ms() + timeout_ms;
  return 0;
}

void global_init() {
  static bool done = false;
  if (!done) {
    check(curl_global_init(CURL_GLOBAL_DEFAULT), "curl_global_init");
    done = true;
  }
}

Client::Client(ClientOptions options) : options_(std::move(options)) {
  global_init();
  multi_ = curl_multi_init();
  if (multi_ == nullptr) throw std::runtime_error("curl_multi_init failed");
  CURLM* multi = static_cast<CURLM*>(multi_);
  check(curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, static_cast<long>(options_.max_in_flight)),
        "CURLMOPT_MAX_HOST_CONNECTIONS");
  check(curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, static_cast<long>(options_.max_in_flight)),
        "CURLMOPT_MAXCONNECTS");
  // CURL and CURLM are void and curl_socket_t is int here: the callbacks' exact types.
  curl_socket_callback on_socket_fn = &Client::on_socket;
  curl_multi_timer_callback on_timer_fn = &Client::on_timer;
  check(curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket_fn), "CURLMOPT_SOCKETFUNCTION");
  check(curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, this), "CURLMOPT_SOCKETDATA");
  check(curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer_fn), "CURLMOPT_TIMERFUNCTION");
  check(curl_multi_setopt(multi, CURLMOPT_TIMERDATA, this), "CURLMOPT_TIMERDATA");
  generation_ = ++last_generation;
  curl_slist* headers = nullptr;
  for (const std::string& h : shared_lines()) headers = curl_slist_append(headers, h.c_str());
  shared_headers_ = headers;
}

std::vector<std::string> Client::shared_lines() const {
  std::vector<std::string> lines{"Content-Type: application/json", "Accept: application/json",
                                 "Expect:"};  // Expect: no 100-continue round trip
  lines.insert(lines.end(), options_.headers.begin(), options_.headers.end());
  return lines;
}

Client::~Client() {
  CURLM* multi = static_cast<CURLM*>(multi_);
  // Abandon transfers still running: their callbacks never run (the owner is going away).
  for (Transfer* t : live_) {
    curl_multi_remove_handle(multi, t->easy);
    curl_easy_cleanup(t->easy);
    delete t;
  }
  curl_multi_cleanup(multi);
  curl_slist_free_all(static_cast<curl_slist*>(shared_headers_));
}

void Client::submit(Request request, Callback done) {
  queue_.emplace_back(std::move(request), std::move(done));
  start_queued();
}

void Client::start_queued() {
  CURLM* multi = static_cast<CURLM*>(multi_);
  while (!queue_.empty() && live_.size() < static_cast<std::size_t>(options_.max_in_flight)) {
    auto transfer = std::make_unique<Transfer>();
    transfer->request = std::move(queue_.front().first);
    transfer->done = std::move(queue_.front().second);
    queue_.pop_front();
    CURL* easy = curl_easy_init();
    if (easy == nullptr) throw std::runtime_error("curl_easy_init failed");
    transfer->easy = easy;
    const std::string url = options_.base_url + transfer->request.path;
    const std::string& method = transfer->request.method;
    check(curl_easy_setopt(easy, CURLOPT_URL, url.c_str()), "CURLOPT_URL");
    check(curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https"), "CURLOPT_PROTOCOLS_STR");
    check(curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L), "CURLOPT_NOSIGNAL");
    check(curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, options_.connect_timeout_ms), "CURLOPT_CONNECTTIMEOUT_MS");
    const long timeout_ms = transfer->request.timeout_ms > 0 ? transfer->request.timeout_ms : options_.timeout_ms;
    check(curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms), "CURLOPT_TIMEOUT_MS");
    if (!transfer->request.headers.empty()) {
      // This request's lines replace the shared lines of the same name.
      std::set<std::string> replaced;
      for (const std::string& h : transfer->request.headers) replaced.insert(header_name(h));
      curl_slist* list = nullptr;
      for (const std::string& h : shared_lines()) {
        if (replaced.count(header_name(h)) == 0) list = curl_slist_append(list, h.c_str());
      }
      for (const std::string& h : transfer->request.headers) list = curl_slist_append(list, h.c_str());
      transfer->headers = list;
    }
    curl_slist* header_list = transfer->headers != nullptr ? transfer->headers : static_cast<curl_slist*>(shared_headers_);
    check(curl_easy_setopt(easy, CURLOPT_HTTPHEADER, header_list), "CURLOPT_HTTPHEADER");
    curl_write_callback on_body = [](char* data, std::size_t size, std::size_t count, void* user) -> std::size_t {
      auto* t = static_cast<Transfer*>(user);
      const std::size_t asked = t->request.max_body_bytes;
      return append_body(&t->response, asked > 0 && asked < kMaxBodyBytes ? asked : kMaxBodyBytes, data, size * count);
    };
    check(curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body), "CURLOPT_WRITEFUNCTION");
    check(curl_easy_setopt(easy, CURLOPT_WRITEDATA, transfer.get()), "CURLOPT_WRITEDATA");
    check(curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header), "CURLOPT_HEADERFUNCTION");
    check(curl_easy_setopt(easy, CURLOPT_HEADERDATA, &transfer->response), "CURLOPT_HEADERDATA");
    check(curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, transfer->error), "CURLOPT_ERRORBUFFER");
    check(curl_easy_setopt(easy, CURLOPT_PRIVATE, transfer.get()), "CURLOPT_PRIVATE");
    check(curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L), "CURLOPT_TCP_NODELAY");
    if (!options_.ca_file.empty()) check(curl_easy_setopt(easy, CURLOPT_CAINFO, options_.ca_file.c_str()), "CURLOPT_CAINFO");
    if (!options_.client_cert.empty()) check(curl_easy_setopt(easy, CURLOPT_SSLCERT, options_.client_cert.c_str()), "CURLOPT_SSLCERT");
    if (options_.client_key) {
      // NOCOPY: libcurl reads the guarded buffer, which the options own for the client's life.
      curl_blob key{const_cast<std::uint8_t*>(options_.client_key->data()), options_.client_key->size(),
                    CURL_BLOB_NOCOPY};
      check(curl_easy_setopt(easy, CURLOPT_SSLKEY_BLOB, &key), "CURLOPT_SSLKEY_BLOB");
    }
    if (method == "GET") {
      check(curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L), "CURLOPT_HTTPGET");
    } else {
      check(curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method.c_str()), "CURLOPT_CUSTOMREQUEST");
      if (!transfer->request.body.empty() || method != "DELETE") {
        check(curl_easy_setopt(easy, CURLOPT_POSTFIELDS, transfer->request.body.c_str()), "CURLOPT_POSTFIELDS");
        check(curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(transfer->request.body.size())),
              "CURLOPT_POSTFIELDSIZE");
      }
    }
    check(curl_multi_add_handle(multi, easy), "curl_multi_add_handle");
    live_.insert(transfer.release());  // owned by live_ until finish()
  }
}

void Client::finish(Transfer* raw, int curl_code) {
  std::unique_ptr<Transfer> transfer(raw);
  live_.erase(raw);
  CURLM* multi = static_cast<CURLM*>(multi_);
  if (curl_code == CURLE_OK) {
    long status = 0;
    curl_easy_getinfo(transfer->easy, CURLINFO_RESPONSE_CODE, &status);
    transfer->response.status = status;
  } else {
    transfer->response.status = 0;
    transfer->response.transport_error = transfer->error[0] != '\0'
                                             ? transfer->error
                                             : curl_easy_strerror(static_cast<CURLcode>(curl_code));
  }
  curl_multi_remove_handle(multi, transfer->easy);
  curl_easy_cleanup(transfer->easy);
  // A body may carry an API key on its way to Kong, a header a connector's token: wipe them
  // before the memory is reused.
  sodium_memzero(transfer->request.body.data(), transfer->request.body.size());
  for (std::string& h : transfer->request.headers) sodium_memzero(h.data(), h.size());
  free_wiped(transfer->headers);  // before `done`, which may take long
  transfer->headers = nullptr;
  transfer->done(std::move(transfer->response));
}

int Client::drain_finished() {
  CURLM* multi = static_cast<CURLM*>(multi_);
  int finished = 0;
  CURLMsg* msg;
  int left = 0;
  while ((msg = curl_multi_info_read(multi, &left)) != nullptr) {
    if (msg->msg != CURLMSG_DONE) continue;
    Transfer* t = nullptr;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&t));
    int code = msg->data.result;
    finish(t, code);  // may submit follow-up requests
    ++finished;
  }
  return finished;
}

void Client::perform() {
  CURLM* multi = static_cast<CURLM*>(multi_);
  // Bounded: callbacks that keep finishing transfers at once (answers already buffered) get a few
  // rounds, then the caller's loop takes over.
  for (int round = 0; round < 64; ++round) {
    if (timer_due_ms_ >= 0 && steady_ms() >= timer_due_ms_) {
      timer_due_ms_ = -1;
      int running = 0;
      check(curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running), "curl_multi_socket_action");
    }
    int finished = drain_finished();
    start_queued();
    // New transfers ask for an immediate timeout (their first push) before anyone waits.
    const bool due_now = timer_due_ms_ >= 0 && steady_ms() >= timer_due_ms_;
    if (finished == 0 && !due_now) break;
  }
}

void Client::socket_ready(int fd, bool readable, bool writable) {
  // A socket libcurl stopped watching meanwhile (another one's callback closed it) is skipped.
  if (sockets_.count(fd) == 0) return;
  int mask = (readable ? CURL_CSELECT_IN : 0) | (writable ? CURL_CSELECT_OUT : 0);
  int running = 0;
  check(curl_multi_socket_action(static_cast<CURLM*>(multi_), fd, mask, &running),
        "curl_multi_socket_action");
  perform();
}

void Client::wait_spec(std::vector<WaitSocket>& sockets, long& timeout_ms) const {
  sockets.clear();
  if (live_.empty()) {
    timeout_ms = queue_.empty() ? -1 : 0;
    return;
  }
  for (const auto& [fd, socket] : sockets_) {
    if (socket.read || socket.write) sockets.push_back(socket);
  }
  timeout_ms = timer_due_ms_ < 0 ? -1 : static_cast<long>(std::max<std::int64_t>(0, timer_due_ms_ - steady_ms()));
}

void Client::run_until_idle() {
  perform();
  std::vector<WaitSocket> sockets;
  std::vector<pollfd> fds;
  while (active() > 0) {
    long timeout_ms = -1;
    wait_spec(sockets, timeout_ms);
    fds.clear();
    for (const WaitSocket& w : sockets) {
      fds.push_back(pollfd{w.fd, static_cast<short>((w.read ? POLLIN : 0) | (w.write ? POLLOUT : 0)), 0});
    }
    int n = ::poll(fds.data(), fds.size(), static_cast<int>(timeout_ms < 0 ? 1000 : timeout_ms));
    if (n < 0 && errno != EINTR) throw std::runtime_error("poll failed");
    for (const pollfd& p : fds) {
      if (p.revents == 0) continue;
      socket_ready(p.fd, (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0, (p.revents & (POLLOUT | POLLERR)) != 0);
    }
    perform();
  }
}

std::shared_ptr<const SecureBuffer> load_client_key(const std::string& path, const FileRole& role) {
  std::size_t length = 0;
  auto key = std::make_shared<SecureBuffer>(read_private_file(
      path, role.what, "a PEM private key",
      "Point " + role.setting + " at the PEM key of the client certificate, chmod 600, owned by "
      "the database server user.",
      64 * 1024, &length));
  key->truncate(length);
  return key;
}

std::vector<std::string> load_header_file(const std::string& path, const FileRole& role) {
  std::size_t length = 0;
  SecureBuffer raw = read_private_file(
      path, role.what, "headers",
      "Write one \"Name: value\" line per header (e.g. " + role.example + "), chmod 600, owned "
      "by the database server user.",
      64 * 1024, &length);
  std::vector<std::string> headers;
  std::string text(reinterpret_cast<const char*>(raw.data()), length);
  std::size_t start = 0, number = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    std::size_t colon = line.find(':');
    bool name_ok = colon != std::string::npos && colon > 0;
    for (std::size_t i = 0; name_ok && i < colon; ++i) {
      unsigned char c = static_cast<unsigned char>(line[i]);
      name_ok = std::isalnum(c) || c == '-' || c == '_';
    }
    if (!name_ok) {
      sodium_memzero(text.data(), text.size());
      throw Error(sqlstate::kConfigFileError,
                  role.what + " \"" + path + "\" has a bad line " + std::to_string(number),
                  "Each line must be \"Name: value\" with a name of letters, digits, '-' and '_'.",
                  "Fix the line, then reload the configuration.");
    }
    headers.push_back(line);
  }
  sodium_memzero(text.data(), text.size());
  return headers;
}

}  // namespace gateway::http
