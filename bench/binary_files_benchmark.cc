// Throughput of the binary_files source on many small files and on a few large ones.
//
// Data lives in $DLPREP_BENCH_DIR (default: <tmp>/dlprep-binary-files-bench) and is
// created on first use: small/ holds 20,000 files of 4 KiB (in 20 folders), large/
// holds 4 files of 256 MiB. Every benchmark reads the data once before timing, so the
// figures are for a warm page cache. `--generate_only` creates the data and exits
// (bench/binary_files_vs_cat.sh uses it).
//
// Counters: items_per_second is files/s, bytes_per_second is content bytes/s.

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <arrow/array.h>
#include <arrow/record_batch.h>
#include <benchmark/benchmark.h>

#include "dlprep/source.h"
#include "io/glob.h"

namespace dlprep {
namespace {

namespace fs = std::filesystem;

constexpr int kSmallFiles = 20000;
constexpr int64_t kSmallSize = 4096;
constexpr int kLargeFiles = 4;
constexpr int64_t kLargeSize = int64_t{256} << 20;

std::string BenchDir() {
  const char* env = std::getenv("DLPREP_BENCH_DIR");
  if (env != nullptr && *env != '\0') return env;
  return (fs::temp_directory_path() / "dlprep-binary-files-bench").string();
}

void WriteOrDie(const std::string& path, const std::string& bytes, int64_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    std::fprintf(stderr, "cannot create %s: %s\n", path.c_str(), std::strerror(errno));
    std::exit(1);
  }
  int64_t done = 0;
  while (done < size) {
    const int64_t chunk = std::min<int64_t>(size - done, bytes.size());
    const ssize_t n = ::write(fd, bytes.data(), chunk);
    if (n <= 0) {
      std::fprintf(stderr, "cannot write %s: %s\n", path.c_str(), std::strerror(errno));
      std::exit(1);
    }
    done += n;
  }
  ::close(fd);
}

// Creates one data set unless its _DONE marker says it is complete.
std::string EnsureData(const std::string& name, int files, int64_t size) {
  const fs::path dir = fs::path(BenchDir()) / name;
  if (fs::exists(dir / "_DONE")) return dir.string();
  fs::remove_all(dir);
  std::mt19937_64 rng(42);
  std::string block(std::min<int64_t>(size, int64_t{1} << 20), '\0');
  for (auto& c : block) c = static_cast<char>(rng());
  for (int i = 0; i < files; ++i) {
    // Small files spread over 20 folders of 1,000 files, as audio clips often are.
    const fs::path sub = files > 1000 ? dir / ("d" + std::to_string(i / 1000)) : dir;
    fs::create_directories(sub);
    char name_buf[32];
    std::snprintf(name_buf, sizeof(name_buf), "f%06d.bin", i);
    block[0] = static_cast<char>(i);  // distinct contents
    WriteOrDie((sub / name_buf).string(), block, size);
  }
  WriteOrDie((dir / "_DONE").string(), "", 0);
  return dir.string();
}

// Reads every partition of a fresh source; returns files and content bytes read.
std::pair<int64_t, int64_t> ReadAll(const BinaryFilesOptions& options,
                                    benchmark::State* state) {
  auto source = OpenBinaryFiles(options);
  if (!source.ok()) {
    state->SkipWithError(source.status().ToString().c_str());
    return {0, 0};
  }
  int64_t files = 0;
  int64_t bytes = 0;
  for (int64_t p = 0; p < (*source)->num_partitions(); ++p) {
    auto reader = (*source)->OpenPartition(p);
    if (!reader.ok()) {
      state->SkipWithError(reader.status().ToString().c_str());
      return {0, 0};
    }
    std::shared_ptr<arrow::RecordBatch> batch;
    while (true) {
      auto st = (*reader)->ReadNext(&batch);
      if (!st.ok()) {
        state->SkipWithError(st.ToString().c_str());
        return {0, 0};
      }
      if (!batch) break;
      files += batch->num_rows();
      if (options.read_content) bytes += batch->column(3)->data()->buffers[2]->size();
      benchmark::DoNotOptimize(batch);
    }
  }
  return {files, bytes};
}

void Run(benchmark::State& state, const BinaryFilesOptions& options) {
  ReadAll(options, &state);  // warm the page cache
  int64_t files = 0;
  int64_t bytes = 0;
  for (auto _ : state) {
    auto [f, b] = ReadAll(options, &state);
    files += f;
    bytes += b;
  }
  state.SetItemsProcessed(files);
  state.SetBytesProcessed(bytes);
}

void BM_SmallFilesRead(benchmark::State& state) {
  BinaryFilesOptions options;
  options.paths = {EnsureData("small", kSmallFiles, kSmallSize)};
  options.recursive = true;
  Run(state, options);
}

void BM_SmallFilesListOnly(benchmark::State& state) {
  BinaryFilesOptions options;
  options.paths = {EnsureData("small", kSmallFiles, kSmallSize)};
  options.recursive = true;
  options.read_content = false;
  Run(state, options);
}

void BM_SmallFilesGlob(benchmark::State& state) {
  BinaryFilesOptions options;
  options.paths = {EnsureData("small", kSmallFiles, kSmallSize) + "/**/*.bin"};
  Run(state, options);
}

void BM_LargeFilesRead(benchmark::State& state) {
  BinaryFilesOptions options;
  options.paths = {EnsureData("large", kLargeFiles, kLargeSize)};
  Run(state, options);
}

// Listing alone (no stat, no batches): ExpandPaths over the 20,000 small files.
void BM_ExpandPaths(benchmark::State& state) {
  const std::string dir = EnsureData("small", kSmallFiles, kSmallSize);
  int64_t files = 0;
  for (auto _ : state) {
    auto paths = io::ExpandPaths({dir + "/**/*.bin"}, false, "");
    if (!paths.ok()) {
      state.SkipWithError(paths.status().ToString().c_str());
      return;
    }
    files += static_cast<int64_t>(paths->size());
  }
  state.SetItemsProcessed(files);
}

BENCHMARK(BM_ExpandPaths)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_SmallFilesRead)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_SmallFilesListOnly)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_SmallFilesGlob)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LargeFilesRead)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace dlprep

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--generate_only") {
      std::printf(
          "%s\n%s\n",
          dlprep::EnsureData("small", dlprep::kSmallFiles, dlprep::kSmallSize).c_str(),
          dlprep::EnsureData("large", dlprep::kLargeFiles, dlprep::kLargeSize).c_str());
      return 0;
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
