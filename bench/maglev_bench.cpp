// Maglev table build time, and what right-sizing rings per service saves in map memory.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "maglev/maglev.h"

namespace {

using xlb::maglev::Member;

std::vector<Member> make_members(int64_t n) {
  std::vector<Member> members;
  for (int64_t i = 0; i < n; ++i) {
    members.push_back({"10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ":8080/tcp", 1});
  }
  return members;
}

// Args: table size M, member count N. Includes the copy of the members (build takes them by value,
// as the engine hands them over) and the sort, as the engine pays both.
void BM_Build(benchmark::State& state) {
  const auto table_size = static_cast<uint32_t>(state.range(0));
  const std::vector<Member> members = make_members(state.range(1));
  for (auto _ : state) {
    auto table = xlb::maglev::build(members, table_size, "bench-seed");
    if (!table.ok()) {
      state.SkipWithError(table.error().message.c_str());
      return;
    }
    benchmark::DoNotOptimize(table->slots.data());
  }
}
BENCHMARK(BM_Build)->Args({65521, 1000})->Args({16381, 100})->Args({1021, 4})->Unit(benchmark::kMicrosecond);

// Ring map memory (4 bytes per slot) for many small services: right-sized versus one fixed size.
// Pure arithmetic on the chosen sizes; reported as counters, the timing means nothing.
void BM_RingMemory(benchmark::State& state) {
  constexpr uint64_t kServices = 10'000;
  constexpr uint64_t kBackendsPerService = 4;
  constexpr uint64_t kFixedSize = 16381;
  constexpr uint64_t kBytesPerSlot = sizeof(uint32_t);
  uint64_t right_sized = 0;
  for (auto _ : state) {
    auto size = xlb::maglev::choose_table_size(kBackendsPerService);
    if (!size.ok()) {
      state.SkipWithError(size.error().message.c_str());
      return;
    }
    right_sized = kServices * *size * kBytesPerSlot;
    benchmark::DoNotOptimize(right_sized);
  }
  const uint64_t fixed = kServices * kFixedSize * kBytesPerSlot;
  state.counters["right_sized_MiB"] = static_cast<double>(right_sized) / (1 << 20);
  state.counters["fixed_16381_MiB"] = static_cast<double>(fixed) / (1 << 20);
  state.counters["fixed_over_right_sized"] = static_cast<double>(fixed) / static_cast<double>(right_sized);
}
BENCHMARK(BM_RingMemory)->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
