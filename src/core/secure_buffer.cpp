#include "secure_buffer.hpp"

#include <sodium.h>

#include <utility>

#include "error.hpp"
#include "cpp_only.hpp"  // last: proves no PostgreSQL header came in above

namespace gateway {

void ensure_sodium() {
  // sodium_init is idempotent and thread-safe; 1 means "already initialised".
  if (sodium_init() < 0) {
    throw Error(sqlstate::kInternalError, "could not initialize libsodium");
  }
}

SecureBuffer::SecureBuffer(std::size_t size) : size_(size) {
  ensure_sodium();
  data_ = static_cast<std::uint8_t*>(sodium_malloc(size));
  if (data_ == nullptr) {
    throw Error(sqlstate::kOutOfMemory, "could not allocate guarded memory for key material",
                "sodium_malloc failed; the process may have hit its locked-memory limit.",
                "Raise the memlock limit (ulimit -l) of the database server.");
  }
}

SecureBuffer::~SecureBuffer() { release(); }

SecureBuffer::SecureBuffer(SecureBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

SecureBuffer& SecureBuffer::operator=(SecureBuffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void SecureBuffer::make_read_only() {
  if (data_ != nullptr) sodium_mprotect_readonly(data_);
}

void SecureBuffer::release() noexcept {
  // sodium_free wipes the memory before unmapping it, also when it was made read-only.
  if (data_ != nullptr) sodium_free(data_);
  data_ = nullptr;
  size_ = 0;
}

}  // namespace gateway
