// The verify cache: key rows (StoredKey) in shared memory, keyed by database and key prefix, so a
// hot verify skips the index probe and the heap fetch. A row trigger on gateway.api_keys marks
// the sets it writes; at the end of the writing transaction (after its commit is visible) the
// sets are emptied. See verify_cache.cpp for why no verify after a commit can see the old row.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

#include "key_lookup.hpp"

namespace gateway::pg {

// From shared_state.cpp's hooks (one line each).
void request_verify_cache_shmem();  // shmem_request_hook
void init_verify_cache_shmem();     // shmem_startup_hook, under AddinShmemInitLock

// The verify body's one lookup: the cached row when it may be used, else the index probe (which
// fills the cache when that is safe). Throws PgError like find_key_by_prefix. `*from_cache` says
// whether the row came from the cache (a key in use now).
std::optional<StoredKey> lookup_key(std::string_view prefix, bool* from_cache);

}  // namespace gateway::pg
