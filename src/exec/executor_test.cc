#include "exec/executor.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <random>
#include <thread>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "exec/exec_test_util.h"

namespace dlprep::exec {
namespace {

using testing::CountingFactory;
using testing::CountingStateful;
using testing::DropMultiples;
using testing::Duplicate;
using testing::FailAt;
using ::testing::HasSubstr;
using testing::Int64Column;
using testing::StatefulLog;
using testing::TimesScalar;
using testing::VectorSource;
using testing::WrongLengthScalar;

PipelineStep Scalar(std::shared_ptr<ScalarOperator> op) {
  PipelineStep s;
  s.kind = PipelineStep::Kind::kScalar;
  s.scalar = std::move(op);
  return s;
}
PipelineStep Batch(std::shared_ptr<BatchOperator> op) {
  PipelineStep s;
  s.kind = PipelineStep::Kind::kBatch;
  s.batch = std::move(op);
  return s;
}
PipelineStep Stateful(StatefulOperatorFactory f) {
  PipelineStep s;
  s.kind = PipelineStep::Kind::kStateful;
  s.stateful = std::move(f);
  return s;
}

struct Collected {
  std::shared_ptr<arrow::Table> table;
  RunStats stats;
};

arrow::Result<Collected> RunCollect(std::shared_ptr<Source> source,
                                    std::vector<PipelineStep> steps, RunOptions options) {
  ARROW_ASSIGN_OR_RAISE(auto ex,
                        Executor::Make(std::move(source), std::move(steps), options));
  CollectSink sink;
  Collected out;
  ARROW_ASSIGN_OR_RAISE(out.stats, ex->Run(&sink));
  ARROW_ASSIGN_OR_RAISE(out.table, sink.ToTable(ex->output_schema()));
  return out;
}

// 50 partitions with 0..5 batches of 1..300 rows each (some partitions empty).
std::vector<std::vector<int64_t>> UnevenSizes(int partitions, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::vector<int64_t>> sizes(partitions);
  for (auto& p : sizes) {
    int batches = static_cast<int>(rng() % 6);
    for (int b = 0; b < batches; ++b) p.push_back(1 + rng() % 300);
  }
  return sizes;
}

TEST(ExecutorTest, ScalarAppendsColumnOfSameLength) {
  auto source = VectorSource::FromSizes({{3, 4}, {5}});
  ASSERT_OK_AND_ASSIGN(
      auto out, RunCollect(source, {Scalar(std::make_shared<TimesScalar>("x2", 2))},
                           RunOptions{.workers = 2}));
  ASSERT_EQ(out.table->num_columns(), 3);
  EXPECT_EQ(out.table->schema()->field(2)->name(), "x2");
  ASSERT_EQ(out.table->num_rows(), 12);
  ASSERT_OK_AND_ASSIGN(auto batch, out.table->CombineChunksToBatch());
  auto x = Int64Column(*batch, "x");
  auto x2 = Int64Column(*batch, "x2");
  for (int64_t i = 0; i < 12; ++i) {
    EXPECT_EQ(x->Value(i), i);
    EXPECT_EQ(x2->Value(i), 2 * i);
  }
  EXPECT_EQ(out.stats.stages.size(), 3u);
  EXPECT_EQ(out.stats.stages[1].rows_in, 12);
  EXPECT_EQ(out.stats.stages[1].rows_out, 12);
  EXPECT_EQ(out.stats.stages[1].batches_in, 3);
  EXPECT_EQ(out.stats.rows_written, 12);
}

TEST(ExecutorTest, ScalarOfWrongLengthFailsNamingOperator) {
  auto source = VectorSource::FromSizes({{10}, {10}});
  auto r = RunCollect(source, {Scalar(std::make_shared<WrongLengthScalar>())},
                      RunOptions{.workers = 1});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsInvalid());
  EXPECT_THAT(r.status().message(), HasSubstr("operator 'bad_len'"));
  EXPECT_THAT(r.status().message(),
              HasSubstr("returned 11 values for a batch of 10 rows"));
  EXPECT_THAT(r.status().message(), HasSubstr("part-0"));
}

TEST(ExecutorTest, ChainThatDoesNotFitFailsBeforeRunning) {
  auto source = VectorSource::FromSizes({{10}});
  PipelineStep step = Scalar(std::make_shared<TimesScalar>("x2", 2));
  // Drop every column x: a batch operator declaring an empty schema.
  class DropAll : public BatchOperator {
   public:
    std::string name() const override { return "drop_all"; }
    arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(
        const arrow::Schema&) const override {
      return arrow::schema({});
    }
    arrow::Result<std::shared_ptr<arrow::RecordBatch>> Process(
        const std::shared_ptr<arrow::RecordBatch>& b) const override {
      return b;  // wrong on purpose: declared schema differs
    }
  };
  auto r = Executor::Make(source, {Batch(std::make_shared<DropAll>()), step}, {});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsTypeError());
  EXPECT_THAT(r.status().message(), HasSubstr("step 2 (operator 'x2')"));
  EXPECT_THAT(r.status().message(), HasSubstr("needs an int64 column 'x'"));

