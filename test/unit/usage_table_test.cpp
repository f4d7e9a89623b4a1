#include "core/usage_table.hpp"

#include <gtest/gtest.h>

#include <vector>

using gateway::KeyId;
using gateway::UsageRecord;
using gateway::UsageTable;

namespace {

KeyId key(std::uint32_t n) {
  KeyId id{};
  for (int i = 0; i < 16; ++i) id[i] = static_cast<std::uint8_t>((n >> ((i % 4) * 8)) * (i + 1));
  return id;
}

struct Table {
  explicit Table(std::size_t slots)
      : memory(UsageTable::bytes_for(slots)),
        table(memory.data(), UsageTable::sets_for(slots), true) {}
  std::vector<unsigned char> memory;
  UsageTable table;
};

std::vector<UsageRecord> drain_all(UsageTable& table) {
  std::vector<UsageRecord> out;
  for (std::size_t s = 0; s < table.sets(); ++s) table.drain_set(s, out, 0);
  return out;
}

}  // namespace

TEST(UsageTable, FindsTheSameSlotForTheSameKeyAndDatabase) {
  Table t(64);
  auto& a = t.table.find_or_claim(key(1), 5, 10);
  a.last_used_us = 42;
  EXPECT_EQ(&t.table.find_or_claim(key(1), 5, 11), &a);
  EXPECT_NE(&t.table.find_or_claim(key(1), 6, 12), &a);
  EXPECT_NE(&t.table.find_or_claim(key(2), 5, 13), &a);
}

TEST(UsageTable, DrainReturnsDirtyEntriesOnceAndRestoreKeepsTheNewest) {
  Table t(64);
  for (std::uint32_t i = 0; i < 20; ++i) {
    auto& slot = t.table.find_or_claim(key(i), 1, i);
    slot.last_used_us = 100 + i;
    slot.dirty = true;
  }
  auto first = drain_all(t.table);
  EXPECT_EQ(first.size(), 20U);
  EXPECT_TRUE(drain_all(t.table).empty());

  // A failed flush puts them back; a newer use recorded meanwhile wins.
  auto& newer = t.table.find_or_claim(key(3), 1, 50);
  newer.last_used_us = 999;
  newer.dirty = true;
  for (const auto& r : first) t.table.restore(r, 60);
  auto second = drain_all(t.table);
  ASSERT_EQ(second.size(), 20U);
  for (const auto& r : second) {
    if (r.key == key(3)) {
      EXPECT_EQ(r.last_used_us, 999);
    }
  }
}

TEST(UsageTable, AFullSetEvictsCleanBeforeDirtyAndOldestFirst) {
  Table t(UsageTable::kWays);  // one set: every key collides
  ASSERT_EQ(t.table.sets(), 1U);
  for (std::uint32_t i = 0; i < UsageTable::kWays; ++i) {
    auto& slot = t.table.find_or_claim(key(i), 1, 100 + i);
    slot.dirty = (i != 5);  // only key 5 is clean
    slot.bucket.updated_us = 7;  // marks state that eviction forgets
  }
  t.table.find_or_claim(key(100), 1, 200);  // evicts clean key 5 although key 0 is older
  std::vector<UsageRecord> out;
  t.table.drain_set(0, out, 0);
  EXPECT_EQ(out.size(), UsageTable::kWays - 1);

  // All clean now: the least recently touched (key 0) goes next, key 1 stays.
  t.table.find_or_claim(key(101), 1, 300);
  EXPECT_EQ(t.table.find_or_claim(key(1), 1, 400).bucket.updated_us, 7);
  EXPECT_EQ(t.table.find_or_claim(key(0), 1, 500).bucket.updated_us, 0);
}

TEST(UsageTable, SpreadsKeysOverSets) {
  Table t(1024);
  std::vector<int> per_set(t.table.sets());
  for (std::uint32_t i = 0; i < 4096; ++i) per_set[t.table.set_of(key(i))]++;
  for (int count : per_set) EXPECT_LT(count, 64);
}

