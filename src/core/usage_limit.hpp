// Usage-limited API keys: how many uses a key has left, counted in memory the caller provides
// (in the server, shared memory) so verify can spend a use without writing. Pure logic: the
// caller locks the partition of a set before touching it, like UsageTable.
//
// The counters belong to a refill period: period 0 starts when the key is issued, and with an
// interval refill period n starts n intervals later, granting `refill_amount` uses afresh (a
// reset, not an addition, so applying one period's refill twice is harmless). A manual refill
// adds to `granted` of the current period, in the table, under the row lock; memory learns it by
// merging (granted and spent only grow within a period, so max() merges exactly).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "usage_table.hpp"  // KeyId

namespace gateway {

struct UsageLimitConfig {
  std::int64_t refill_amount = 0;       // uses granted at the start of each later period
  std::int64_t refill_interval_us = 0;  // 0: no interval refill (one period forever)
  std::int64_t anchor_us = 0;           // start of period 0 (the key's creation)
};

struct UsageCounters {
  std::int64_t period = 0;
  std::int64_t granted = 0;
  std::int64_t spent = 0;
  bool operator==(const UsageCounters& o) const noexcept {
    return period == o.period && granted == o.granted && spent == o.spent;
  }
  bool operator!=(const UsageCounters& o) const noexcept { return !(*this == o); }
};

// The period `now_us` falls in; 0 before the anchor or without an interval.
std::int64_t refill_period(const UsageLimitConfig& config, std::int64_t now_us) noexcept;

// Moves the counters forward to `period` (never back): a new period grants refill_amount.
void roll_to(UsageCounters& counters, const UsageLimitConfig& config, std::int64_t period) noexcept;

// Uses left, never negative.
std::int64_t remaining(const UsageCounters& counters) noexcept;

// Folds counters read from the table into those in memory: a later period replaces them, the
// same period takes the larger of each counter (memory may have spent more than was written,
// the table may have been refilled), an earlier one changes nothing.
void merge(UsageCounters& memory, const UsageCounters& table) noexcept;

struct SpendDecision {
  bool allowed = false;
  std::int64_t remaining = 0;  // after this call
};

// Spends `cost` (>= 0) if that many uses remain; otherwise changes nothing.
SpendDecision try_spend(UsageCounters& counters, std::int64_t cost) noexcept;
// Gives back what try_spend took (the rate limit refused the call after all).
void refund(UsageCounters& counters, std::int64_t cost) noexcept;

struct UsageLimitSlot {
  KeyId key{};
  std::uint32_t database = 0;
  bool occupied = false;
  bool flushing = false;            // a copy is being written; must not be evicted
  UsageCounters counters;           // what verify sees and spends
  UsageCounters persisted;          // what the table is known to hold
  std::uint64_t loaded_generation = 0;  // refill generation the counters were read at
  std::int64_t touched_us = 0;
};

// A slot with spending the table does not have yet.
inline bool unpersisted(const UsageLimitSlot& slot) noexcept {
  return slot.counters != slot.persisted;
}

struct UsageLimitRecord {
  KeyId key;
  std::uint32_t database;
  UsageCounters counters;
};

class UsageLimitTable {
 public:
  static constexpr std::size_t kWays = 8;

  static std::size_t sets_for(std::size_t min_slots);
  static std::size_t bytes_for(std::size_t min_slots);

  UsageLimitTable(void* memory, std::size_t sets, bool initialise);

  std::size_t sets() const noexcept { return sets_; }
  std::size_t set_of(const KeyId& key) const noexcept;

  UsageLimitSlot* find(const KeyId& key, std::uint32_t database, std::int64_t now_us) noexcept;
  // A free slot for (key, database), evicting the least recently used one whose counters are all
  // in the table. nullptr when every slot of the set holds unpersisted spending: the caller must
  // refuse rather than forget uses.
  UsageLimitSlot* claim(const KeyId& key, std::uint32_t database, std::int64_t now_us) noexcept;

  // Copies the unpersisted counters of one set into `out` and marks them being flushed.
  void drain_set(std::size_t set, std::vector<UsageLimitRecord>& out);
  // After the flush: `written` records are now the table's; either way the slot may be evicted
  // again once nothing is unpersisted.
  void confirm(const UsageLimitRecord& record, bool written) noexcept;

 private:
  UsageLimitSlot* set_begin(std::size_t set) noexcept { return slots_ + set * kWays; }
  UsageLimitSlot* slots_;
  std::size_t sets_;
};

}  // namespace gateway
