// The queue of API key rehashes: a verify that matched a key hashed under the previous master key
// (or an unmarked pre-0.6.0 key) hands the key's new hash to the worker here, since verify never
// writes. Bounded: when full a request is dropped, and the key's next verify asks again.
#pragma once

#include <cstdint>
#include <vector>

#include "../core/key_hash.hpp"
#include "../core/master_key_choice.hpp"
#include "../core/usage_table.hpp"
#include "postgres.hpp"

namespace gateway::pg {

// Holds no secret: hashes are what the table stores anyway.
struct RehashRequest {
  Oid database;
  KeyId key;
  api_key::Hash old_hash;  // the worker writes only if the row still has it
  api_key::Hash new_hash;  // under the current master key
  std::int16_t pepper_version;
  api_key::Fingerprint master_fingerprint;  // the current master key's
};

// For shared_state.cpp's request and startup hooks.
std::size_t rehash_queue_shmem_size();
void rehash_queue_shmem_init();  // under AddinShmemInitLock

// Never waits for the worker and never raises; false when the queue is full (dropped).
bool queue_rehash_request(const RehashRequest& request);

// For the worker: moves every queued request into `out`; returns how many were dropped since
// the last drain.
std::uint64_t drain_rehash_requests(std::vector<RehashRequest>& out);

}  // namespace gateway::pg
