// A per-process memo of the stored hashes of API keys that verified, so a key presented again
// costs one SipHash and one probe of this table instead of a keyed BLAKE2b (two compressions, the
// largest part of a verify answered from the verify cache).
//
// An entry is found by a tag: SipHash-128 of (key, pepper version, master key fingerprint) under a
// random key of this process. The memo holds no API key, only tags and the hashes the table holds
// anyway; a presented key finds an entry only if it is the key that was remembered (a different
// one collides with probability 2^-128). Only keys that matched are remembered, so a flood of
// wrong secrets cannot push good keys out.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "key_hash.hpp"
#include "master_key_choice.hpp"

namespace gateway::api_key {

class HashMemo {
 public:
  using Tag = std::array<std::uint8_t, 16>;

  // `sets` sets of four entries (56 bytes each), allocated on first use.
  explicit HashMemo(std::size_t sets = 1024);
  ~HashMemo();
  HashMemo(const HashMemo&) = delete;
  HashMemo& operator=(const HashMemo&) = delete;

  Tag tag(std::string_view key, int pepper_version, const Fingerprint& master) const;
  // The remembered hash for `tag`, or nullptr.
  const Hash* find(const Tag& tag);
  // Remembers `hash` (which the key behind `tag` matched), replacing the least recently used of
  // its set.
  void remember(const Tag& tag, const Hash& hash);

 private:
  static constexpr std::size_t kWays = 4;
  struct Entry {
    Tag tag{};
    Hash hash{};
    std::uint32_t last_use = 0;  // 0: free
  };
  Entry* set_of(const Tag& tag);
  std::uint32_t next_use();

  std::size_t sets_;
  std::vector<Entry> entries_;
  std::array<std::uint8_t, 16> mac_key_{};
  std::uint32_t clock_ = 0;
};

}  // namespace gateway::api_key
