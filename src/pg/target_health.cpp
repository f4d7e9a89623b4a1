#include "target_health.hpp"

#include <cstring>

#include "postgres.hpp"

extern "C" {
#include "storage/spin.h"
}

namespace gateway::pg {
namespace {

constexpr const char* kTargets[] = {"kong", "temporal", "nexus"};
constexpr int kTargetCount = 3;

struct SharedTargets {
  slock_t lock;
  TargetHealth targets[kTargetCount];
};

SharedTargets* shared = nullptr;

int slot_of(const char* name) {
  for (int i = 0; i < kTargetCount; ++i) {
    if (std::strcmp(kTargets[i], name) == 0) return i;
  }
  return -1;
}

}  // namespace

std::size_t target_health_size() { return MAXALIGN(sizeof(SharedTargets)); }

void target_health_init() {
  bool found = false;
  shared = static_cast<SharedTargets*>(ShmemInitStruct("pg_gateway target health", target_health_size(), &found));
  if (!found) {
    SpinLockInit(&shared->lock);
    for (TargetHealth& t : shared->targets) t = TargetHealth{};
  }
}

void publish_target_health(const char* name, const TargetHealth& health) {
  const int slot = slot_of(name);
  if (shared == nullptr || slot < 0) return;
  TargetHealth copy = health;
  copy.published = true;
  SpinLockAcquire(&shared->lock);
  shared->targets[slot] = copy;
  SpinLockRelease(&shared->lock);
}

bool read_target_health(const char* name, TargetHealth* out) {
  const int slot = slot_of(name);
  if (shared == nullptr || slot < 0) return false;
  SpinLockAcquire(&shared->lock);
  *out = shared->targets[slot];
  SpinLockRelease(&shared->lock);
  return true;
}

}  // namespace gateway::pg
