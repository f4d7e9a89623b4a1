// The stored form of an API key: keyed BLAKE2b-256 of the whole key under a pepper derived from
// the master key. A database dump alone is useless for guessing keys; the pepper has a version so
// it can be changed for new keys while old ones keep verifying.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string_view>

#include "master_key.hpp"

namespace gateway::api_key {

inline constexpr std::size_t kHashBytes = 32;
using Hash = std::array<std::uint8_t, kHashBytes>;

inline constexpr int kMinPepperVersion = 1;
inline constexpr int kMaxPepperVersion = 32767;  // stored as smallint

class Hasher {
 public:
  explicit Hasher(const MasterKey& master) : master_(master) {}

  Hash hash(std::string_view key, int pepper_version);

  // Constant-time comparison of a computed hash with a stored one of any length.
  static bool matches(const Hash& computed, const std::uint8_t* stored, std::size_t stored_len);

 private:
  const SecureBuffer& pepper(int version);

  const MasterKey& master_;
  std::map<int, SecureBuffer> peppers_;  // derived once per version per process
};

}  // namespace gateway::api_key
