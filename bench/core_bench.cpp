// Micro-benchmarks of the verify hot path's pure parts: parsing, hashing, rate limiting.
// Run: cmake --build build --target core_bench && ./build/core_bench
#include <benchmark/benchmark.h>

#include <vector>

#include "core/key_format.hpp"
#include "core/key_hash.hpp"
#include "core/token_bucket.hpp"
#include "core/usage_table.hpp"

namespace ak = gateway::api_key;

static void BM_ParseValidKey(benchmark::State& state) {
  std::string key = ak::generate();
  for (auto _ : state) benchmark::DoNotOptimize(ak::parse(key));
}
BENCHMARK(BM_ParseValidKey);

static void BM_ParseMalformedKey(benchmark::State& state) {
  std::string key = ak::generate();
  key[30] = key[30] == 'a' ? 'b' : 'a';
  for (auto _ : state) benchmark::DoNotOptimize(ak::parse(key));
}
BENCHMARK(BM_ParseMalformedKey);

static void BM_HashKey(benchmark::State& state) {
  std::uint8_t bytes[32] = {1};
  gateway::MasterKey master = gateway::MasterKey::from_bytes(bytes, 32);
  ak::Hasher hasher(master);
  std::string key = ak::generate();
  for (auto _ : state) benchmark::DoNotOptimize(hasher.hash(key, 1));
}
BENCHMARK(BM_HashKey);

static void BM_UsageTableTakeToken(benchmark::State& state) {
  std::vector<unsigned char> memory(gateway::UsageTable::bytes_for(16384));
  gateway::UsageTable table(memory.data(), gateway::UsageTable::sets_for(16384), true);
  gateway::KeyId key{};
  std::int64_t now = 1;
  for (auto _ : state) {
    key[8] = static_cast<std::uint8_t>(now);
    auto& slot = table.find_or_claim(key, 1, now);
    benchmark::DoNotOptimize(gateway::take_token(slot.bucket, 1000000, now++));
  }
}
BENCHMARK(BM_UsageTableTakeToken);

BENCHMARK_MAIN();
