#include "usage_table.hpp"

#include <algorithm>
#include <cstring>
#include <new>
#include "cpp_only.hpp"  // last: proves no PostgreSQL header came in above

namespace gateway {

std::size_t sets_for_slots(std::size_t min_slots, std::size_t ways) noexcept {
  std::size_t sets = (min_slots + ways - 1) / ways;
  return sets == 0 ? 1 : sets;
}

std::size_t set_of_key(const KeyId& key, std::size_t sets) noexcept {
  // Key ids are random UUIDs, but mix anyway so sequential or crafted ids still spread.
  std::uint64_t x;
  std::memcpy(&x, key.data() + 8, sizeof x);
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return static_cast<std::size_t>(x % sets);
}

std::size_t UsageTable::sets_for(std::size_t min_slots) { return sets_for_slots(min_slots, kWays); }

namespace {

// Never 0 (a free way). From bytes other than set_of_key's, so keys of one set differ in it.
std::uint32_t tag_of(const KeyId& key) noexcept {
  std::uint32_t tag;
  std::memcpy(&tag, key.data(), sizeof tag);
  return tag | 1u;
}

}  // namespace

std::size_t UsageTable::tag_bytes(std::size_t sets) noexcept {
  const std::size_t bytes = sets * kWays * sizeof(std::uint32_t);
  return (bytes + alignof(UsageSlot) - 1) / alignof(UsageSlot) * alignof(UsageSlot);
}

std::size_t UsageTable::bytes_for(std::size_t min_slots) {
  const std::size_t sets = sets_for(min_slots);
  return tag_bytes(sets) + sets * kWays * sizeof(UsageSlot);
}

UsageTable::UsageTable(void* memory, std::size_t sets, bool initialise)
    : tags_(static_cast<std::uint32_t*>(memory)),
      slots_(reinterpret_cast<UsageSlot*>(static_cast<char*>(memory) + tag_bytes(sets))),
      sets_(sets) {
  if (initialise) {
    std::memset(tags_, 0, tag_bytes(sets));
    for (std::size_t i = 0; i < sets * kWays; ++i) new (&slots_[i]) UsageSlot();
  }
}

std::size_t UsageTable::set_of(const KeyId& key) const noexcept { return set_of_key(key, sets_); }

void UsageTable::prefetch(const KeyId& key) const noexcept {
  const std::size_t index = set_of(key);
  const std::uint32_t* tags = tags_of(index);
  const std::uint32_t tag = tag_of(key);
  for (std::size_t way = 0; way < kWays; ++way) {
    // Relaxed atomic loads: the ways are written under the lock this does not take.
    if (__atomic_load_n(&tags[way], __ATOMIC_RELAXED) != tag) continue;
    const char* slot = reinterpret_cast<const char*>(set_begin(index) + way);
    __builtin_prefetch(slot);
    __builtin_prefetch(slot + sizeof(UsageSlot) - 1);  // a slot may straddle two lines
  }
}

UsageSlot& UsageTable::find_or_claim(const KeyId& key, std::uint32_t database,
                                     std::int64_t now_us) {
  const std::size_t index = set_of(key);
  UsageSlot* set = set_begin(index);
  std::uint32_t* tags = tags_of(index);
  const std::uint32_t tag = tag_of(key);
  for (std::size_t way = 0; way < kWays; ++way) {
    if (tags[way] != tag) continue;
    UsageSlot& slot = set[way];
    if (slot.occupied && slot.key == key && slot.database == database) {
      slot.touched_us = now_us;
      return slot;
    }
  }
  // Absent: a slot is claimed, the only time all of the set's slots are read.
  UsageSlot* victim = nullptr;
  for (std::size_t way = 0; way < kWays; ++way) {
    UsageSlot& slot = set[way];
    if (!slot.occupied) {
      if (victim == nullptr || victim->occupied) victim = &slot;
      continue;
    }
    if (victim != nullptr && !victim->occupied) continue;
    // Prefer clean over dirty, then the least recently touched.
    if (victim == nullptr || (victim->dirty && !slot.dirty) ||
        (victim->dirty == slot.dirty && slot.touched_us < victim->touched_us)) {
      victim = &slot;
    }
  }
  *victim = UsageSlot();
  victim->key = key;
  victim->database = database;
  victim->occupied = true;
  victim->touched_us = now_us;
  tags[victim - set] = tag;
  return *victim;
}

void UsageTable::drain_set(std::size_t set, std::vector<UsageRecord>& out,
                           std::int64_t resolution_us) {
  UsageSlot* begin = set_begin(set);
  for (std::size_t way = 0; way < kWays; ++way) {
    UsageSlot& slot = begin[way];
    if (!slot.occupied || !slot.dirty) continue;
    slot.dirty = false;
    if (slot.flushed_us != 0 && slot.last_used_us - slot.flushed_us < resolution_us) continue;
    out.push_back(UsageRecord{slot.key, slot.database, slot.last_used_us});
    slot.flushed_us = slot.last_used_us;
  }
}

void UsageTable::restore(const UsageRecord& record, std::int64_t now_us) {
  UsageSlot& slot = find_or_claim(record.key, record.database, now_us);
  // The write failed, so nothing counts as handed out: the next drain emits this key again.
  slot.last_used_us = std::max(slot.last_used_us, record.last_used_us);
  slot.flushed_us = 0;
  slot.dirty = true;
}

}  // namespace gateway
