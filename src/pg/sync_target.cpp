#include "sync_target.hpp"

#include "postgres.hpp"
#include "settings.hpp"

extern "C" {
#include "access/xlog.h"
#include "miscadmin.h"
}

namespace gateway::pg {

namespace {
bool set(const char* value) { return value != nullptr && value[0] != '\0'; }
}  // namespace

http::ClientOptions client_options(const RemoteSettings& remote) {
  http::ClientOptions options;
  options.base_url = remote.url != nullptr ? remote.url : "";
  while (!options.base_url.empty() && options.base_url.back() == '/') options.base_url.pop_back();
  // Without its headers or key the target would refuse every request: Error goes to the engine,
  // which waits for a fixed file and a reload.
  if (set(remote.headers_file)) options.headers = http::load_header_file(remote.headers_file, remote.headers_role);
  if (set(remote.client_key)) options.client_key = http::load_client_key(remote.client_key, remote.key_role);
  options.ca_file = set(remote.ca_file) ? remote.ca_file : "";
  options.client_cert = set(remote.client_cert) ? remote.client_cert : "";
  options.connect_timeout_ms = remote.connect_timeout_ms;
  options.timeout_ms = remote.request_timeout_ms;
  options.max_in_flight = remote.concurrency;
  return options;
}

std::string owner_tag() {
  if (set(settings.kong_owner_tag)) return settings.kong_owner_tag;
  return "pg-gateway-" + std::to_string(GetSystemIdentifier()) + "-" + std::to_string(MyDatabaseId);
}

}  // namespace gateway::pg