  // A batch whose schema differs from the declared one is a TypeError at run time.
  auto r2 = RunCollect(source, {Batch(std::make_shared<DropAll>())}, {});
  ASSERT_FALSE(r2.ok());
  EXPECT_TRUE(r2.status().IsTypeError());
  EXPECT_THAT(r2.status().message(), HasSubstr("operator 'drop_all'"));
  EXPECT_THAT(r2.status().message(), HasSubstr("OutputSchema declared"));
}

TEST(ExecutorTest, BatchOperatorMayChangeLength) {
  auto source = VectorSource::FromSizes({{4, 3}, {2}, {}});
  ASSERT_OK_AND_ASSIGN(auto dup,
                       RunCollect(source, {Batch(std::make_shared<Duplicate>())},
                                  RunOptions{.workers = 3}));
  ASSERT_EQ(dup.table->num_rows(), 18);
  ASSERT_OK_AND_ASSIGN(auto b, dup.table->CombineChunksToBatch());
  auto x = Int64Column(*b, "x");
  for (int64_t i = 0; i < 18; ++i) EXPECT_EQ(x->Value(i), i / 2);

  // Rows 0..8: dropping multiples of 2 keeps 1,3,5,7; the batch {8} becomes empty.
  auto source2 = VectorSource::FromSizes({{4, 3}, {1}, {1}});
  ASSERT_OK_AND_ASSIGN(auto odd,
                       RunCollect(source2, {Batch(std::make_shared<DropMultiples>(2))},
                                  RunOptions{.workers = 2}));
  ASSERT_EQ(odd.table->num_rows(), 4);
  ASSERT_OK_AND_ASSIGN(auto b2, odd.table->CombineChunksToBatch());
  auto x2 = Int64Column(*b2, "x");
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(x2->Value(i), 2 * i + 1);
  EXPECT_EQ(odd.stats.stages[1].rows_in, 9);
  EXPECT_EQ(odd.stats.stages[1].rows_out, 4);
  EXPECT_EQ(odd.stats.stages[1].batches_in, 4);
}

TEST(ExecutorTest, StatefulOpenedOncePerWorkerAndStateCarriesAcrossPartitions) {
  auto source = VectorSource::FromSizes({{5, 5}, {5}, {}, {5, 5}});
  auto log = std::make_shared<StatefulLog>();
  ASSERT_OK_AND_ASSIGN(auto out, RunCollect(source, {Stateful(CountingFactory(log))},
                                            RunOptions{.workers = 1}));
  EXPECT_EQ(log->opens, 1);
  EXPECT_EQ(log->closes, 1);
  EXPECT_EQ(out.stats.stages[1].opens, 1);
  // One instance saw every batch of every partition, in order: `seen` counts up.
  ASSERT_EQ(out.table->num_rows(), 25);
  ASSERT_OK_AND_ASSIGN(auto b, out.table->CombineChunksToBatch());
  auto seen = Int64Column(*b, "seen");
  auto y = Int64Column(*b, "y");
  for (int64_t i = 0; i < 25; ++i) {
    EXPECT_EQ(seen->Value(i), i);
    EXPECT_EQ(y->Value(i), 3 * i);
  }
}

