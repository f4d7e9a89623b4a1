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

// CRC-32 (IEEE) tables for slicing by eight: table[k][b] is the CRC of byte b followed by k zero
// bytes. Verify checks the checksum of every presented key; eight bytes per step instead of one
// cut that check to a quarter.
constexpr std::array<std::array<std::uint32_t, 256>, 8> make_crc_tables() {
  std::array<std::array<std::uint32_t, 256>, 8> tables{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1U) ? 0xEDB88320U ^ (c >> 1) : c >> 1;
    tables[0][i] = c;
  }
  for (std::size_t k = 1; k < 8; ++k) {
    for (std::size_t i = 0; i < 256; ++i) {
      tables[k][i] = (tables[k - 1][i] >> 8) ^ tables[0][tables[k - 1][i] & 0xFFU];
    }
  }
  return tables;
}
constexpr auto kCrcTables = make_crc_tables();

std::uint32_t load_le32(const unsigned char* p) noexcept {
  return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 | std::uint32_t{p[3]} << 24;
}

// Digit value by character, -1 for anything else: verify parses every presented key, and a table
// costs one load per character where the range tests cost three branches.
constexpr std::array<std::int8_t, 256> make_base62_table() {
  std::array<std::int8_t, 256> table{};
  for (auto& value : table) value = -1;
  for (std::size_t i = 0; i < kAlphabet.size(); ++i) {
    table[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::int8_t>(i);
  }
  return table;
}
constexpr auto kBase62Table = make_base62_table();

inline int base62_value(char c) noexcept { return kBase62Table[static_cast<unsigned char>(c)]; }

void append_random_base62(std::string& out, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    // randombytes_uniform has no modulo bias, so each character carries log2(62) bits.
    out.push_back(kAlphabet[randombytes_uniform(static_cast<std::uint32_t>(kAlphabet.size()))]);
  }
}

}  // namespace

bool is_base62(char c) noexcept { return base62_value(c) >= 0; }

std::uint32_t crc32(std::string_view data) noexcept {
  const auto& t = kCrcTables;
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  std::size_t n = data.size();
  std::uint32_t c = 0xFFFFFFFFU;
  for (; n >= 8; p += 8, n -= 8) {
    const std::uint32_t lo = c ^ load_le32(p);
    const std::uint32_t hi = load_le32(p + 4);
    c = t[7][lo & 0xFFU] ^ t[6][(lo >> 8) & 0xFFU] ^ t[5][(lo >> 16) & 0xFFU] ^ t[4][lo >> 24] ^
        t[3][hi & 0xFFU] ^ t[2][(hi >> 8) & 0xFFU] ^ t[1][(hi >> 16) & 0xFFU] ^ t[0][hi >> 24];
  }
  for (; n > 0; ++p, --n) c = t[0][(c ^ *p) & 0xFFU] ^ (c >> 8);
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
    all_base62 &= base62_value(text[i]) >= 0;
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
