#include "core/envelope.hpp"

#include <gtest/gtest.h>
#include <sodium.h>

#include <cstring>
#include <string>

#include "core/error.hpp"
#include "core/master_key.hpp"

namespace crypto = gateway::crypto;
using gateway::SecureBuffer;

namespace {

SecureBuffer key_of(std::uint8_t seed) {
  std::uint8_t bytes[32];
  for (int i = 0; i < 32; ++i) bytes[i] = static_cast<std::uint8_t>(seed + i);
  return gateway::MasterKey::from_bytes(bytes, 32).derive("gwcreds1", 1);
}

std::string open_text(const SecureBuffer& key, const std::vector<std::uint8_t>& sealed,
                      std::string_view context) {
  auto view = crypto::parse_envelope(sealed.data(), sealed.size());
  if (!view) throw std::runtime_error("unparsable");
  SecureBuffer plain = crypto::open(key, *view, context);
  return std::string(reinterpret_cast<const char*>(plain.data()), plain.size());
}

bool opens(const SecureBuffer& key, const std::vector<std::uint8_t>& sealed, std::string_view context) {
  try {
    open_text(key, sealed, context);
    return true;
  } catch (const gateway::Error& e) {
    EXPECT_STREQ(e.code(), crypto::kDecryptFailed);
    return false;
  } catch (const std::runtime_error&) {
    return false;
  }
}

const std::string kSecret = R"({"token":"sk_live_abc","password":"hunter2"})";

}  // namespace

TEST(Envelope, RoundTripsAndCarriesVersionAndKeyId) {
  SecureBuffer key = key_of(1);
  auto sealed = crypto::seal(key, 0x01020304, kSecret, "connector-1");
  ASSERT_EQ(sealed.size(), crypto::kOverheadBytes + kSecret.size());
  auto view = crypto::parse_envelope(sealed.data(), sealed.size());
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->version, 1);
  EXPECT_EQ(view->key_id, 0x01020304U);
  EXPECT_EQ(open_text(key, sealed, "connector-1"), kSecret);
  EXPECT_EQ(std::string(sealed.begin(), sealed.end()).find("hunter2"), std::string::npos);
}

TEST(Envelope, EmptyPlaintextAndEmptyContextWork) {
  SecureBuffer key = key_of(1);
  EXPECT_EQ(open_text(key, crypto::seal(key, 7, "", ""), ""), "");
}

TEST(Envelope, NoncesAreFreshEachTime) {
  SecureBuffer key = key_of(1);
  EXPECT_NE(crypto::seal(key, 1, kSecret, "c"), crypto::seal(key, 1, kSecret, "c"));
}

TEST(Envelope, EveryBitFlipAnywhereIsDetected) {
  SecureBuffer key = key_of(1);
  auto sealed = crypto::seal(key, 9, kSecret, "ctx");
  for (std::size_t byte = 0; byte < sealed.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      auto tampered = sealed;
      tampered[byte] ^= static_cast<std::uint8_t>(1U << bit);
      ASSERT_FALSE(opens(key, tampered, "ctx")) << "byte " << byte << " bit " << bit;
    }
  }
}

TEST(Envelope, EveryTruncationAndExtensionIsDetected) {
  SecureBuffer key = key_of(1);
  auto sealed = crypto::seal(key, 9, kSecret, "ctx");
  for (std::size_t len = 0; len < sealed.size(); ++len) {
    std::vector<std::uint8_t> cut(sealed.begin(), sealed.begin() + static_cast<long>(len));
    ASSERT_FALSE(opens(key, cut, "ctx")) << "length " << len;
  }
  auto longer = sealed;
  longer.push_back(0);
  EXPECT_FALSE(opens(key, longer, "ctx"));
}

TEST(Envelope, AnotherContextOrKeyCannotOpenIt) {
  SecureBuffer key = key_of(1);
  auto sealed = crypto::seal(key, 9, kSecret, "connector-1");
  EXPECT_FALSE(opens(key, sealed, "connector-2"));
  EXPECT_FALSE(opens(key, sealed, ""));
  EXPECT_FALSE(opens(key, sealed, std::string("connector-1\0", 12)));
  EXPECT_FALSE(opens(key_of(2), sealed, "connector-1"));
}

TEST(Envelope, ParseRejectsShortInputAndUnknownVersions) {
  std::vector<std::uint8_t> tiny(crypto::kOverheadBytes - 1, 1);
  EXPECT_FALSE(crypto::parse_envelope(tiny.data(), tiny.size()).has_value());
  EXPECT_FALSE(crypto::parse_envelope(nullptr, 0).has_value());
  std::vector<std::uint8_t> v2(crypto::kOverheadBytes, 0);
  v2[0] = 2;
  EXPECT_FALSE(crypto::parse_envelope(v2.data(), v2.size()).has_value());
  v2[0] = 1;
  EXPECT_TRUE(crypto::parse_envelope(v2.data(), v2.size()).has_value());
}
