#include "settings.hpp"

#include <string>

#include "callback_listener.hpp"
#include "postgres.hpp"

namespace gateway::pg {

Settings settings;

namespace {

bool check_callback_listen(char** value, void**, GucSource) {
  if (*value == nullptr || (*value)[0] == '\0') return true;
  std::string error;
  if (parse_listen_address(*value, nullptr, error)) return true;
  GUC_check_errdetail("%s", error.c_str());
  GUC_check_errhint("Use host:port with an IPv4 address or localhost, e.g. 127.0.0.1:8790; "
                    "empty runs no callback listener.");
  return false;
}

bool check_callback_url(char** value, void**, GucSource) {
  if (*value == nullptr || (*value)[0] == '\0') return true;
  const std::string url = *value;
  if (url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0) return true;
  GUC_check_errdetail("\"%s\" is not an http:// or https:// URL.", *value);
  GUC_check_errhint("Temporal calls <gateway.callback_url>/nexus/calls/<call id>; empty means "
                    "http://<gateway.callback_listen>.");
  return false;
}

// Less than a day is almost certainly a unit mistake ('90' meaning days, not seconds).
bool check_audit_retention(int* value, void**, GucSource) {
  if (*value == 0 || *value >= 24 * 3600) return true;
  GUC_check_errdetail("gateway.audit_retention must be 0 (keep every record) or at least 1 day.");
  GUC_check_errhint("Give a unit, e.g. '90d'.");
  return false;
}

}  // namespace

void define_settings() {
  DefineCustomStringVariable(
      "gateway.database", "Database in which the pg_gateway background worker runs.",
      "The extension must be created in this database. One database per cluster.",
      &settings.database, "postgres", PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);

  DefineCustomStringVariable(
      "gateway.master_key_file", "File holding the pg_gateway master key (64 hex characters).",
      "Must be owned by the server user and not accessible by group or others. Every hashing and "
      "encryption key of pg_gateway is derived from it.",
      &settings.master_key_file, "", PGC_POSTMASTER, GUC_SUPERUSER_ONLY, nullptr, nullptr,
      nullptr);

  DefineCustomStringVariable(
      "gateway.previous_master_key_file",
      "During a master key rotation: the file holding the previous master key.",
      "Credentials encrypted under keys derived from it keep decrypting until "
      "gateway.reencrypt_credentials() has moved them to the new master key.",
      &settings.previous_master_key_file, "", PGC_POSTMASTER, GUC_SUPERUSER_ONLY, nullptr,
      nullptr, nullptr);

  DefineCustomIntVariable(
      "gateway.api_key_pepper_version", "Pepper version used to hash newly issued API keys.",
      "Existing keys keep the version they were issued with, so raising it rotates the pepper for "
      "new keys without invalidating old ones.",
      &settings.pepper_version, 1, 1, 32767, PGC_SIGHUP, GUC_SUPERUSER_ONLY, nullptr, nullptr,
      nullptr);

  DefineCustomIntVariable(
      "gateway.usage_slots", "Keys tracked at once in shared memory for rate limits and last use.",
      "When more keys are in use, the least recently used idle key's rate-limit state is "
      "forgotten.",
      &settings.usage_slots, 16384, 64, 1 << 24, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);

  DefineCustomIntVariable(
      "gateway.usage_flush_interval",
      "How long the worker batches key usage before writing last_used_at and audit records.",
      nullptr, &settings.usage_flush_interval_ms, 10000, 100, 3600 * 1000, PGC_SIGHUP,
      GUC_UNIT_MS, nullptr, nullptr, nullptr);

  DefineCustomIntVariable(
      "gateway.last_used_resolution", "Resolution of api_keys.last_used_at.",
      "A key in constant use has its last_used_at rewritten at most once per this interval, "
      "which keeps the worker's writes proportional to keys in use, not to requests.",
      &settings.last_used_resolution_s, 900, 0, 24 * 3600, PGC_SIGHUP, GUC_UNIT_S, nullptr,
      nullptr, nullptr);

  DefineCustomBoolVariable(
      "gateway.audit_verify_failures", "Record failed API key verifications in the audit log.",
      "Failures are queued in shared memory and written by the worker; under a flood, the excess "
      "is counted instead of recorded.",
      &settings.audit_verify_failures, true, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);

  DefineCustomBoolVariable(
      "gateway.audit_decrypt_durable",
      "Decryptions return only after the worker has committed their audit record.",
      "Off: the record waits in shared memory up to gateway.usage_flush_interval, and a crash "
      "in that time loses it. On: each decryption costs a round trip to the worker and a WAL "
      "flush (shared by concurrent decryptions), and fails when the worker does not confirm.",
      &settings.audit_decrypt_durable, false, PGC_SIGHUP, GUC_SUPERUSER_ONLY, nullptr, nullptr,
      nullptr);
  DefineCustomIntVariable(
      "gateway.audit_decrypt_timeout",
      "With gateway.audit_decrypt_durable: how long a decryption waits for its audit record.",
      "When it passes, the decryption fails and returns no plaintext.",
      &settings.audit_decrypt_timeout_ms, 5000, 10, 600000, PGC_SIGHUP,
      GUC_UNIT_MS | GUC_SUPERUSER_ONLY, nullptr, nullptr, nullptr);

  DefineCustomStringVariable(
      "gateway.kong_admin_url", "Base URL of the Kong Admin API the worker keeps in sync.",
      "May include a path prefix (https://gw.example.com/kong-admin). Empty pauses Kong sync: "
      "jobs wait and gateway.sync_status says why.",
      &settings.kong_admin_url, "", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomStringVariable(
      "gateway.kong_admin_headers_file",
      "File of extra headers sent with every Kong Admin API request (e.g. Kong-Admin-Token).",
      "One \"Name: value\" per line; owned by the server user, mode 600. A file rather than a "
      "setting, because the server log records the new value of every setting a reload changes.",
      &settings.kong_admin_headers_file, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, nullptr, nullptr,
      nullptr);
  DefineCustomStringVariable(
      "gateway.kong_ca_file", "CA bundle that verifies the Kong Admin API's certificate.", nullptr,
      &settings.kong_ca_file, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, nullptr, nullptr, nullptr);
  DefineCustomStringVariable(
      "gateway.kong_client_cert", "Client certificate (PEM) for mutual TLS with the Kong Admin API.",
      nullptr, &settings.kong_client_cert, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, nullptr, nullptr,
      nullptr);
  DefineCustomStringVariable(
      "gateway.kong_client_key", "Private key file (PEM) of gateway.kong_client_cert.",
      "Owned by the server user, mode 600, like the master key file.",
      &settings.kong_client_key, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "gateway.kong_connect_timeout", "Connect timeout for Kong Admin API requests.", nullptr,
      &settings.kong_connect_timeout_ms, 5000, 100, 600000, PGC_SIGHUP, GUC_UNIT_MS, nullptr,
      nullptr, nullptr);
  DefineCustomIntVariable(
      "gateway.kong_request_timeout", "Total timeout of one Kong Admin API request.", nullptr,
      &settings.kong_request_timeout_ms, 30000, 100, 600000, PGC_SIGHUP, GUC_UNIT_MS, nullptr,
      nullptr, nullptr);
  DefineCustomStringVariable(
      "gateway.kong_upstream_url",
      "The app's workflow execution endpoint that Kong services forward to.",
      "Each public interface's Kong service points at this URL followed by /<interface id>.",
      &settings.kong_upstream_url, "http://127.0.0.1:3000/api/interfaces", PGC_SIGHUP, 0, nullptr,
      nullptr, nullptr);
  DefineCustomStringVariable(
      "gateway.kong_owner_tag", "Tag on every Kong object and Nexus endpoint this database owns.",
      "Reconciliation only ever changes or deletes objects with this tag. Empty: "
      "pg-gateway-<system identifier>-<database oid>, which a physical standby shares.",
      &settings.kong_owner_tag, "", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomStringVariable(
      "gateway.temporal_url",
      "Base URL of the Temporal frontend's HTTP API, where the worker manages Nexus endpoints.",
      "May include a path prefix (https://temporal.example.com:7243/prefix). Empty pauses Temporal "
      "sync: connector jobs wait and gateway.sync_status says why.",
      &settings.temporal_url, "", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomStringVariable(
      "gateway.temporal_headers_file",
      "File of extra headers sent with every Temporal request (e.g. Authorization: Bearer ...).",
      "One \"Name: value\" per line; owned by the server user, mode 600. A file rather than a "
      "setting, because the server log records the new value of every setting a reload changes.",
      &settings.temporal_headers_file, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, nullptr, nullptr,
      nullptr);
  DefineCustomStringVariable(
      "gateway.temporal_ca_file", "CA bundle that verifies the Temporal frontend's certificate.",
      nullptr, &settings.temporal_ca_file, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, nullptr, nullptr,
      nullptr);
  DefineCustomStringVariable(
      "gateway.temporal_client_cert", "Client certificate (PEM) for mutual TLS with Temporal.",
      nullptr, &settings.temporal_client_cert, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, nullptr,
      nullptr, nullptr);
  DefineCustomStringVariable(
      "gateway.temporal_client_key", "Private key file (PEM) of gateway.temporal_client_cert.",
      "Owned by the server user, mode 600, like the master key file.",
      &settings.temporal_client_key, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, nullptr, nullptr,
      nullptr);
  DefineCustomIntVariable(
      "gateway.temporal_connect_timeout", "Connect timeout for Temporal requests.", nullptr,
      &settings.temporal_connect_timeout_ms, 5000, 100, 600000, PGC_SIGHUP, GUC_UNIT_MS, nullptr,
      nullptr, nullptr);
  DefineCustomIntVariable(
      "gateway.temporal_request_timeout", "Total timeout of one Temporal request.", nullptr,
      &settings.temporal_request_timeout_ms, 30000, 100, 600000, PGC_SIGHUP, GUC_UNIT_MS, nullptr,
      nullptr, nullptr);
  DefineCustomIntVariable(
      "gateway.temporal_concurrency", "Temporal requests the worker keeps in flight at once.",
      "Temporal has its own share: Kong's requests (gateway.sync_concurrency) never wait for it.",
      &settings.temporal_concurrency, 8, 1, 256, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "gateway.nexus_concurrency", "Nexus call starts and cancels the worker keeps in flight at once.",
      "Calls have their own share, apart from endpoint sync (gateway.temporal_concurrency), on the "
      "same Temporal frontend (gateway.temporal_url).",
      &settings.nexus_concurrency, 32, 1, 1024, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "gateway.sync_concurrency", "Kong Admin API requests the worker keeps in flight at once.",
      nullptr, &settings.sync_concurrency, 16, 1, 256, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "gateway.sync_reconcile_interval", "How often the worker compares Kong with the tables.",
      "0 reconciles only when gateway.sync_reconcile() asks for it.",
      &settings.sync_reconcile_interval_s, 600, 0, 7 * 24 * 3600, PGC_SIGHUP, GUC_UNIT_S, nullptr,
      nullptr, nullptr);
  DefineCustomIntVariable(
      "gateway.sync_retry_base", "First retry delay of a failed sync job; it doubles per attempt.",
      nullptr, &settings.sync_retry_base_ms, 1000, 10, 3600000, PGC_SIGHUP, GUC_UNIT_MS, nullptr,
      nullptr, nullptr);
  DefineCustomIntVariable(
      "gateway.sync_retry_max", "Longest delay between retries of a failed sync job.", nullptr,
      &settings.sync_retry_max_ms, 300000, 10, 24 * 3600000, PGC_SIGHUP, GUC_UNIT_MS, nullptr,
      nullptr, nullptr);

  DefineCustomStringVariable(
      "gateway.callback_listen",
      "Address (host:port) where a background worker receives Nexus completion callbacks.",
      "An IPv4 address or localhost, e.g. 127.0.0.1:8790. Empty runs no listener, and Nexus calls "
      "are started without a callback URL. Temporal's callback.allowedAddresses must allow it.",
      &settings.callback_listen, "", PGC_POSTMASTER, 0, check_callback_listen, nullptr, nullptr);
  DefineCustomStringVariable(
      "gateway.callback_url",
      "Base URL Temporal calls to deliver completions (a proxy in front of the listener).",
      "Each call's callback is this URL followed by /nexus/calls/<call id>. Empty: "
      "http://<gateway.callback_listen>.",
      &settings.callback_url, "", PGC_SIGHUP, 0, check_callback_url, nullptr, nullptr);
  DefineCustomIntVariable(
      "gateway.callback_max_body", "Largest completion callback body the listener accepts.",
      "A larger one is refused with 413 and changes nothing. Applies to requests that start "
      "after a reload.",
      &settings.callback_max_body, 1048576, 1024, 256 * 1024 * 1024, PGC_SIGHUP, GUC_UNIT_BYTE,
      nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "gateway.callback_request_timeout", "Longest a connection to the callback listener may stay open.",
      "Counted from when it was accepted, however slowly its bytes arrive, so trickling clients "
      "cannot hold the listener's 64 connections. Temporal spends at most 10 s on an attempt.",
      &settings.callback_request_timeout_ms, 30000, 1000, 600000, PGC_SIGHUP, GUC_UNIT_MS,
      nullptr, nullptr, nullptr);

  DefineCustomIntVariable(
      "gateway.audit_retention", "Audit records older than this are deleted by the worker.",
      "0 keeps every record. At least 1 day otherwise (e.g. '90d'). The worker deletes in small "
      "batches, one transaction each, and records each batch in the audit log.",
      &settings.audit_retention_s, 0, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_S,
      check_audit_retention, nullptr, nullptr);

  DefineCustomIntVariable(
      "gateway.verify_cache_size", "API key rows api_key_verify keeps in shared memory (0: none).",
      "A hot key is verified without an index probe. A commit that changes a key empties its "
      "cache set before COMMIT returns, so there is no window. About 200 bytes per entry.",
      &settings.verify_cache_size, 16384, 0, 1 << 24, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
  DefineCustomBoolVariable(
      "gateway.verify_cache_bypass", "Makes api_key_verify in this session ignore the verify cache.",
      "For measuring and diagnosis: every verify probes the index, as without a cache. Changes "
      "still invalidate the cache for everyone else.",
      &settings.verify_cache_bypass, false, PGC_SUSET, 0, nullptr, nullptr, nullptr);

  MarkGUCPrefixReserved("gateway");
}

}  // namespace gateway::pg
