// Configuration (GUCs under the reserved gateway.* prefix).
#pragma once

namespace gateway::pg {

struct Settings {
  char* database = nullptr;          // gateway.database: where the worker connects
  char* master_key_file = nullptr;   // gateway.master_key_file
  char* previous_master_key_file = nullptr;  // gateway.previous_master_key_file
  int pepper_version = 1;            // gateway.api_key_pepper_version
  int usage_slots = 16384;           // gateway.usage_slots
  int usage_flush_interval_ms = 10000;  // gateway.usage_flush_interval
  int last_used_resolution_s = 900;     // gateway.last_used_resolution
  bool audit_verify_failures = true;    // gateway.audit_verify_failures
  bool audit_decrypt_durable = false;   // gateway.audit_decrypt_durable
  int audit_decrypt_timeout_ms = 5000;  // gateway.audit_decrypt_timeout

  // Kong sync (read by the worker; reloaded on SIGHUP).
  char* kong_admin_url = nullptr;       // gateway.kong_admin_url; empty: sync paused
  char* kong_admin_headers_file = nullptr;  // gateway.kong_admin_headers_file
  char* kong_ca_file = nullptr;         // gateway.kong_ca_file
  char* kong_client_cert = nullptr;     // gateway.kong_client_cert
  char* kong_client_key = nullptr;      // gateway.kong_client_key
  int kong_connect_timeout_ms = 5000;   // gateway.kong_connect_timeout
  int kong_request_timeout_ms = 30000;  // gateway.kong_request_timeout
  char* kong_upstream_url = nullptr;    // gateway.kong_upstream_url
  char* kong_owner_tag = nullptr;       // gateway.kong_owner_tag; empty: derived
  // Temporal sync: Nexus endpoints through the operator HTTP API (read by the worker; SIGHUP).
  char* temporal_url = nullptr;           // gateway.temporal_url; empty: Temporal sync paused
  char* temporal_headers_file = nullptr;  // gateway.temporal_headers_file
  char* temporal_ca_file = nullptr;       // gateway.temporal_ca_file
  char* temporal_client_cert = nullptr;   // gateway.temporal_client_cert
  char* temporal_client_key = nullptr;    // gateway.temporal_client_key
  int temporal_connect_timeout_ms = 5000;   // gateway.temporal_connect_timeout
  int temporal_request_timeout_ms = 30000;  // gateway.temporal_request_timeout
  int temporal_concurrency = 8;             // gateway.temporal_concurrency
  int nexus_concurrency = 32;               // gateway.nexus_concurrency: calls in flight

  int sync_concurrency = 16;            // gateway.sync_concurrency
  int sync_reconcile_interval_s = 600;  // gateway.sync_reconcile_interval; 0: only on demand
  int sync_retry_base_ms = 1000;        // gateway.sync_retry_base
  int sync_retry_max_ms = 300000;       // gateway.sync_retry_max

  // Nexus completion callbacks (callback_listener.cpp).
  char* callback_listen = nullptr;     // gateway.callback_listen: "host:port"; empty: no listener
  char* callback_url = nullptr;        // gateway.callback_url; empty: http://<callback_listen>
  int callback_max_body = 1048576;     // gateway.callback_max_body (bytes)
  int callback_request_timeout_ms = 30000;  // gateway.callback_request_timeout

  int audit_retention_s = 0;  // gateway.audit_retention: the worker prunes older audit records; 0: keep
  int verify_cache_size = 16384;  // gateway.verify_cache_size: key rows cached; 0: no cache
  bool verify_cache_bypass = false;  // gateway.verify_cache_bypass: probe every time (A/B, diagnosis)
};

extern Settings settings;

void define_settings();

}  // namespace gateway::pg