TEST(ExecutorTest, StatefulOpenCountIsWorkersNotBatches) {
  auto source = VectorSource::FromSizes(UnevenSizes(50, 7));
  for (int workers : {1, 2, 4}) {
    auto log = std::make_shared<StatefulLog>();
    ASSERT_OK_AND_ASSIGN(auto out,
                         RunCollect(source, {Stateful(CountingFactory(log, 300))},
                                    RunOptions{.workers = workers}));
    EXPECT_GT(out.stats.stages[1].batches_in, 50);
    EXPECT_EQ(log->opens, static_cast<int>(log->process_workers.size()));
    EXPECT_EQ(log->open_workers, log->process_workers);
    EXPECT_LE(log->opens, workers);
    EXPECT_GE(log->opens, 1);
    EXPECT_EQ(log->closes, log->opens);
    EXPECT_EQ(log->num_workers_seen, workers);
    EXPECT_EQ(out.stats.stages[1].opens, log->opens);
  }
}

// Holds rows back until it has at least `k`, then emits everything it holds in one
// batch (what `score` does to batch small input batches); Flush() emits the rest.
class HoldUntil : public StatefulOperator {
 public:
  explicit HoldUntil(int64_t k) : k_(k) {}
  std::string name() const override { return "hold" + std::to_string(k_); }
  arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(
      const arrow::Schema& input) const override {
    return std::make_shared<arrow::Schema>(input.fields());
  }
  arrow::Status Open(const OperatorContext&) override { return arrow::Status::OK(); }
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Process(
      const std::shared_ptr<arrow::RecordBatch>& batch, RowErrors*) override {
    held_.push_back(batch);
    rows_ += batch->num_rows();
    if (rows_ < k_) return batch->Slice(0, 0);
    return Release();
  }
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Flush() override {
    if (rows_ == 0) return nullptr;
    return Release();
  }
  arrow::Status Close() override { return arrow::Status::OK(); }

 private:
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Release() {
    ARROW_ASSIGN_OR_RAISE(auto out, arrow::ConcatenateRecordBatches(held_));
    held_.clear();
    rows_ = 0;
    return out;
  }
  int64_t k_;
  int64_t rows_ = 0;
  std::vector<std::shared_ptr<arrow::RecordBatch>> held_;
};

TEST(ExecutorTest, HeldRowsAreFlushedAtPartitionEndInOrder) {
  auto source = VectorSource::FromSizes(UnevenSizes(20, 5));
  int64_t input_rows = 0;
  for (int64_t p = 0; p < source->num_partitions(); ++p) {
    ASSERT_OK_AND_ASSIGN(auto reader, source->OpenPartition(p));
    ASSERT_OK_AND_ASSIGN(auto t, reader->ToTable());
    input_rows += t->num_rows();
  }
  for (int workers : {1, 2, 4}) {
    ASSERT_OK_AND_ASSIGN(
        auto out,
        RunCollect(source,
                   {Stateful([] { return std::make_unique<HoldUntil>(700); }),
                    Scalar(std::make_shared<TimesScalar>("x2", 2, 0)),
                    Stateful([] { return std::make_unique<HoldUntil>(1500); })},
                   RunOptions{.workers = workers}));
    ASSERT_EQ(out.table->num_rows(), input_rows) << "workers=" << workers;
    ASSERT_OK_AND_ASSIGN(auto b, out.table->CombineChunksToBatch());
    auto x = Int64Column(*b, "x");
    auto x2 = Int64Column(*b, "x2");
    for (int64_t i = 0; i < input_rows; ++i) {
      ASSERT_EQ(x->Value(i), i) << "workers=" << workers;
      ASSERT_EQ(x2->Value(i), 2 * i);
    }
    EXPECT_EQ(out.stats.stages[1].rows_out, input_rows);
    EXPECT_EQ(out.stats.stages[3].rows_in, input_rows);
  }
}

