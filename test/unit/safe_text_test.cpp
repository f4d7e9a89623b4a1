#include "core/safe_text.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/retry_policy.hpp"

namespace gateway {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

TEST(SafeText, KeepsValidText) {
  EXPECT_EQ(safe_text("plain", 100), "plain");
  EXPECT_EQ(safe_text("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", 100), "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
}

TEST(SafeText, CutsOnCharacterBoundaries) {
  // "x" then 2-byte characters: a cut at an even byte count would split one.
  std::string text = "x";
  for (int i = 0; i < 10; ++i) text += "\xC3\xA9";
  EXPECT_EQ(safe_text(text, 4), "x\xC3\xA9");
  EXPECT_EQ(safe_text("\xE2\x82\xAC\xE2\x82\xAC", 5), "\xE2\x82\xAC");
  EXPECT_EQ(safe_text("abc", 0), "");
}

TEST(SafeText, ReplacesInvalidBytesAndNul) {
  EXPECT_EQ(safe_text(std::string("a\0b", 3), 100), "a" + kFffd + "b");
  EXPECT_EQ(safe_text("\xFF\xFE", 100), kFffd + kFffd);
  EXPECT_EQ(safe_text("\xC3\x28", 100), kFffd + "(");             // bad continuation
  EXPECT_EQ(safe_text("\xC0\xAF", 100), kFffd + kFffd);           // overlong
  EXPECT_EQ(safe_text("\xED\xA0\x80", 100), kFffd + kFffd + kFffd);  // a surrogate
  EXPECT_EQ(safe_text("\xF4\x90\x80\x80", 100), kFffd + kFffd + kFffd + kFffd);  // > U+10FFFF
  EXPECT_EQ(safe_text("ok\xE2\x82", 100), "ok" + kFffd + kFffd);  // cut off at the end
}

TEST(SafeText, OutputAlwaysSerialises) {
  // Every byte value, in every position: the output dumps as JSON without throwing and has no NUL.
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (std::size_t cut = 0; cut < 40; ++cut) {
    std::string out = safe_text(all + all, 200 + cut);
    EXPECT_LE(out.size(), 200 + cut);
    EXPECT_EQ(out.find('\0'), std::string::npos);
    EXPECT_NO_THROW((void) nlohmann::json(out).dump());
  }
}

sync::CallResult answer(long status, std::string body) {
  sync::CallResult r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

// Kong's error text is stored in jsonb and text columns: whatever the body, the description is
// valid UTF-8 without NUL, and short.
TEST(SafeText, FailureDescriptionsOfHostileBodiesAreStorable) {
  std::string split = "{\"message\": \"x";
  for (int i = 0; i < 1000; ++i) split += "\xC3\xA9";
  split += "\"}";
  std::string plain_split = "x";
  for (int i = 0; i < 300; ++i) plain_split += "\xC3\xA9";
  const std::string bodies[] = {split, plain_split, "\xFF\xFE broken \xC3\x28", "{\"message\": \"nul \\u0000 inside\"}",
                                std::string(20 << 20, 'A'), "<html>502</html>", "{\"message\": \"cut"};
  for (const std::string& body : bodies) {
    std::string text = sync::describe_failure(answer(400, body));
    EXPECT_LE(text.size(), 1000u);
    EXPECT_EQ(text.find('\0'), std::string::npos);
    EXPECT_NO_THROW((void) nlohmann::json(text).dump()) << text.substr(0, 40);
  }
}

}  // namespace
}  // namespace gateway
