#include "core/hash_memo.hpp"

#include <gtest/gtest.h>

#include <string>

namespace ak = gateway::api_key;

namespace {

ak::Fingerprint fingerprint(char c) {
  ak::Fingerprint f{};
  f.fill(c);
  return f;
}

ak::Hash hash_of(std::uint8_t b) {
  ak::Hash h{};
  h.fill(b);
  return h;
}

const std::string kKey = "gw_live_ABCDEFGHIJKL_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH000000";

}  // namespace

TEST(HashMemo, FindsOnlyWhatWasRemembered) {
  ak::HashMemo memo;
  const ak::HashMemo::Tag tag = memo.tag(kKey, 1, fingerprint('a'));
  EXPECT_EQ(memo.find(tag), nullptr);
  memo.remember(tag, hash_of(7));
  ASSERT_NE(memo.find(tag), nullptr);
  EXPECT_EQ(*memo.find(tag), hash_of(7));
}

TEST(HashMemo, TheTagDependsOnKeyVersionAndMasterKey) {
  ak::HashMemo memo;
  const ak::HashMemo::Tag tag = memo.tag(kKey, 1, fingerprint('a'));
  memo.remember(tag, hash_of(7));
  std::string other = kKey;
  other.back() = '1';  // one character of the secret differs
  EXPECT_EQ(memo.find(memo.tag(other, 1, fingerprint('a'))), nullptr);
  EXPECT_EQ(memo.find(memo.tag(kKey, 2, fingerprint('a'))), nullptr) << "another pepper version";
  EXPECT_EQ(memo.find(memo.tag(kKey, 1, fingerprint('b'))), nullptr) << "another master key";
  EXPECT_EQ(memo.tag(kKey, 1, fingerprint('a')), tag) << "the same inputs give the same tag";
}

TEST(HashMemo, EachProcessHasItsOwnTagKey) {
  ak::HashMemo one, two;
  EXPECT_NE(one.tag(kKey, 1, fingerprint('a')), two.tag(kKey, 1, fingerprint('a')));
}

TEST(HashMemo, ASetKeepsItsMostRecentlyUsedEntries) {
  ak::HashMemo memo(1);  // one set of four: every tag lands in it
  std::vector<ak::HashMemo::Tag> tags;
  for (int i = 0; i < 5; ++i) {
    std::string key = kKey;
    key[10] = static_cast<char>('A' + i);
    tags.push_back(memo.tag(key, 1, fingerprint('a')));
  }
  for (int i = 0; i < 4; ++i) memo.remember(tags[i], hash_of(static_cast<std::uint8_t>(i)));
  ASSERT_NE(memo.find(tags[0]), nullptr);  // 0 is now the most recent; 1 the least
  memo.remember(tags[4], hash_of(4));
  EXPECT_EQ(memo.find(tags[1]), nullptr) << "the least recently used entry made room";
  for (int i : {0, 2, 3, 4}) {
    ASSERT_NE(memo.find(tags[i]), nullptr) << i;
    EXPECT_EQ(*memo.find(tags[i]), hash_of(static_cast<std::uint8_t>(i)));
  }
  memo.remember(tags[2], hash_of(9));  // remembering again replaces in place
  EXPECT_EQ(*memo.find(tags[2]), hash_of(9));
  EXPECT_NE(memo.find(tags[0]), nullptr);
}
