#include "key_format.hpp"

#include <sodium.h>

#include <array>

#include "secure_buffer.hpp"
#include "cpp_only.hpp"  // last: proves no PostgreSQL header came in above

namespace gateway::api_key {
namespace {

constexpr std::string_view kAlphabet =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
constexpr std::size_t kChecksumOffset = kKeyLength - kChecksumLength;
constexpr std::size_t kSeparatorOffset = kMarker.size() + kPrefixLength;

constexpr std::array<std::uint32_t, 256> make_crc_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1U) ? 0xEDB88320U ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr auto kCrcTable = make_crc_table();

int base62_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'Z') return c - 'A' + 10;
  if (c >= 'a' && c <= 'z') return c - 'a' + 36;
  return -1;
}

void append_random_base62(std::string& out, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    // randombytes_uniform has no modulo bias, so each character carries log2(62) bits.
    out.push_back(kAlphabet[randombytes_uniform(static_cast<std::uint32_t>(kAlphabet.size()))]);
  }
}

}  // namespace

bool is_base62(char c) noexcept { return base62_value(c) >= 0; }

std::uint32_t crc32(std::string_view data) noexcept {
  std::uint32_t c = 0xFFFFFFFFU;
  for (unsigned char byte : data) c = kCrcTable[(c ^ byte) & 0xFFU] ^ (c >> 8);
  return c ^ 0xFFFFFFFFU;
}

std::string encode_base62_fixed(std::uint64_t value, std::size_t width) {
  std::string out(width, kAlphabet[0]);
  for (std::size_t i = width; i-- > 0;) {
    out[i] = kAlphabet[value % kAlphabet.size()];
    value /= kAlphabet.size();
  }
  return out;
}

std::optional<std::uint64_t> decode_base62(std::string_view text) noexcept {
  if (text.empty() || text.size() > 10) return std::nullopt;  // 62^10 < 2^64
  std::uint64_t value = 0;
  for (char c : text) {
    int digit = base62_value(c);
    if (digit < 0) return std::nullopt;
    value = value * kAlphabet.size() + static_cast<std::uint64_t>(digit);
  }
  return value;
}

std::optional<ParsedKey> parse(std::string_view text) noexcept {
  if (text.size() != kKeyLength) return std::nullopt;
  if (text.substr(0, kMarker.size()) != kMarker) return std::nullopt;
  if (text[kSeparatorOffset] != '_') return std::nullopt;

  // Check every character without an early exit so the time taken does not depend on where a
  // guessed secret goes wrong.
  bool all_base62 = true;
  for (std::size_t i = kMarker.size(); i < kKeyLength; ++i) {
    if (i == kSeparatorOffset) continue;
    all_base62 &= is_base62(text[i]);
  }
  if (!all_base62) return std::nullopt;

  auto checksum = decode_base62(text.substr(kChecksumOffset));
  if (!checksum || *checksum != crc32(text.substr(0, kChecksumOffset))) return std::nullopt;

  return ParsedKey{text.substr(kMarker.size(), kPrefixLength), text};
}

std::string generate() {
  ensure_sodium();
  std::string key;
  key.reserve(kKeyLength);
  key.append(kMarker);
  append_random_base62(key, kPrefixLength);
  key.push_back('_');
  append_random_base62(key, kSecretLength);
  key.append(encode_base62_fixed(crc32(key), kChecksumLength));
  return key;
}

}  // namespace gateway::api_key
