// Which master key an API key's stored hash was made under, and what verify does about it: the
// rules of a master-key rotation for API keys in one pure function, so the hot path for keys on
// the current master key stays one hash and the order of tries is tested in one place.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace gateway::api_key {

// A master key's public fingerprint (MasterKey::fingerprint(): 16 lower-case hex characters), as
// a fixed-size value so rows carrying it stay trivially copyable.
inline constexpr std::size_t kFingerprintChars = 16;
using Fingerprint = std::array<char, kFingerprintChars>;

// Parses a stored fingerprint; false (and `out` untouched) when it is not 16 hex characters.
bool parse_fingerprint(std::string_view text, Fingerprint& out) noexcept;

enum class HashedUnder : std::uint8_t {
  kCurrent,   // the row's fingerprint is the current master key's
  kPrevious,  // it is gateway.previous_master_key_file's
  kUnmarked,  // no fingerprint: issued before 0.6.0, under whichever master key was current then
  kOther,     // a master key this server does not have
};

// `marker` is nullptr for an unmarked row; `previous` nullptr when no previous key is configured.
HashedUnder classify(const Fingerprint* marker, const Fingerprint& current,
                     const Fingerprint* previous) noexcept;

enum class Master : std::uint8_t { kCurrent, kPrevious };

// The master keys whose pepper verify tries, in order (at most two hashes), and whether a match
// moves the row to the current master key. A current row: one try, nothing to move. A previous
// row: the previous key, then moved. An unmarked row: the current key, then (while a rotation
// runs) the previous one; a match under either is written back with its marker. A row under an
// unknown master key matches nothing: it is `unknown` until that key is configured again.
struct VerifyPlan {
  std::array<Master, 2> tries{};
  int count = 0;
  bool rehash_on_match = false;
};

VerifyPlan plan_verify(HashedUnder under, bool previous_configured) noexcept;

}  // namespace gateway::api_key