// Asks the executor for batches of >= k rows (min_batch_rows); logs the size of every
// batch it gets and fails the rows with x % 37 == 5 ("bad row x=..."), leaving them out.
class Gathering : public StatefulOperator {
 public:
  Gathering(int64_t k, std::shared_ptr<std::vector<int64_t>> sizes,
            std::shared_ptr<std::mutex> mu)
      : k_(k), sizes_(std::move(sizes)), mu_(std::move(mu)) {}
  std::string name() const override { return "gather" + std::to_string(k_); }
  int64_t min_batch_rows() const override { return k_; }
  arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(
      const arrow::Schema& input) const override {
    return std::make_shared<arrow::Schema>(input.fields());
  }
  arrow::Status Open(const OperatorContext&) override { return arrow::Status::OK(); }
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Process(
      const std::shared_ptr<arrow::RecordBatch>& batch, RowErrors* errors) override {
    {
      std::lock_guard<std::mutex> lock(*mu_);
      sizes_->push_back(batch->num_rows());
    }
    auto x = Int64Column(*batch, "x");
    arrow::BooleanBuilder keep;
    for (int64_t i = 0; i < batch->num_rows(); ++i) {
      const bool bad = x->Value(i) % 37 == 5;
      if (bad) errors->Add(i, "bad row x=" + std::to_string(x->Value(i)));
      ARROW_RETURN_NOT_OK(keep.Append(!bad));
    }
    ARROW_ASSIGN_OR_RAISE(auto mask, keep.Finish());
    ARROW_ASSIGN_OR_RAISE(auto kept, arrow::compute::Filter(batch, mask));
    return kept.record_batch();
  }
  arrow::Status Close() override { return arrow::Status::OK(); }

 private:
  int64_t k_;
  std::shared_ptr<std::vector<int64_t>> sizes_;
  std::shared_ptr<std::mutex> mu_;
};

class GatherErrorSink : public ErrorSink {
 public:
  arrow::Status Write(const FailedRows& failed) override {
    auto x = Int64Column(*failed.input, "x");
    for (size_t i = 0; i < failed.errors.rows.size(); ++i) {
      xs.push_back(x->Value(failed.errors.rows[i]));
      EXPECT_EQ(failed.errors.messages[i], "bad row x=" + std::to_string(xs.back()));
    }
    return arrow::Status::OK();
  }
  std::vector<int64_t> xs;
};

TEST(ExecutorTest, MinBatchRowsGathersSmallBatchesWithinAPartition) {
  // 12 partitions of 0..5 batches of 1..300 rows; x = 0, 1, ... in order.
  auto sizes_in = UnevenSizes(12, 9);
  auto source = VectorSource::FromSizes(sizes_in);
  std::vector<int64_t> want;
  int64_t x = 0;
  for (const auto& part : sizes_in) {
    for (int64_t n : part) {
      for (int64_t k = 0; k < n; ++k, ++x) {
        if (x % 7 != 0 && x % 37 != 5) want.push_back(x);
      }
    }
  }
  for (int workers : {1, 2, 4}) {
    auto sizes = std::make_shared<std::vector<int64_t>>();
    auto mu = std::make_shared<std::mutex>();
    GatherErrorSink errors;
    ASSERT_OK_AND_ASSIGN(
        auto out,
        RunCollect(source,
                   {Batch(std::make_shared<DropMultiples>(7)),
                    Stateful([=] { return std::make_unique<Gathering>(400, sizes, mu); }),
                    Scalar(std::make_shared<TimesScalar>("x2", 2, 0)),
                    Stateful([] { return std::make_unique<HoldUntil>(900); })},
                   RunOptions{.workers = workers, .error_sink = &errors}));
    ASSERT_OK_AND_ASSIGN(auto b, out.table->CombineChunksToBatch());
    auto got = Int64Column(*b, "x");
    auto got2 = Int64Column(*b, "x2");
    ASSERT_EQ(b->num_rows(), static_cast<int64_t>(want.size())) << "workers=" << workers;
    for (int64_t i = 0; i < b->num_rows(); ++i) {
      ASSERT_EQ(got->Value(i), want[i]) << "workers=" << workers << " row " << i;
      ASSERT_EQ(got2->Value(i), 2 * want[i]);
    }
    // Every row that failed reached the error sink with its own values.
    std::sort(errors.xs.begin(), errors.xs.end());
    std::vector<int64_t> failed;
    for (int64_t v = 0; v < x; ++v) {
      if (v % 7 != 0 && v % 37 == 5) failed.push_back(v);
    }
    EXPECT_EQ(errors.xs, failed);
    EXPECT_EQ(out.stats.row_errors, static_cast<int64_t>(failed.size()));
    // Process() got >= 400 rows but for the rest of a partition: at most one short
    // call per non-empty partition, and fewer calls than input batches.
    int64_t short_calls = 0, calls = static_cast<int64_t>(sizes->size()), batches = 0;
    for (int64_t n : *sizes) short_calls += n < 400;
    for (const auto& part : sizes_in) batches += static_cast<int64_t>(part.size());
    EXPECT_LE(short_calls, 12);
    EXPECT_LT(calls, batches);
    EXPECT_EQ(out.stats.stages[2].batches_in, calls);
  }
}

