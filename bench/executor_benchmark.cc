// Executor overhead and scaling, printed as medians and ratios:
//  1. an identity batch operator over 10M rows vs the bare scan of the same source
//     (goal: <= 5% overhead);
//  2. a CPU-bound operator on 1 vs 2 workers (goal: >= 1.8x).
// The source holds pre-built batches in memory so that only the engine is measured.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>

#include <arrow/api.h>
#include <arrow/io/file.h>
#include <parquet/arrow/writer.h>

#include <filesystem>

#include "dlprep/operator.h"
#include "dlprep/pipeline.h"
#include "dlprep/source.h"
#include "exec/executor.h"

namespace {

using dlprep::PipelineStep;

class MemorySource : public dlprep::Source {
 public:
  MemorySource(int64_t partitions, int64_t batches_per_partition, int64_t rows_per_batch) {
    arrow::Int64Builder ib;
    arrow::DoubleBuilder db;
    for (int64_t i = 0; i < rows_per_batch; ++i) {
      (void)ib.Append(i);
      (void)db.Append(static_cast<double>(i) * 0.001);
    }
    schema_ = arrow::schema({arrow::field("id", arrow::int64()), arrow::field("v", arrow::float64())});
    batch_ = arrow::RecordBatch::Make(schema_, rows_per_batch,
                                      {ib.Finish().ValueOrDie(), db.Finish().ValueOrDie()});
    partitions_ = partitions;
    per_partition_ = batches_per_partition;
  }
  std::shared_ptr<arrow::Schema> schema() const override { return schema_; }
  int64_t num_partitions() const override { return partitions_; }
  std::string partition_name(int64_t i) const override { return "mem" + std::to_string(i); }
  arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> OpenPartition(
      int64_t) const override {
    std::vector<std::shared_ptr<arrow::RecordBatch>> batches(per_partition_, batch_);
    return arrow::RecordBatchReader::Make(std::move(batches), schema_);
  }

