// Example encoding throughput: 1M rows of (int64, float32, string, list<float32>[256]).
// Reports rows/s for ExampleEncoder::EncodeFramed alone and for writing a whole
// uncompressed TFRecord file through MakeTfRecordFileWriter.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include <arrow/api.h>
#include <benchmark/benchmark.h>

#include "io/file_writer.h"
#include "io/tfrecord.h"

namespace {

constexpr int64_t kRows = 1 << 20;
constexpr int kListSize = 256;
constexpr int64_t kBatchRows = 64 * 1024;

std::vector<std::shared_ptr<arrow::RecordBatch>> MakeBatches() {
  auto schema = arrow::schema({arrow::field("id", arrow::int64()),
                               arrow::field("score", arrow::float32()),
                               arrow::field("name", arrow::utf8()),
                               arrow::field("embedding", arrow::list(arrow::float32()))});
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  for (int64_t start = 0; start < kRows; start += kBatchRows) {
    arrow::Int64Builder ids;
    arrow::FloatBuilder scores;
    arrow::StringBuilder names;
    arrow::ListBuilder emb(arrow::default_memory_pool(), std::make_shared<arrow::FloatBuilder>());
    auto* fb = static_cast<arrow::FloatBuilder*>(emb.value_builder());
    for (int64_t i = start; i < start + kBatchRows; ++i) {
      (void)ids.Append(i * 7919);
      (void)scores.Append(static_cast<float>(i) * 0.5f);
      (void)names.Append("user_" + std::to_string(i));
      (void)emb.Append();
      for (int k = 0; k < kListSize; ++k) (void)fb->Append(static_cast<float>(k + i));
    }
    batches.push_back(arrow::RecordBatch::Make(
        schema, kBatchRows,
        {ids.Finish().ValueOrDie(), scores.Finish().ValueOrDie(), names.Finish().ValueOrDie(),
         emb.Finish().ValueOrDie()}));
  }
  return batches;
}

const std::vector<std::shared_ptr<arrow::RecordBatch>>& Batches() {
  static const auto batches = MakeBatches();
  return batches;
}

void BM_EncodeFramed(benchmark::State& state) {
  const auto& batches = Batches();
  auto enc = dlprep::io::ExampleEncoder::Make(batches[0]->schema(), dlprep::RecordType::kExample)
                 .ValueOrDie();
  std::string out;
  int64_t bytes = 0;
  for (auto _ : state) {
    for (const auto& b : batches) {
      for (int64_t off = 0; off < b->num_rows(); off += 4096) {
        out.clear();
        if (!enc->EncodeFramed(*b, off, std::min<int64_t>(4096, b->num_rows() - off), &out).ok()) {
          state.SkipWithError("encode failed");
          return;
        }
        bytes += static_cast<int64_t>(out.size());
      }
    }
  }
  state.counters["rows_per_s"] =
      benchmark::Counter(static_cast<double>(kRows), benchmark::Counter::kIsIterationInvariantRate);
  state.SetBytesProcessed(bytes);
}

void BM_WriteFileUncompressed(benchmark::State& state) {
  const auto& batches = Batches();
  std::string path = (std::filesystem::temp_directory_path() / "dlprep_bench.tfrecord").string();
  dlprep::WriteOptions opts;
  for (auto _ : state) {
    auto w = dlprep::io::MakeTfRecordFileWriter(path, batches[0]->schema(), opts).ValueOrDie();
    for (const auto& b : batches) {
      if (!w->Write(*b).ok()) state.SkipWithError("write failed");
    }
    if (!w->Close().ok()) state.SkipWithError("close failed");
    state.SetBytesProcessed(state.bytes_processed() + w->bytes_written());
  }
  state.counters["rows_per_s"] =
      benchmark::Counter(static_cast<double>(kRows), benchmark::Counter::kIsIterationInvariantRate);
  std::remove(path.c_str());
}

BENCHMARK(BM_EncodeFramed)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_WriteFileUncompressed)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
