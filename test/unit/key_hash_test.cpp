#include "core/key_hash.hpp"

#include <gtest/gtest.h>
#include <sodium.h>

#include <string>

#include "core/error.hpp"
#include "core/key_format.hpp"

namespace ak = gateway::api_key;
using gateway::MasterKey;

namespace {

std::string hex(const std::uint8_t* data, std::size_t size) {
  std::string out(size * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), data, size);
  out.pop_back();
  return out;
}

MasterKey counting_master_key(std::uint8_t start = 0) {
  std::uint8_t bytes[32];
  for (int i = 0; i < 32; ++i) bytes[i] = static_cast<std::uint8_t>(start + i);
  return MasterKey::from_bytes(bytes, sizeof bytes);
}

}  // namespace

TEST(KeyHash, LibsodiumGenericHashIsKeyedBlake2b) {
  // BLAKE2b-512 keyed known-answer test from the BLAKE2 reference (blake2b-kat.txt, first entry):
  // empty input, key 00 01 .. 3f.
  std::uint8_t key[64];
  for (int i = 0; i < 64; ++i) key[i] = static_cast<std::uint8_t>(i);
  std::uint8_t out[64];
  ASSERT_EQ(sodium_init() < 0, false);
  crypto_generichash(out, sizeof out, nullptr, 0, key, sizeof key);
  EXPECT_EQ(hex(out, sizeof out),
            "10ebb67700b1868efb4417987acf4690ae9d972fb7a590c2f02871799aaa4786"
            "b5e996e8f0f4eb981fc214b005f42d2ff4233499391653df7aefcbc13fc51568");
}

TEST(KeyHash, StoredHashesAreStableAcrossReleases) {
  // Pinned: if this changes, every stored API key stops verifying.
  MasterKey master = counting_master_key();
  ak::Hasher hasher(master);
  ak::Hash h = hasher.hash("gw_AAAAAAAAAAAA_example", 1);
  // Cross-checked with Python's hashlib.blake2b (key, salt = id, person = context).
  EXPECT_EQ(hex(h.data(), h.size()),
            "8809928b4d0f49cea39e772442b4cbd28cd5dcd3c5487c6cc256000bc748a83a");
}

TEST(KeyHash, PepperVersionAndMasterKeyChangeTheHash) {
  MasterKey master = counting_master_key();
  MasterKey other = counting_master_key(1);
  ak::Hasher hasher(master);
  ak::Hasher other_hasher(other);
  std::string key = ak::generate();
  ak::Hash v1 = hasher.hash(key, 1);
  EXPECT_EQ(v1, hasher.hash(key, 1));
  EXPECT_NE(v1, hasher.hash(key, 2));
  EXPECT_NE(v1, other_hasher.hash(key, 1));
  EXPECT_NE(v1, hasher.hash(ak::generate(), 1));
}

TEST(KeyHash, PepperVersionOutOfRangeIsAnError) {
  MasterKey master = counting_master_key();
  ak::Hasher hasher(master);
  EXPECT_THROW(hasher.hash("x", 0), gateway::Error);
  EXPECT_THROW(hasher.hash("x", 32768), gateway::Error);
}

TEST(KeyHash, MatchesComparesWholeHashesOnly) {
  MasterKey master = counting_master_key();
  ak::Hasher hasher(master);
  ak::Hash h = hasher.hash("k", 1);
  EXPECT_TRUE(ak::Hasher::matches(h, h.data(), h.size()));
  ak::Hash flipped = h;
  flipped[31] ^= 1;
  EXPECT_FALSE(ak::Hasher::matches(h, flipped.data(), flipped.size()));
  EXPECT_FALSE(ak::Hasher::matches(h, h.data(), 31));
  EXPECT_FALSE(ak::Hasher::matches(h, nullptr, 0));
}

TEST(KeyHash, FingerprintIsStablePublicAndKeySpecific) {
  MasterKey a = counting_master_key();
  MasterKey b = counting_master_key(1);
  EXPECT_EQ(a.fingerprint().size(), 16U);
  EXPECT_EQ(a.fingerprint(), counting_master_key().fingerprint());
  EXPECT_NE(a.fingerprint(), b.fingerprint());
}