TEST(ExecutorTest, OutputIsIdenticalForAnyWorkerCount) {
  auto source = VectorSource::FromSizes(UnevenSizes(50, 42));
  int64_t input_rows = 0;
  for (int64_t p = 0; p < source->num_partitions(); ++p) {
    ASSERT_OK_AND_ASSIGN(auto reader, source->OpenPartition(p));
    ASSERT_OK_AND_ASSIGN(auto t, reader->ToTable());
    input_rows += t->num_rows();
  }
  std::shared_ptr<arrow::Table> reference;
  for (int workers : {1, 2, 4}) {
    auto log = std::make_shared<StatefulLog>();
    ASSERT_OK_AND_ASSIGN(
        auto out, RunCollect(source,
                             {Batch(std::make_shared<DropMultiples>(3, 500)),
                              Stateful(CountingFactory(log, 500)),
                              Scalar(std::make_shared<TimesScalar>("x2", 2, 500))},
                             RunOptions{.workers = workers, .max_buffered_batches = 6}));
    // `seen` depends on which worker got which batch; everything else must not.
    int seen = out.table->schema()->GetFieldIndex("seen");
    ASSERT_OK_AND_ASSIGN(auto table, out.table->RemoveColumn(seen));
    ASSERT_OK_AND_ASSIGN(table, table->CombineChunks());
    EXPECT_EQ(out.stats.rows_read, input_rows);
    if (reference == nullptr) {
      reference = table;
      // Values, not only equality between runs: x ascending without multiples of 3.
      ASSERT_OK_AND_ASSIGN(auto b, table->CombineChunksToBatch());
      auto x = Int64Column(*b, "x");
      int64_t expected = 0, k = 0;
      for (; expected < input_rows; ++expected) {
        if (expected % 3 == 0) continue;
        ASSERT_EQ(x->Value(k), expected);
        EXPECT_EQ(Int64Column(*b, "y")->Value(k), 3 * expected);
        EXPECT_EQ(Int64Column(*b, "x2")->Value(k), 2 * expected);
        ++k;
      }
      EXPECT_EQ(k, table->num_rows());
    } else {
      EXPECT_TRUE(table->Equals(*reference)) << "workers=" << workers;
    }
  }
}

TEST(ExecutorTest, UnorderedWritesEveryRowOnce) {
  auto source = VectorSource::FromSizes(UnevenSizes(30, 3));
  ASSERT_OK_AND_ASSIGN(
      auto out, RunCollect(source, {Scalar(std::make_shared<TimesScalar>("x2", 2, 300))},
                           RunOptions{.workers = 4, .unordered = true}));
  ASSERT_OK_AND_ASSIGN(auto b, out.table->CombineChunksToBatch());
  auto x = Int64Column(*b, "x");
  std::vector<int64_t> xs(x->raw_values(), x->raw_values() + x->length());
  std::sort(xs.begin(), xs.end());
  for (size_t i = 0; i < xs.size(); ++i) ASSERT_EQ(xs[i], static_cast<int64_t>(i));
  EXPECT_EQ(static_cast<int64_t>(xs.size()), out.stats.rows_read);
}

TEST(ExecutorTest, ErrorNamesOperatorPartitionAndRowRange) {
  // Partitions of 3 x 4096 rows; fail on partition 3's second batch.
  std::vector<std::vector<int64_t>> sizes(8, {4096, 4096, 4096});
  auto source = VectorSource::FromSizes(sizes);
  auto log = std::make_shared<StatefulLog>();
  auto fail = std::make_shared<FailAt>(3 * 12288 + 4096);
  auto r = RunCollect(source, {Stateful(CountingFactory(log)), Batch(fail)},
                      RunOptions{.workers = 4});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsInvalid());
  EXPECT_THAT(r.status().message(),
              HasSubstr("operator 'fail_at' failed on partition 3 'part-3', "
                        "rows 4096-8191: boom"));
  // Opened instances are closed also when the run fails.
  EXPECT_EQ(log->closes, log->opens);
}