 private:
  std::shared_ptr<arrow::Schema> schema_;
  std::shared_ptr<arrow::RecordBatch> batch_;
  int64_t partitions_, per_partition_;
};

class Identity : public dlprep::BatchOperator {
 public:
  std::string name() const override { return "identity"; }
  arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(
      const arrow::Schema& input) const override {
    return std::make_shared<arrow::Schema>(input);
  }
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Process(
      const std::shared_ptr<arrow::RecordBatch>& batch) const override {
    return batch;
  }
};

// About 60 transcendental calls per value: a stand-in for a featurizer.
class CpuBound : public dlprep::ScalarOperator {
 public:
  std::string name() const override { return "cpu_bound"; }
  arrow::Result<std::shared_ptr<arrow::Field>> OutputField(const arrow::Schema&) const override {
    return arrow::field("y", arrow::float64());
  }
  arrow::Result<std::shared_ptr<arrow::Array>> Compute(const arrow::RecordBatch& batch) const override {
    auto v = std::static_pointer_cast<arrow::DoubleArray>(batch.column(1));
    arrow::DoubleBuilder out;
    ARROW_RETURN_NOT_OK(out.Reserve(v->length()));
    for (int64_t i = 0; i < v->length(); ++i) {
      double x = v->Value(i), acc = 0;
      for (int k = 0; k < 60; ++k) acc += std::sin(x + k);
      out.UnsafeAppend(acc);
    }
    return out.Finish();
  }
};

class CountingSink : public dlprep::exec::BatchSink {
 public:
  arrow::Status Write(int64_t, const std::shared_ptr<arrow::RecordBatch>& b) override {
    rows += b->num_rows();
    return arrow::Status::OK();
  }
  arrow::Status FinishPartition(int64_t) override { return arrow::Status::OK(); }
  int64_t rows = 0;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <typename F>
double TimeMedian(int repeats, F&& f) {
  std::vector<double> t;
  for (int r = 0; r < repeats; ++r) {
    auto start = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return Median(t);
}

int64_t BareScan(const dlprep::Source& source) {
  int64_t rows = 0;
  for (int64_t p = 0; p < source.num_partitions(); ++p) {
    auto reader = source.OpenPartition(p).ValueOrDie();
    std::shared_ptr<arrow::RecordBatch> b;
    while (reader->ReadNext(&b).ok() && b) rows += b->num_rows();
  }
  return rows;
}

int64_t RunChain(std::shared_ptr<dlprep::Source> source, std::vector<PipelineStep> steps,
                 int workers) {
  dlprep::RunOptions opts;
  opts.workers = workers;
  auto ex = dlprep::exec::Executor::Make(source, std::move(steps), opts).ValueOrDie();
  CountingSink sink;
  auto st = ex->Run(&sink);
  if (!st.ok()) {
    std::fprintf(stderr, "%s\n", st.status().ToString().c_str());
    std::exit(1);
  }
  return sink.rows;
}


// Writes 10 Parquet files of 1M rows (id int64, v double) and opens them as a source.
std::shared_ptr<dlprep::Source> ParquetSource(const std::string& dir) {
  std::filesystem::create_directories(dir);
  MemorySource mem(1, 1, 1 << 20);
  auto batch = mem.OpenPartition(0).ValueOrDie()->Next().ValueOrDie();
  auto table = arrow::Table::FromRecordBatches({batch}).ValueOrDie();
  for (int f = 0; f < 10; ++f) {
    auto out = arrow::io::FileOutputStream::Open(dir + "/part" + std::to_string(f) + ".parquet")
                   .ValueOrDie();
    if (!parquet::arrow::WriteTable(*table, arrow::default_memory_pool(), out, 1 << 17).ok()) {
      std::exit(1);
    }
    (void)out->Close();
  }
  dlprep::TableSourceOptions o;
  o.paths = {dir};
  return dlprep::OpenTableSource(o).ValueOrDie();
}

}  // namespace

int main() {
  std::string dir = std::filesystem::temp_directory_path() / "dlprep-executor-bench";
  std::filesystem::remove_all(dir);
  auto source = ParquetSource(dir);
  PipelineStep identity;
  identity.kind = PipelineStep::Kind::kBatch;
  identity.batch = std::make_shared<Identity>();
  int64_t rows = 0;
  std::vector<double> bare_t, chain_t;
  for (int r = 0; r < 7; ++r) {  // interleaved so drift hits both alike
    bare_t.push_back(TimeMedian(1, [&] { rows = BareScan(*source); }));
    chain_t.push_back(TimeMedian(1, [&] { RunChain(source, {identity}, 1); }));
  }
  double bare = Median(bare_t), chain = Median(chain_t);
  std::printf("identity operator over %lld Parquet rows: bare scan %.3f s, executor "
              "(1 worker) %.3f s -> overhead %.1f%% (goal <= 5%%)\n",
              static_cast<long long>(rows), bare, chain, 100.0 * (chain - bare) / bare);
  auto big = std::make_shared<MemorySource>(40, 4, 65536);
  double mem_bare = TimeMedian(7, [&] { BareScan(*big); });
  double mem_chain = TimeMedian(7, [&] { RunChain(big, {identity}, 1); });
  std::printf("per-batch engine cost (in-memory source, 160 batches): %.1f us\n",
              1e6 * (mem_chain - mem_bare) / 160);

  auto small = std::make_shared<MemorySource>(16, 2, 16384);
  PipelineStep cpu;
  cpu.kind = PipelineStep::Kind::kScalar;
  cpu.scalar = std::make_shared<CpuBound>();
  double one = TimeMedian(3, [&] { RunChain(small, {cpu}, 1); });
  double two = TimeMedian(3, [&] { RunChain(small, {cpu}, 2); });
  std::printf("CPU-bound operator: 1 worker %.3f s, 2 workers %.3f s -> speed-up %.2fx "
              "(goal >= 1.8x; needs 2 idle cores)\n", one, two, one / two);
  std::filesystem::remove_all(dir);
  return 0;
}
