// CRC32C throughput of the hardware (SSE4.2, 3 lanes) and portable (slicing-by-8)
// paths at 64 B, 4 KiB and 1 MiB.
#include <cstdint>
#include <vector>

#include <benchmark/benchmark.h>

#include "io/crc32c.h"

namespace {

void BM_Crc32cHardware(benchmark::State& state) {
  std::vector<uint8_t> buf(static_cast<size_t>(state.range(0)), 0x5a);
  if (!dlprep::io::Crc32cHardware()) state.SkipWithError("no SSE4.2");
  for (auto _ : state) {
    benchmark::DoNotOptimize(dlprep::io::Crc32c(buf.data(), buf.size()));
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}

void BM_Crc32cPortable(benchmark::State& state) {
  std::vector<uint8_t> buf(static_cast<size_t>(state.range(0)), 0x5a);
  for (auto _ : state) {
    benchmark::DoNotOptimize(dlprep::io::Crc32cPortable(buf.data(), buf.size()));
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}

BENCHMARK(BM_Crc32cHardware)->Arg(64)->Arg(4 << 10)->Arg(1 << 20);
BENCHMARK(BM_Crc32cPortable)->Arg(64)->Arg(4 << 10)->Arg(1 << 20);

}  // namespace

BENCHMARK_MAIN();