TEST(ExecutorTest, CancelStopsPromptly) {
  std::vector<std::vector<int64_t>> sizes(100, {10, 10, 10, 10});
  auto source = VectorSource::FromSizes(sizes);
  auto slow = std::make_shared<FailAt>(-1, /*sleep_us=*/5000);
  std::atomic<bool> cancel{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    cancel.store(true);
  });
  auto r = RunCollect(source, {Batch(slow)}, RunOptions{.workers = 2, .cancel = &cancel});
  canceller.join();
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsCancelled()) << r.status().ToString();
  // 400 batches of 5 ms on 2 workers take 1 s; cancelled after 50 ms, each worker
  // finishes at most the batch it is on.
  EXPECT_LT(slow->seen(), 100);

  // Cancelled before starting: nothing is processed.
  auto slow2 = std::make_shared<FailAt>(-1);
  auto r2 =
      RunCollect(source, {Batch(slow2)}, RunOptions{.workers = 2, .cancel = &cancel});
  EXPECT_TRUE(r2.status().IsCancelled());
  EXPECT_EQ(slow2->seen(), 0);
}

// A sink that writes slowly and checks how far the workers ran ahead of it.
class SlowSink : public BatchSink {
 public:
  SlowSink(const std::atomic<int64_t>* produced, int sleep_us)
      : produced_(produced), sleep_us_(sleep_us) {}
  arrow::Status Write(int64_t, const std::shared_ptr<arrow::RecordBatch>&) override {
    std::this_thread::sleep_for(std::chrono::microseconds(sleep_us_));
    ++written_;
    max_ahead_ = std::max(max_ahead_, produced_->load() - written_);
    return arrow::Status::OK();
  }
  arrow::Status FinishPartition(int64_t) override { return arrow::Status::OK(); }
  int64_t written_ = 0;
  int64_t max_ahead_ = 0;

 private:
  const std::atomic<int64_t>* produced_;
  int sleep_us_;
};

// Scalar counting the batches it finished (before they are handed to the buffer).
class CountingScalar : public TimesScalar {
 public:
  explicit CountingScalar(std::atomic<int64_t>* produced)
      : TimesScalar("x2", 2), produced_(produced) {}
  arrow::Result<std::shared_ptr<arrow::Array>> Compute(
      const arrow::RecordBatch& batch) const override {
    auto r = TimesScalar::Compute(batch);
    produced_->fetch_add(1);
    return r;
  }

 private:
  std::atomic<int64_t>* produced_;
};

TEST(ExecutorTest, SlowSinkBoundsTheBuffer) {
  std::vector<std::vector<int64_t>> sizes(20, std::vector<int64_t>(10, 50));
  auto source = VectorSource::FromSizes(sizes);  // 200 batches
  for (bool unordered : {false, true}) {
    std::atomic<int64_t> produced{0};
    const int workers = 4;
    const int64_t bound = 3;
    ASSERT_OK_AND_ASSIGN(
        auto ex,
        Executor::Make(source, {Scalar(std::make_shared<CountingScalar>(&produced))},
                       RunOptions{.workers = workers,
                                  .unordered = unordered,
                                  .max_buffered_batches = bound}));
    SlowSink sink(&produced, 1000);
    ASSERT_OK_AND_ASSIGN(auto stats, ex->Run(&sink));
    EXPECT_EQ(sink.written_, 200);
    EXPECT_EQ(stats.max_buffered_batches, bound);
    EXPECT_LE(stats.peak_buffered_batches, bound);
    EXPECT_GE(stats.peak_buffered_batches, 1);
    // Ahead of the sink: the buffer, one batch in each worker's hands, the one written.
    EXPECT_LE(sink.max_ahead_, bound + workers + 1) << "unordered=" << unordered;
  }
}

TEST(ExecutorTest, ByteBoundAdmitsOneBatchOver) {
  std::vector<std::vector<int64_t>> sizes(10, std::vector<int64_t>(5, 100));
  auto source = VectorSource::FromSizes(sizes);
  for (bool unordered : {false, true}) {
    std::atomic<int64_t> produced{0};
    ASSERT_OK_AND_ASSIGN(
        auto ex,
        Executor::Make(source, {Scalar(std::make_shared<CountingScalar>(&produced))},
                       RunOptions{.workers = 4,
                                  .unordered = unordered,
                                  .max_buffered_batches = 100,
                                  .max_buffered_bytes = 1}));
    SlowSink sink(&produced, 200);
    ASSERT_OK_AND_ASSIGN(auto stats, ex->Run(&sink));
    EXPECT_EQ(sink.written_, 50);
    // Every batch exceeds 1 byte, so at most one is buffered at a time.
    EXPECT_EQ(stats.peak_buffered_batches, 1) << "unordered=" << unordered;
    EXPECT_GT(stats.peak_buffered_bytes, 1);
  }
}

