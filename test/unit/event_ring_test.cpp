#include "core/event_ring.hpp"

#include <gtest/gtest.h>

#include <vector>

using Ring = gateway::EventRing<int>;

TEST(EventRing, KeepsOrderAcrossWrapAroundAndCountsDrops) {
  std::vector<unsigned char> memory(Ring::bytes_for(4));
  Ring ring(memory.data(), 4, true);
  std::vector<int> out;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(ring.push(i));
  EXPECT_EQ(ring.drain(out), 0U);
  EXPECT_EQ(out, (std::vector<int>{0, 1, 2}));

  out.clear();
  for (int i = 10; i < 16; ++i) ring.push(i);  // 4 fit, 2 dropped
  EXPECT_EQ(ring.size(), 4U);
  EXPECT_EQ(ring.drain(out), 2U);
  EXPECT_EQ(out, (std::vector<int>{10, 11, 12, 13}));
  out.clear();
  EXPECT_EQ(ring.drain(out), 0U);
  EXPECT_TRUE(out.empty());
}

TEST(EventRing, AttachingToExistingMemoryKeepsItsContents) {
  std::vector<unsigned char> memory(Ring::bytes_for(8));
  Ring(memory.data(), 8, true).push(7);
  Ring attached(memory.data(), 8, false);
  std::vector<int> out;
  attached.drain(out);
  EXPECT_EQ(out, std::vector<int>{7});
}
