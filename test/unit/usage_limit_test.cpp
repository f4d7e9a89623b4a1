#include "core/usage_limit.hpp"

#include <gtest/gtest.h>

#include <vector>

using namespace gateway;

namespace {
constexpr std::int64_t kHour = 3600LL * 1000000;
KeyId key(std::uint8_t n) {
  KeyId k{};
  k[0] = n;
  k[15] = n;
  return k;
}
}  // namespace

TEST(UsageLimit, SpendsExactlyWhatRemains) {
  UsageCounters c{0, 3, 0};
  EXPECT_TRUE(try_spend(c, 2).allowed);
  SpendDecision d = try_spend(c, 2);
  EXPECT_FALSE(d.allowed) << "1 left, 2 asked";
  EXPECT_EQ(d.remaining, 1);
  EXPECT_EQ(c.spent, 2) << "a refused call spends nothing";
  d = try_spend(c, 1);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.remaining, 0);
  EXPECT_FALSE(try_spend(c, 1).allowed);
}

TEST(UsageLimit, CostZeroOnlyChecks) {
  UsageCounters c{0, 0, 0};
  SpendDecision d = try_spend(c, 0);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(c.spent, 0);
  EXPECT_FALSE(try_spend(c, -1).allowed) << "a negative cost never adds uses";
  EXPECT_EQ(c.spent, 0);
}

TEST(UsageLimit, RefundGivesBack) {
  UsageCounters c{0, 1, 0};
  ASSERT_TRUE(try_spend(c, 1).allowed);
  refund(c, 1);
  EXPECT_EQ(remaining(c), 1);
}

TEST(UsageLimit, PeriodsCountFromTheAnchor) {
  UsageLimitConfig cfg{100, kHour, 10 * kHour};
  EXPECT_EQ(refill_period(cfg, 5 * kHour), 0) << "before the anchor";
  EXPECT_EQ(refill_period(cfg, 10 * kHour + 1), 0);
  EXPECT_EQ(refill_period(cfg, 11 * kHour), 1);
  EXPECT_EQ(refill_period(cfg, 13 * kHour + 5), 3);
  EXPECT_EQ(refill_period(UsageLimitConfig{100, 0, 0}, 99 * kHour), 0) << "no interval: one period";
}

TEST(UsageLimit, RollingResetsOncePerPeriod) {
  UsageLimitConfig cfg{100, kHour, 0};
  UsageCounters c{0, 5, 5};
  roll_to(c, cfg, 1);
  EXPECT_EQ(remaining(c), 100);
  ASSERT_TRUE(try_spend(c, 40).allowed);
  roll_to(c, cfg, 1);  // the same period again: no second refill
  EXPECT_EQ(remaining(c), 60);
  roll_to(c, cfg, 0);  // never back
  EXPECT_EQ(c.period, 1);
}

TEST(UsageLimit, MergeTakesTheLargerCountersOfOnePeriod) {
  UsageCounters memory{2, 100, 70};
  merge(memory, UsageCounters{2, 150, 60});  // refilled by 50 in the table, memory spent more
  EXPECT_EQ(memory.granted, 150);
  EXPECT_EQ(memory.spent, 70);
  merge(memory, UsageCounters{1, 1000, 0});  // an older period changes nothing
  EXPECT_EQ(remaining(memory), 80);
  merge(memory, UsageCounters{3, 10, 1});
  EXPECT_EQ(memory, (UsageCounters{3, 10, 1}));
}

TEST(UsageLimitTable, NeverEvictsUnpersistedSpending) {
  std::vector<unsigned char> memory(UsageLimitTable::bytes_for(8));
  UsageLimitTable table(memory.data(), 1, true);
  for (std::uint8_t i = 0; i < UsageLimitTable::kWays; ++i) {
    UsageLimitSlot* slot = table.claim(key(i), 1, i);
    ASSERT_NE(slot, nullptr);
    slot->counters = slot->persisted = UsageCounters{0, 10, 0};
    slot->counters.spent = 1;  // unpersisted
  }
  EXPECT_EQ(table.claim(key(100), 1, 100), nullptr) << "every slot holds spending";

  std::vector<UsageLimitRecord> out;
  table.drain_set(0, out);
  ASSERT_EQ(out.size(), UsageLimitTable::kWays);
  EXPECT_EQ(table.claim(key(100), 1, 100), nullptr) << "being flushed is not yet persisted";
  for (const UsageLimitRecord& r : out) table.confirm(r, /*written=*/true);
  UsageLimitSlot* slot = table.claim(key(100), 1, 100);
  ASSERT_NE(slot, nullptr);
  EXPECT_EQ(slot->key, key(100));
  EXPECT_EQ(table.find(key(0), 1, 200), nullptr) << "the least recently used clean slot went";
}

TEST(UsageLimitTable, FailedFlushKeepsTheSlotDirty) {
  std::vector<unsigned char> memory(UsageLimitTable::bytes_for(8));
  UsageLimitTable table(memory.data(), 1, true);
  UsageLimitSlot* slot = table.claim(key(1), 1, 1);
  slot->counters = UsageCounters{0, 10, 3};
  std::vector<UsageLimitRecord> out;
  table.drain_set(0, out);
  ASSERT_EQ(out.size(), 1u);
  std::vector<UsageLimitRecord> again;
  table.drain_set(0, again);
  EXPECT_TRUE(again.empty()) << "one flush at a time per slot";
  table.confirm(out[0], /*written=*/false);
  EXPECT_TRUE(unpersisted(*slot));
  table.drain_set(0, again);
  EXPECT_EQ(again.size(), 1u);
}

TEST(UsageLimitTable, SpendingDuringAFlushIsFlushedNextTime) {
  std::vector<unsigned char> memory(UsageLimitTable::bytes_for(8));
  UsageLimitTable table(memory.data(), 1, true);
  UsageLimitSlot* slot = table.claim(key(1), 1, 1);
  slot->counters = UsageCounters{0, 10, 3};
  std::vector<UsageLimitRecord> out;
  table.drain_set(0, out);
  ASSERT_TRUE(try_spend(slot->counters, 2).allowed);
  table.confirm(out[0], true);
  EXPECT_TRUE(unpersisted(*slot));
  EXPECT_EQ(slot->persisted.spent, 3);
}
