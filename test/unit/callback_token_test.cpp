#include "core/callback_token.hpp"

#include <gtest/gtest.h>
#include <sodium.h>

#include <cstring>
#include <string>

namespace cb = gateway::callback;
using gateway::SecureBuffer;

namespace {

SecureBuffer counting_key() {
  SecureBuffer key(32);
  for (int i = 0; i < 32; ++i) key.data()[i] = static_cast<std::uint8_t>(i);
  return key;
}

constexpr char kCall[] = "0b6f3c1e-8d2a-4f51-9c3e-2a7d9e4b1f60";

}  // namespace

TEST(CallbackToken, IsBase64UrlOfKeyedBlake2b256) {
  SecureBuffer key = counting_key();
  unsigned char mac[32];
  crypto_generichash(mac, sizeof mac, reinterpret_cast<const unsigned char*>(kCall),
                     std::strlen(kCall), key.data(), key.size());
  char expected[64];
  sodium_bin2base64(expected, sizeof expected, mac, sizeof mac,
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  const std::string t = cb::token(key, kCall);
  EXPECT_EQ(t, expected);
  EXPECT_EQ(t.size(), 43u);  // 32 bytes, no padding
  EXPECT_EQ(t.find_first_of("+/="), std::string::npos);
}

TEST(CallbackToken, DependsOnCallAndKey) {
  SecureBuffer key = counting_key();
  SecureBuffer other(32);
  std::memset(other.data(), 7, 32);
  EXPECT_NE(cb::token(key, kCall), cb::token(key, "0b6f3c1e-8d2a-4f51-9c3e-2a7d9e4b1f61"));
  EXPECT_NE(cb::token(key, kCall), cb::token(other, kCall));
  EXPECT_EQ(cb::token(key, kCall), cb::token(key, kCall));
}

TEST(CallbackToken, ValidOnlyForItsCall) {
  SecureBuffer key = counting_key();
  const std::string t = cb::token(key, kCall);
  EXPECT_TRUE(cb::token_valid(key, kCall, t));
  EXPECT_FALSE(cb::token_valid(key, "0b6f3c1e-8d2a-4f51-9c3e-2a7d9e4b1f61", t));
  EXPECT_FALSE(cb::token_valid(key, kCall, ""));
  EXPECT_FALSE(cb::token_valid(key, kCall, t.substr(0, t.size() - 1)));
  EXPECT_FALSE(cb::token_valid(key, kCall, t + "A"));
  std::string flipped = t;
  flipped[5] = flipped[5] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(cb::token_valid(key, kCall, flipped));
}

TEST(CallbackToken, RefusesAKeyOfTheWrongSize) {
  SecureBuffer key(16);
  EXPECT_THROW(cb::token(key, kCall), std::invalid_argument);
}
