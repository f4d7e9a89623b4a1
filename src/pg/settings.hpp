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
};

extern Settings settings;

void define_settings();

}  // namespace gateway::pg
