// The API key format: gw_<lookup prefix>_<secret><checksum>
//
//   gw_        fixed marker, so secret scanners and people recognise a pg_gateway key
//   prefix     12 base62 characters: public, shown in listings, the unique lookup handle
//   secret     43 base62 characters: 256 bits from libsodium's CSPRNG
//   checksum   6 base62 characters: CRC-32 of everything before it, so a mistyped or truncated
//              key is rejected without touching a table
//
// The prefix is random as well (71 bits), so it never reveals when or for whom a key was made.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gateway::api_key {

inline constexpr std::string_view kMarker = "gw_";
inline constexpr std::size_t kPrefixLength = 12;
inline constexpr std::size_t kSecretLength = 43;
inline constexpr std::size_t kChecksumLength = 6;
inline constexpr std::size_t kKeyLength =
    kMarker.size() + kPrefixLength + 1 + kSecretLength + kChecksumLength;

// The parts of a well-formed key. Views point into the string that was parsed.
struct ParsedKey {
  std::string_view prefix;
  std::string_view full;  // the whole key, the input of the keyed hash
};

// Returns the parts of `text` when it is a well-formed key with a correct checksum, otherwise
// nothing. Runs in time independent of where the first difference lies in the secret, and never
// allocates.
std::optional<ParsedKey> parse(std::string_view text) noexcept;

// Makes a new key from libsodium's CSPRNG.
std::string generate();

// Exposed for tests and the fuzzer.
std::uint32_t crc32(std::string_view data) noexcept;
std::string encode_base62_fixed(std::uint64_t value, std::size_t width);
std::optional<std::uint64_t> decode_base62(std::string_view text) noexcept;
bool is_base62(char c) noexcept;

}  // namespace gateway::api_key
