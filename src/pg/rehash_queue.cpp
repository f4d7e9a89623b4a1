#include "rehash_queue.hpp"

#include "../core/event_ring.hpp"

extern "C" {
#include "storage/spin.h"
}

namespace gateway::pg {
namespace {

// A busy server moves a few thousand keys per usage flush; more are asked again on later verifies.
constexpr std::size_t kCapacity = 4096;

struct QueueHeader {
  slock_t lock;  // held only to copy one record in or the ring out
};

QueueHeader* header = nullptr;
void* ring_memory = nullptr;

EventRing<RehashRequest> ring() { return EventRing<RehashRequest>(ring_memory, kCapacity, false); }

}  // namespace

std::size_t rehash_queue_shmem_size() {
  return add_size(MAXALIGN(sizeof(QueueHeader)), EventRing<RehashRequest>::bytes_for(kCapacity));
}

void rehash_queue_shmem_init() {
  bool found = false;
  char* base = static_cast<char*>(ShmemInitStruct("pg_gateway rehash queue", rehash_queue_shmem_size(), &found));
  header = reinterpret_cast<QueueHeader*>(base);
  ring_memory = base + MAXALIGN(sizeof(QueueHeader));
  if (!found) {
    SpinLockInit(&header->lock);
    EventRing<RehashRequest>(ring_memory, kCapacity, true);
  }
}

bool queue_rehash_request(const RehashRequest& request) {
  if (header == nullptr) return false;
  SpinLockAcquire(&header->lock);
  bool queued = ring().push(request);
  SpinLockRelease(&header->lock);
  return queued;
}

std::uint64_t drain_rehash_requests(std::vector<RehashRequest>& out) {
  if (header == nullptr) return 0;
  out.reserve(out.size() + kCapacity);  // no allocation while the spinlock is held
  SpinLockAcquire(&header->lock);
  std::uint64_t dropped = ring().drain(out);
  SpinLockRelease(&header->lock);
  return dropped;
}

}  // namespace gateway::pg