TEST(UsageTable, LastUseIsHandedOutOncePerResolution) {
  Table t(64);
  auto use = [&](std::int64_t at) {
    auto& slot = t.table.find_or_claim(key(9), 1, at);
    slot.last_used_us = at;
    slot.dirty = true;
  };
  auto drain = [&] {
    std::vector<UsageRecord> out;
    for (std::size_t s = 0; s < t.table.sets(); ++s) t.table.drain_set(s, out, 60);
    return out;
  };
  use(1000);
  ASSERT_EQ(drain().size(), 1U);  // the first use is always written
  use(1030);
  EXPECT_TRUE(drain().empty());   // 30 after the last write: within the resolution
  use(1061);
  auto out = drain();
  ASSERT_EQ(out.size(), 1U);      // 61 after: written again
  EXPECT_EQ(out[0].last_used_us, 1061);
  t.table.restore(out[0], 1062);  // that write failed: it is handed out again at once
  EXPECT_EQ(drain().size(), 1U);
}

// Keys whose tags collide (the same first four bytes) still each find their own slot: the tag
// only narrows the search, the key and database decide. Eviction retags the victim's way.
TEST(UsageTable, KeysWithTheSameTagKeepTheirOwnSlots) {
  Table t(UsageTable::kWays);  // one set: every key lands in it
  ASSERT_EQ(t.table.sets(), 1u);
  auto same_tag = [](std::uint8_t n) {
    KeyId id{};
    id[0] = 0xAB;  // bytes 0..3: the tag
    id[15] = n;
    return id;
  };
  std::vector<gateway::UsageSlot*> slots;
  for (std::uint8_t n = 0; n < UsageTable::kWays; ++n) {
    slots.push_back(&t.table.find_or_claim(same_tag(n), 1, 100 + n));
    slots.back()->last_used_us = n;
  }
  for (std::uint8_t n = 0; n < UsageTable::kWays; ++n) {
    for (std::uint8_t m = 0; m < n; ++m) EXPECT_NE(slots[n], slots[m]);
    EXPECT_EQ(&t.table.find_or_claim(same_tag(n), 1, 200), slots[n]) << int(n);
    EXPECT_EQ(slots[n]->last_used_us, n);
  }
  // The same key in another database is another slot (it evicts one: the set is full).
  gateway::UsageSlot& other_db = t.table.find_or_claim(same_tag(3), 2, 300);
  EXPECT_EQ(other_db.database, 2u);
  EXPECT_EQ(other_db.last_used_us, 0);
  // A key with a different tag evicts too, and every slot still holds the key it says.
  KeyId different = same_tag(99);
  different[0] = 0xCD;
  gateway::UsageSlot& fresh = t.table.find_or_claim(different, 1, 400);
  EXPECT_EQ(fresh.key, different);
  EXPECT_EQ(&t.table.find_or_claim(different, 1, 401), &fresh);
  std::size_t found = 0;
  for (std::uint8_t n = 0; n < UsageTable::kWays; ++n) {
    gateway::UsageSlot& s = t.table.find_or_claim(same_tag(n), 1, 500);
    EXPECT_EQ(s.key, same_tag(n));
    EXPECT_EQ(s.database, 1u);
    found += s.last_used_us == n ? 1 : 0;  // survivors kept their time; re-claimed ones start at 0
  }
  EXPECT_GE(found, 1u);
}

// prefetch is a hint: for a present key, an absent one, or an empty table it claims nothing and
// moves nothing.
TEST(UsageTable, PrefetchChangesNothing) {
  Table t(64);
  t.table.prefetch(key(7));  // empty table
  auto& a = t.table.find_or_claim(key(1), 5, 10);
  a.last_used_us = 42;
  t.table.prefetch(key(1));
  t.table.prefetch(key(2));
  EXPECT_EQ(&t.table.find_or_claim(key(1), 5, 11), &a);
  EXPECT_EQ(a.last_used_us, 42);
  EXPECT_TRUE(drain_all(t.table).size() == 0u);  // nothing was marked dirty
}
