#include "core/key_format.hpp"

#include <gtest/gtest.h>

#include <regex>
#include <set>

namespace ak = gateway::api_key;

TEST(KeyFormat, Crc32MatchesTheStandardCheckValue) {
  // The CRC-32/ISO-HDLC check value for "123456789".
  EXPECT_EQ(ak::crc32("123456789"), 0xCBF43926U);
  EXPECT_EQ(ak::crc32(""), 0U);
}

TEST(KeyFormat, Crc32AgreesWithTheBitwiseDefinitionAtEveryLengthAndAlignment) {
  // The eight-bytes-a-step tables against the polynomial applied one bit at a time, for every
  // length around the step and every start offset (the tail and the unaligned loads).
  auto bitwise = [](std::string_view data) {
    std::uint32_t c = 0xFFFFFFFFU;
    for (unsigned char byte : data) {
      c ^= byte;
      for (int k = 0; k < 8; ++k) c = (c & 1U) ? 0xEDB88320U ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xFFFFFFFFU;
  };
  std::string data;
  for (int i = 0; i < 200; ++i) data.push_back(static_cast<char>((i * 131 + 7) & 0xFF));
  for (std::size_t offset = 0; offset < 8; ++offset) {
    for (std::size_t length = 0; length + offset <= 80; ++length) {
      std::string_view piece(data.data() + offset, length);
      ASSERT_EQ(ak::crc32(piece), bitwise(piece)) << "offset " << offset << " length " << length;
    }
  }
}

TEST(KeyFormat, Base62RoundTripsAtFixedWidth) {
  for (std::uint64_t value : {0ULL, 1ULL, 61ULL, 62ULL, 0xFFFFFFFFULL, 56800235583ULL}) {
    std::string text = ak::encode_base62_fixed(value, 6);
    ASSERT_EQ(text.size(), 6U);
    EXPECT_EQ(ak::decode_base62(text), value) << text;
  }
  EXPECT_EQ(ak::encode_base62_fixed(0, 6), "000000");
  EXPECT_FALSE(ak::decode_base62("ab-c").has_value());
  EXPECT_FALSE(ak::decode_base62("").has_value());
  EXPECT_FALSE(ak::decode_base62("12345678901").has_value());  // could overflow
}

TEST(KeyFormat, GeneratedKeysHaveTheDocumentedShape) {
  std::regex shape("^gw_[0-9A-Za-z]{12}_[0-9A-Za-z]{49}$");
  for (int i = 0; i < 200; ++i) {
    std::string key = ak::generate();
    ASSERT_EQ(key.size(), ak::kKeyLength);
    ASSERT_TRUE(std::regex_match(key, shape)) << key;
    auto parsed = ak::parse(key);
    ASSERT_TRUE(parsed.has_value()) << key;
    EXPECT_EQ(parsed->prefix, std::string_view(key).substr(3, 12));
    EXPECT_EQ(parsed->full, key);
  }
}

TEST(KeyFormat, GeneratedKeysAndPrefixesDoNotRepeat) {
  std::set<std::string> keys, prefixes;
  for (int i = 0; i < 20000; ++i) {
    std::string key = ak::generate();
    keys.insert(key);
    prefixes.insert(key.substr(3, 12));
  }
  EXPECT_EQ(keys.size(), 20000U);
  EXPECT_EQ(prefixes.size(), 20000U);
}

TEST(KeyFormat, SecretCarriesAtLeast192BitsOfEntropy) {
  // 43 characters, each uniform over 62 symbols.
  EXPECT_GE(ak::kSecretLength * 5.954, 192.0);
}

TEST(KeyFormat, EverySingleCharacterTypoIsMalformed) {
  std::string key = ak::generate();
  const std::string alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-";
  for (std::size_t pos = 0; pos < key.size(); ++pos) {
    for (char c : alphabet) {
      if (c == key[pos]) continue;
      std::string typo = key;
      typo[pos] = c;
      ASSERT_FALSE(ak::parse(typo).has_value()) << "position " << pos << " char " << c;
    }
  }
}

TEST(KeyFormat, AdjacentSwapsAreMalformed) {
  std::string key = ak::generate();
  for (std::size_t pos = 3; pos + 1 < key.size(); ++pos) {
    if (key[pos] == key[pos + 1]) continue;
    std::string swapped = key;
    std::swap(swapped[pos], swapped[pos + 1]);
    EXPECT_FALSE(ak::parse(swapped).has_value()) << "swap at " << pos;
  }
}

TEST(KeyFormat, TruncatedExtendedAndForeignStringsAreMalformed) {
  std::string key = ak::generate();
  EXPECT_FALSE(ak::parse("").has_value());
  EXPECT_FALSE(ak::parse(key.substr(0, key.size() - 1)).has_value());
  EXPECT_FALSE(ak::parse(key + "a").has_value());
  EXPECT_FALSE(ak::parse(" " + key.substr(1)).has_value());
  EXPECT_FALSE(ak::parse("sk_" + key.substr(3)).has_value());
  std::string no_separator = key;
  no_separator[15] = 'a';
  EXPECT_FALSE(ak::parse(no_separator).has_value());
  std::string with_nul = key;
  with_nul[20] = '\0';
  EXPECT_FALSE(ak::parse(with_nul).has_value());
  EXPECT_FALSE(ak::parse(std::string(10 * 1024 * 1024, 'x')).has_value());
}

TEST(KeyFormat, AcceptsAKeyMadeByAnIndependentImplementation) {
  // Made with Python's zlib.crc32 and a hand-written base62 (test/fuzz/corpus/key_parse).
  auto parsed = ak::parse("gw_ZDv4BoKfC2Zl_AHseWGyrzsx3LL70fQEYyb2nH22tQRJeNHiRNO3HQYm0PL6x0");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->prefix, "ZDv4BoKfC2Zl");
}