class CollectingErrorSink : public ErrorSink {
 public:
  arrow::Status Write(const FailedRows& failed) override {
    auto x = Int64Column(*failed.input, "x");
    for (size_t i = 0; i < failed.errors.rows.size(); ++i) {
      xs.push_back(x->Value(failed.errors.rows[i]));
      EXPECT_EQ(failed.errors.messages[i], "bad row x=" + std::to_string(xs.back()));
    }
    EXPECT_EQ(failed.operator_name, "counting");
    EXPECT_EQ(failed.partition_name, "part-" + std::to_string(failed.partition));
    return arrow::Status::OK();
  }
  std::vector<int64_t> xs;
};

TEST(ExecutorTest, PerRowErrorsAreCountedAndSentToErrorSink) {
  auto source = VectorSource::FromSizes({{10, 10}, {10}, {5}});  // x = 0..34
  auto log = std::make_shared<StatefulLog>();
  CollectingErrorSink errors;
  ASSERT_OK_AND_ASSIGN(auto out,
                       RunCollect(source, {Stateful(CountingFactory(log, 0, 10))},
                                  RunOptions{.workers = 2, .error_sink = &errors}));
  // Rows 3, 13, 23, 33 fail and are dropped.
  EXPECT_EQ(out.table->num_rows(), 31);
  EXPECT_EQ(out.stats.row_errors, 4);
  EXPECT_EQ(out.stats.stages[1].row_errors, 4);
  ASSERT_EQ(out.stats.row_error_samples.size(), 4u);
  EXPECT_THAT(out.stats.row_error_samples[0], HasSubstr("operator 'counting'"));
  std::sort(errors.xs.begin(), errors.xs.end());
  EXPECT_EQ(errors.xs, (std::vector<int64_t>{3, 13, 23, 33}));

  // With fail_on_row_error the first failed row fails the job.
  auto log2 = std::make_shared<StatefulLog>();
  auto r = RunCollect(source, {Stateful(CountingFactory(log2, 0, 10))},
                      RunOptions{.workers = 1, .fail_on_row_error = true});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              HasSubstr("operator 'counting' failed on partition 0 'part-0', rows 0-9: "
                        "row 3 of the batch failed: bad row x=3"));
}

// Fails every row it gets with `message`, where "{x}" stands for the row's x.
class FailEveryRow : public StatefulOperator {
 public:
  explicit FailEveryRow(std::string message) : message_(std::move(message)) {}
  std::string name() const override { return "fail_every_row"; }
  arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(
      const arrow::Schema& input) const override {
    return std::make_shared<arrow::Schema>(input.fields());
  }
  arrow::Status Open(const OperatorContext&) override { return arrow::Status::OK(); }
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Process(
      const std::shared_ptr<arrow::RecordBatch>& batch, RowErrors* errors) override {
    auto x = Int64Column(*batch, "x");
    for (int64_t i = 0; i < batch->num_rows(); ++i) {
      std::string m = message_;
      const size_t at = m.find("{x}");
      if (at != std::string::npos) m.replace(at, 3, std::to_string(x->Value(i)));
      errors->Add(i, std::move(m));
    }
    return batch->Slice(0, 0);
  }
  arrow::Status Close() override { return arrow::Status::OK(); }

 private:
  std::string message_;
};

PipelineStep FailEveryRowStep(const std::string& message) {
  return Stateful([message]() -> arrow::Result<std::unique_ptr<StatefulOperator>> {
    return std::make_unique<FailEveryRow>(message);
  });
}

