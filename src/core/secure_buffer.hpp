// Fixed-size secret storage in libsodium guarded memory: never swapped out (mlock), guard pages
// around it, and wiped when freed. Movable, not copyable, so a secret has exactly one owner.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gateway {

class SecureBuffer {
 public:
  SecureBuffer() = default;
  explicit SecureBuffer(std::size_t size);
  ~SecureBuffer();

  SecureBuffer(SecureBuffer&& other) noexcept;
  SecureBuffer& operator=(SecureBuffer&& other) noexcept;
  SecureBuffer(const SecureBuffer&) = delete;
  SecureBuffer& operator=(const SecureBuffer&) = delete;

  std::uint8_t* data() noexcept { return data_; }
  const std::uint8_t* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return data_ == nullptr; }

  // Shortens the logical size (the allocation and its wiping on free are unchanged).
  void truncate(std::size_t size) noexcept {
    if (size < size_) size_ = size;
  }

  // Marks the memory read-only until it is freed: a stray write becomes a crash, not a silent
  // corruption of key material.
  void make_read_only();

 private:
  void release() noexcept;

  std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

// Initialises libsodium once per process; throws gateway::Error if the library cannot start.
void ensure_sodium();

}  // namespace gateway
