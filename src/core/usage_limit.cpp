#include "usage_limit.hpp"

#include <algorithm>
#include <cstring>
#include <new>
#include "cpp_only.hpp"  // last: proves no PostgreSQL header came in above

namespace gateway {

std::int64_t refill_period(const UsageLimitConfig& config, std::int64_t now_us) noexcept {
  if (config.refill_interval_us <= 0 || now_us <= config.anchor_us) return 0;
  return (now_us - config.anchor_us) / config.refill_interval_us;
}

void roll_to(UsageCounters& counters, const UsageLimitConfig& config, std::int64_t period) noexcept {
  if (period <= counters.period) return;
  counters.period = period;
  counters.granted = config.refill_amount;
  counters.spent = 0;
}

std::int64_t remaining(const UsageCounters& counters) noexcept {
  return std::max<std::int64_t>(0, counters.granted - counters.spent);
}

void merge(UsageCounters& memory, const UsageCounters& table) noexcept {
  if (table.period > memory.period) {
    memory = table;
  } else if (table.period == memory.period) {
    memory.granted = std::max(memory.granted, table.granted);
    memory.spent = std::max(memory.spent, table.spent);
  }
}

SpendDecision try_spend(UsageCounters& counters, std::int64_t cost) noexcept {
  std::int64_t left = remaining(counters);
  if (cost < 0 || left < cost) return SpendDecision{false, left};
  counters.spent += cost;
  return SpendDecision{true, left - cost};
}

void refund(UsageCounters& counters, std::int64_t cost) noexcept {
  counters.spent = std::max<std::int64_t>(0, counters.spent - cost);
}

std::size_t UsageLimitTable::sets_for(std::size_t min_slots) { return sets_for_slots(min_slots, kWays); }

std::size_t UsageLimitTable::bytes_for(std::size_t min_slots) {
  return sets_for(min_slots) * kWays * sizeof(UsageLimitSlot);
}

UsageLimitTable::UsageLimitTable(void* memory, std::size_t sets, bool initialise)
    : slots_(static_cast<UsageLimitSlot*>(memory)), sets_(sets) {
  if (initialise) {
    for (std::size_t i = 0; i < sets * kWays; ++i) new (&slots_[i]) UsageLimitSlot();
  }
}

std::size_t UsageLimitTable::set_of(const KeyId& key) const noexcept { return set_of_key(key, sets_); }

UsageLimitSlot* UsageLimitTable::find(const KeyId& key, std::uint32_t database,
                                      std::int64_t now_us) noexcept {
  UsageLimitSlot* set = set_begin(set_of(key));
  for (std::size_t way = 0; way < kWays; ++way) {
    UsageLimitSlot& slot = set[way];
    if (slot.occupied && slot.key == key && slot.database == database) {
      slot.touched_us = now_us;
      return &slot;
    }
  }
  return nullptr;
}

UsageLimitSlot* UsageLimitTable::claim(const KeyId& key, std::uint32_t database,
                                       std::int64_t now_us) noexcept {
  UsageLimitSlot* set = set_begin(set_of(key));
  UsageLimitSlot* victim = nullptr;
  for (std::size_t way = 0; way < kWays; ++way) {
    UsageLimitSlot& slot = set[way];
    if (!slot.occupied) {
      victim = &slot;
      break;
    }
    if (slot.flushing || unpersisted(slot)) continue;  // never forget a use
    if (victim == nullptr || slot.touched_us < victim->touched_us) victim = &slot;
  }
  if (victim == nullptr) return nullptr;
  *victim = UsageLimitSlot();
  victim->key = key;
  victim->database = database;
  victim->occupied = true;
  victim->touched_us = now_us;
  return victim;
}

void UsageLimitTable::drain_set(std::size_t set, std::vector<UsageLimitRecord>& out) {
  UsageLimitSlot* begin = set_begin(set);
  for (std::size_t way = 0; way < kWays; ++way) {
    UsageLimitSlot& slot = begin[way];
    if (!slot.occupied || slot.flushing || !unpersisted(slot)) continue;
    out.push_back(UsageLimitRecord{slot.key, slot.database, slot.counters});
    slot.flushing = true;
  }
}

void UsageLimitTable::confirm(const UsageLimitRecord& record, bool written) noexcept {
  UsageLimitSlot* slot = find(record.key, record.database, 0);
  if (slot == nullptr) return;  // cannot happen: a flushing slot is never evicted
  slot->flushing = false;
  if (written) slot->persisted = record.counters;
}

}  // namespace gateway
