// A fixed-capacity, set-associative table of per-key usage (last use, rate-limit bucket) laid
// over memory the caller provides: in the server, one block of shared memory. The table never
// allocates and never locks; the caller locks the partition that owns a set (partition_of) before
// touching it. A full set evicts its least recently used entry, preferring one whose last use
// has already been flushed, so a busy table costs accuracy of idle keys only. Each set keeps a
// 32-bit tag per way in an array of its own (one cache line per two sets), so finding a key
// reads that line and the one slot whose tag matches, not the set's nine lines of slots: a
// rate-limited key not in the CPU's caches paid a miss per way on every verify.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "token_bucket.hpp"

namespace gateway {

using KeyId = std::array<std::uint8_t, 16>;  // a UUID

// The set-associative layout of both shared-memory key tables (usage, usage limits): how many
// sets hold at least `min_slots` slots, and which set a key falls in.
std::size_t sets_for_slots(std::size_t min_slots, std::size_t ways) noexcept;
std::size_t set_of_key(const KeyId& key, std::size_t sets) noexcept;

struct UsageSlot {
  KeyId key{};
  std::uint32_t database = 0;  // which database the key lives in
  bool occupied = false;
  bool dirty = false;          // last_used_us not yet written to the table
  std::int64_t last_used_us = 0;
  std::int64_t flushed_us = 0;  // last_used_us as last handed out for writing; 0: never
  std::int64_t touched_us = 0;  // for eviction
  TokenBucket bucket;
};

struct UsageRecord {
  KeyId key;
  std::uint32_t database;
  std::int64_t last_used_us;
};

class UsageTable {
 public:
  static constexpr std::size_t kWays = 8;

  // Bytes needed for at least `min_slots` slots (rounded up to whole sets), tags included.
  static std::size_t bytes_for(std::size_t min_slots);
  static std::size_t sets_for(std::size_t min_slots);

  // `memory` must hold bytes_for(...) bytes for `sets` sets, aligned to 8 bytes. With
  // `initialise`, marks every slot free (once, by whoever creates the memory).
  UsageTable(void* memory, std::size_t sets, bool initialise);

  std::size_t sets() const noexcept { return sets_; }
  std::size_t set_of(const KeyId& key) const noexcept;
  static std::size_t partition_of(std::size_t set, std::size_t partitions) noexcept {
    return set % partitions;
  }

  // Asks the CPU for the slot that find_or_claim(key, ...) would return, if there is one, so its
  // trip from memory overlaps the caller's work in between. Reads the set's tags without the
  // partition's lock: a torn or stale tag only prefetches the wrong line. Changes nothing.
  void prefetch(const KeyId& key) const noexcept;

  // The slot for (key, database), claiming one if absent. Never fails: evicts if it must.
  UsageSlot& find_or_claim(const KeyId& key, std::uint32_t database, std::int64_t now_us);

  // Moves the dirty last-use times of one set into `out` and marks them clean. A time less than
  // `resolution_us` after the one last handed out is dropped: last_used_at is kept to that
  // resolution, so a key in constant use costs one row write per resolution, not per batch.
  void drain_set(std::size_t set, std::vector<UsageRecord>& out, std::int64_t resolution_us);

  // Puts records back after a failed flush, unless a newer use was recorded meanwhile.
  void restore(const UsageRecord& record, std::int64_t now_us);

 private:
  UsageSlot* set_begin(std::size_t set) const noexcept { return slots_ + set * kWays; }
  std::uint32_t* tags_of(std::size_t set) const noexcept { return tags_ + set * kWays; }
  static std::size_t tag_bytes(std::size_t sets) noexcept;

  std::uint32_t* tags_;  // per way: tag_of(key) of an occupied slot, 0 for a free one
  UsageSlot* slots_;
  std::size_t sets_;
};

}  // namespace gateway
