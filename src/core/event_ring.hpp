// A bounded queue of fixed-size records over caller-provided memory (shared memory in the
// server). Producers never wait and never allocate: when the ring is full a record is dropped and
// counted, which is how verify-failure auditing is sampled under a flood. The caller locks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

namespace gateway {

template <typename Record>
class EventRing {
  static_assert(std::is_trivially_copyable_v<Record>, "records are copied between processes");

 public:
  struct Header {
    std::uint64_t head = 0;     // index of the oldest record
    std::uint64_t count = 0;
    std::uint64_t dropped = 0;  // records refused since the last drain
  };

  static std::size_t bytes_for(std::size_t capacity) {
    return sizeof(Header) + capacity * sizeof(Record);
  }

  EventRing(void* memory, std::size_t capacity, bool initialise)
      : header_(static_cast<Header*>(memory)),
        records_(reinterpret_cast<Record*>(static_cast<char*>(memory) + sizeof(Header))),
        capacity_(capacity) {
    if (initialise) new (header_) Header();
  }

  // Returns false when full, counting the drop unless the caller refuses the record's cause
  // instead (`count_drop` false).
  bool push(const Record& record, bool count_drop = true) noexcept {
    if (header_->count == capacity_) {
      if (count_drop) ++header_->dropped;
      return false;
    }
    records_[(header_->head + header_->count) % capacity_] = record;
    ++header_->count;
    return true;
  }

  // Moves every record into `out`; returns how many were dropped since the last drain.
  std::uint64_t drain(std::vector<Record>& out) {
    for (std::uint64_t i = 0; i < header_->count; ++i) {
      out.push_back(records_[(header_->head + i) % capacity_]);
    }
    header_->head = (header_->head + header_->count) % capacity_;
    header_->count = 0;
    return std::exchange(header_->dropped, 0);
  }

  std::size_t size() const noexcept { return static_cast<std::size_t>(header_->count); }
  std::size_t capacity() const noexcept { return capacity_; }

 private:
  Header* header_;
  Record* records_;
  std::size_t capacity_;
};

}  // namespace gateway