TEST(ExecutorTest, RowErrorSamplesFoldRowsWithTheSameMessage) {
  auto source = VectorSource::FromSizes({{10, 10}, {5}});  // x = 0..24
  ASSERT_OK_AND_ASSIGN(auto out,
                       RunCollect(source, {FailEveryRowStep("HTTP 500 from http://h/m")},
                                  RunOptions{.workers = 2}));
  EXPECT_EQ(out.table->num_rows(), 0);
  EXPECT_EQ(out.stats.row_errors, 25);
  ASSERT_EQ(out.stats.row_error_samples.size(), 1u);
  EXPECT_THAT(out.stats.row_error_samples[0],
              HasSubstr(": HTTP 500 from http://h/m (... and 24 more rows with the same "
                        "error)"));

  // Different messages stay apart, at most 100 of them; every row is still counted.
  ASSERT_OK_AND_ASSIGN(
      auto distinct, RunCollect(VectorSource::FromSizes({{150}}),
                                {FailEveryRowStep("bad x={x}")}, RunOptions{.workers = 1}));
  EXPECT_EQ(distinct.stats.row_errors, 150);
  ASSERT_EQ(distinct.stats.row_error_samples.size(), 100u);
  EXPECT_THAT(distinct.stats.row_error_samples[99], ::testing::EndsWith(": bad x=99"));
}

// Partitions named like the files of a file source.
class FileNamedSource : public VectorSource {
 public:
  using VectorSource::VectorSource;
  std::string partition_name(int64_t i) const override {
    return "/data/clip-" + std::to_string(i) + ".wav";
  }
};

TEST(ExecutorTest, RowErrorSampleNamesTheRowsFileOnce) {
  auto parts = VectorSource::FromSizes({{1}, {1}});  // x = 0, 1
  std::vector<std::vector<std::shared_ptr<arrow::RecordBatch>>> batches;
  for (int64_t p = 0; p < 2; ++p) {
    ASSERT_OK_AND_ASSIGN(auto reader, parts->OpenPartition(p));
    ASSERT_OK_AND_ASSIGN(auto all, reader->ToRecordBatches());
    batches.push_back(all);
  }
  auto source = std::make_shared<FileNamedSource>(batches);
  ASSERT_OK_AND_ASSIGN(
      auto named, RunCollect(source, {FailEveryRowStep("'/data/clip-{x}.wav': unreadable")},
                             RunOptions{.workers = 1}));
  ASSERT_EQ(named.stats.row_error_samples.size(), 2u);
  EXPECT_EQ(named.stats.row_error_samples[1],
            "operator 'fail_every_row', partition 1, batch at row 0, batch row 0: "
            "'/data/clip-1.wav': unreadable");
  // A message that does not name the file gets the partition's name beside it.
  ASSERT_OK_AND_ASSIGN(auto unnamed, RunCollect(source, {FailEveryRowStep("unreadable")},
                                                RunOptions{.workers = 1}));
  ASSERT_EQ(unnamed.stats.row_error_samples.size(), 1u);
  EXPECT_EQ(unnamed.stats.row_error_samples[0],
            "operator 'fail_every_row', partition 0 '/data/clip-0.wav', batch at row 0, "
            "batch row 0: unreadable (... and 1 more row with the same error)");
}

TEST(ExecutorTest, EmptySourceGivesEmptyTableOfOutputSchema) {
  auto source = VectorSource::FromSizes({});
  ASSERT_OK_AND_ASSIGN(
      auto out, RunCollect(source, {Scalar(std::make_shared<TimesScalar>("x2", 2))},
                           RunOptions{.workers = 4}));
  EXPECT_EQ(out.table->num_rows(), 0);
  EXPECT_EQ(out.table->num_columns(), 3);
  EXPECT_EQ(out.stats.partitions, 0);
}

TEST(ExecutorTest, StatsSerializeToJson) {
  auto source = VectorSource::FromSizes({{3}, {4}});
  auto log = std::make_shared<StatefulLog>();
  ASSERT_OK_AND_ASSIGN(auto out, RunCollect(source, {Stateful(CountingFactory(log))},
                                            RunOptions{.workers = 2}));
  auto j = nlohmann::json::parse(out.stats.ToJson());
  EXPECT_EQ(j["rows_read"], 7);
  EXPECT_EQ(j["rows_written"], 7);
  EXPECT_EQ(j["workers"], 2);
  ASSERT_EQ(j["stages"].size(), 3u);
  EXPECT_EQ(j["stages"][0]["kind"], "source");
  EXPECT_EQ(j["stages"][1]["name"], "counting");
  EXPECT_EQ(j["stages"][1]["opens"], log->opens);
  EXPECT_EQ(j["stages"][2]["kind"], "sink");
  EXPECT_EQ(j["stages"][2]["rows_in"], 7);
  EXPECT_TRUE(j["buffer"].contains("peak_batches"));
}

}  // namespace
}  // namespace dlprep::exec
