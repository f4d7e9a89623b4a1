#include "hash_memo.hpp"

#include <sodium.h>

#include <cstring>

#include "secure_buffer.hpp"
#include "set_assoc.hpp"
#include "cpp_only.hpp"  // last: proves no PostgreSQL header came in above

namespace gateway::api_key {

static_assert(crypto_shorthash_siphashx24_KEYBYTES == 16 && crypto_shorthash_siphashx24_BYTES == 16);

HashMemo::HashMemo(std::size_t sets) : sets_(sets == 0 ? 1 : sets) {
  ensure_sodium();
  randombytes_buf(mac_key_.data(), mac_key_.size());
}

HashMemo::~HashMemo() {
  sodium_memzero(mac_key_.data(), mac_key_.size());
  if (!entries_.empty()) sodium_memzero(entries_.data(), entries_.size() * sizeof(Entry));
}

HashMemo::Tag HashMemo::tag(std::string_view key, int pepper_version, const Fingerprint& master) const {
  // key | version (2 bytes) | fingerprint: a key has a fixed length, so the parts cannot shift.
  std::array<unsigned char, 128> input{};
  const std::size_t key_len = std::min(key.size(), input.size() - 2 - master.size());
  std::memcpy(input.data(), key.data(), key_len);
  input[key_len] = static_cast<unsigned char>(pepper_version & 0xFF);
  input[key_len + 1] = static_cast<unsigned char>((pepper_version >> 8) & 0xFF);
  std::memcpy(input.data() + key_len + 2, master.data(), master.size());
  Tag out{};
  crypto_shorthash_siphashx24(out.data(), input.data(), key_len + 2 + master.size(), mac_key_.data());
  sodium_memzero(input.data(), input.size());
  return out;
}

// 0 means free: after 2^32 uses the order restarts (the eviction choice is then only less apt).
std::uint32_t HashMemo::next_use() {
  if (++clock_ == 0) ++clock_;
  return clock_;
}

HashMemo::Entry* HashMemo::set_of(const Tag& tag) {
  if (entries_.empty()) entries_.resize(sets_ * kWays);
  std::uint64_t index = 0;
  std::memcpy(&index, tag.data(), sizeof(index));
  return &entries_[(index % sets_) * kWays];
}

const Hash* HashMemo::find(const Tag& tag) {
  // A plain comparison: a tag is a keyed PRF of the presented key, so how much of it matches a
  // stored tag tells a caller nothing about any key (the stored hash itself is compared in
  // constant time by the caller).
  Entry* found = find_way(set_of(tag), kWays, [&](const Entry& e) { return e.tag == tag; },
                          [](const Entry& e) { return e.last_use; });
  if (found == nullptr) return nullptr;
  found->last_use = next_use();
  return &found->hash;
}

void HashMemo::remember(const Tag& tag, const Hash& hash) {
  Entry* target = way_to_fill(set_of(tag), kWays, [&](const Entry& e) { return e.tag == tag; },
                              [](const Entry& e) { return e.last_use; });
  target->tag = tag;
  target->hash = hash;
  target->last_use = next_use();
}

}  // namespace gateway::api_key
