#pragma once

// Test helpers of the exec module: an in-memory source and small operators of each
// kind. Header-only and included by *_test.cc only (never linked into the library).

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <arrow/api.h>
#include <gtest/gtest.h>

#include "dlprep/operator.h"
#include "dlprep/source.h"

#define DLPREP_TEST_CONCAT_INNER(a, b) a##b
#define DLPREP_TEST_CONCAT(a, b) DLPREP_TEST_CONCAT_INNER(a, b)

/// Asserts that an arrow::Status expression is OK, printing it otherwise.
#define ASSERT_OK(expr)                      \
  do {                                       \
    ::arrow::Status _st = (expr);            \
    ASSERT_TRUE(_st.ok()) << _st.ToString(); \
  } while (false)

/// Asserts that an arrow::Result expression is OK and moves its value into `lhs`.
#define ASSERT_OK_AND_ASSIGN(lhs, rexpr) \
  ASSERT_OK_AND_ASSIGN_IMPL(DLPREP_TEST_CONCAT(_result_, __LINE__), lhs, rexpr)
#define ASSERT_OK_AND_ASSIGN_IMPL(result, lhs, rexpr)     \
  auto result = (rexpr);                                  \
  ASSERT_TRUE(result.ok()) << result.status().ToString(); \
  lhs = std::move(result).ValueUnsafe();

namespace dlprep::exec::testing {

/// Schema of VectorSource batches: `x` (int64, a global row id) and `s` ("r<x>").
inline std::shared_ptr<arrow::Schema> TestSchema() {
  return arrow::schema(
      {arrow::field("x", arrow::int64()), arrow::field("s", arrow::utf8())});
}

/// A batch of rows x = first .. first + n - 1.
inline std::shared_ptr<arrow::RecordBatch> MakeBatch(int64_t first, int64_t n) {
  arrow::Int64Builder xb;
  arrow::StringBuilder sb;
  for (int64_t i = first; i < first + n; ++i) {
    EXPECT_TRUE(xb.Append(i).ok());
    EXPECT_TRUE(sb.Append("r" + std::to_string(i)).ok());
  }
  std::shared_ptr<arrow::Array> x, s;
  EXPECT_TRUE(xb.Finish(&x).ok());
  EXPECT_TRUE(sb.Finish(&s).ok());
  return arrow::RecordBatch::Make(TestSchema(), n, {x, s});
}

/// A Source over in-memory batches; partition i is named "part-<i>".
// A source over in-memory batches of any schema; partition i holds parts[i] and is
// named "p<i>".
class BatchesSource : public Source {
 public:
  BatchesSource(std::shared_ptr<arrow::Schema> schema,
                std::vector<std::vector<std::shared_ptr<arrow::RecordBatch>>> parts)
      : schema_(std::move(schema)), parts_(std::move(parts)) {}
  std::shared_ptr<arrow::Schema> schema() const override { return schema_; }
  int64_t num_partitions() const override { return static_cast<int64_t>(parts_.size()); }
  std::string partition_name(int64_t i) const override { return "p" + std::to_string(i); }
  arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> OpenPartition(
      int64_t i) const override {
    return arrow::RecordBatchReader::Make(parts_[i], schema_);
  }

 private:
  std::shared_ptr<arrow::Schema> schema_;
  std::vector<std::vector<std::shared_ptr<arrow::RecordBatch>>> parts_;
};

class VectorSource : public Source {
 public:
  explicit VectorSource(
      std::vector<std::vector<std::shared_ptr<arrow::RecordBatch>>> parts)
      : parts_(std::move(parts)) {}

  /// Partition i has batches of sizes[i][0], sizes[i][1], ... rows; x counts up across
  /// all partitions.
  static std::shared_ptr<VectorSource> FromSizes(
      const std::vector<std::vector<int64_t>>& sizes) {
    std::vector<std::vector<std::shared_ptr<arrow::RecordBatch>>> parts;
    int64_t next = 0;
    for (const auto& p : sizes) {
      parts.emplace_back();
      for (int64_t n : p) {
        parts.back().push_back(MakeBatch(next, n));
        next += n;
      }
    }
    return std::make_shared<VectorSource>(std::move(parts));
  }

  std::shared_ptr<arrow::Schema> schema() const override { return TestSchema(); }
  int64_t num_partitions() const override { return static_cast<int64_t>(parts_.size()); }
  std::string partition_name(int64_t i) const override {
    return "part-" + std::to_string(i);
  }
  arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> OpenPartition(
      int64_t i) const override {
    return arrow::RecordBatchReader::Make(parts_[i], TestSchema());
  }

 private:
  std::vector<std::vector<std::shared_ptr<arrow::RecordBatch>>> parts_;
};

/// Sleeps 0..max_us microseconds, from a per-thread generator (timing noise only).
inline void RandomSleep(int max_us) {
  thread_local std::mt19937 rng(std::hash<std::thread::id>()(std::this_thread::get_id()));
  std::this_thread::sleep_for(std::chrono::microseconds(rng() % (max_us + 1)));
}

inline std::shared_ptr<arrow::Int64Array> Int64Column(const arrow::RecordBatch& b,
                                                      const std::string& name) {
  return std::static_pointer_cast<arrow::Int64Array>(b.GetColumnByName(name));
}

/// Scalar: `name` = x * factor.
class TimesScalar : public ScalarOperator {
 public:
  TimesScalar(std::string name, int64_t factor, int sleep_us = 0)
      : name_(std::move(name)), factor_(factor), sleep_us_(sleep_us) {}
  std::string name() const override { return name_; }
  arrow::Result<std::shared_ptr<arrow::Field>> OutputField(
      const arrow::Schema& input) const override {
    if (input.GetFieldByName("x") == nullptr) {
      return arrow::Status::TypeError("needs an int64 column 'x'");
    }
    return arrow::field(name_, arrow::int64());
  }
  arrow::Result<std::shared_ptr<arrow::Array>> Compute(
      const arrow::RecordBatch& batch) const override {
    if (sleep_us_ > 0) RandomSleep(sleep_us_);
    auto x = Int64Column(batch, "x");
    arrow::Int64Builder b;
    ARROW_RETURN_NOT_OK(b.Reserve(batch.num_rows()));
    for (int64_t i = 0; i < batch.num_rows(); ++i) b.UnsafeAppend(x->Value(i) * factor_);
    return b.Finish();
  }

 private:
  std::string name_;
  int64_t factor_;
  int sleep_us_;
};

/// Scalar that returns one value too many.
class WrongLengthScalar : public ScalarOperator {
 public:
  std::string name() const override { return "bad_len"; }
  arrow::Result<std::shared_ptr<arrow::Field>> OutputField(
      const arrow::Schema&) const override {
    return arrow::field("bad", arrow::int64());
  }
  arrow::Result<std::shared_ptr<arrow::Array>> Compute(
      const arrow::RecordBatch& batch) const override {
    arrow::Int64Builder b;
    for (int64_t i = 0; i <= batch.num_rows(); ++i) ARROW_RETURN_NOT_OK(b.Append(i));
    return b.Finish();
  }
};

/// Batch: keeps rows whose x is not divisible by `modulus` (changes the length; some
/// batches become empty).
class DropMultiples : public BatchOperator {
 public:
  explicit DropMultiples(int64_t modulus, int sleep_us = 0)
      : modulus_(modulus), sleep_us_(sleep_us) {}
  std::string name() const override { return "drop_multiples"; }
  arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(
      const arrow::Schema& input) const override {
    return std::make_shared<arrow::Schema>(input);
  }
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Process(
      const std::shared_ptr<arrow::RecordBatch>& batch) const override {
    if (sleep_us_ > 0) RandomSleep(sleep_us_);
    auto x = Int64Column(*batch, "x");
    arrow::Int64Builder idx;
    for (int64_t i = 0; i < batch->num_rows(); ++i) {
      if (x->Value(i) % modulus_ != 0) ARROW_RETURN_NOT_OK(idx.Append(i));
    }
    // Gather by concatenating one-row slices (no arrow::compute dependency).
    ARROW_ASSIGN_OR_RAISE(auto indices, idx.Finish());
    auto ind = std::static_pointer_cast<arrow::Int64Array>(indices);
    std::vector<std::shared_ptr<arrow::RecordBatch>> rows;
    for (int64_t k = 0; k < ind->length(); ++k)
      rows.push_back(batch->Slice(ind->Value(k), 1));
    if (rows.empty()) return batch->Slice(0, 0);
    ARROW_ASSIGN_OR_RAISE(auto table,
                          arrow::Table::FromRecordBatches(batch->schema(), rows));
    ARROW_ASSIGN_OR_RAISE(table, table->CombineChunks());
    return table->CombineChunksToBatch();
  }

 private:
  int64_t modulus_;
  int sleep_us_;
};

/// Batch: every row twice (rows a, a, b, b, ...).
class Duplicate : public BatchOperator {
 public:
  std::string name() const override { return "duplicate"; }
  arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(
      const arrow::Schema& input) const override {
    return std::make_shared<arrow::Schema>(input);
  }
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Process(
      const std::shared_ptr<arrow::RecordBatch>& batch) const override {
    std::vector<std::shared_ptr<arrow::RecordBatch>> rows;
    for (int64_t i = 0; i < batch->num_rows(); ++i) {
      rows.push_back(batch->Slice(i, 1));
      rows.push_back(batch->Slice(i, 1));
    }
    if (rows.empty()) return batch;
    ARROW_ASSIGN_OR_RAISE(auto table,
                          arrow::Table::FromRecordBatches(batch->schema(), rows));
    return table->CombineChunksToBatch();
  }
};

/// Batch: fails with Invalid("boom") on the batch whose first x is `fail_at`; counts the
/// batches it saw; sleeps `sleep_us` per batch.
class FailAt : public BatchOperator {
 public:
  FailAt(int64_t fail_at, int sleep_us = 0) : fail_at_(fail_at), sleep_us_(sleep_us) {}
  std::string name() const override { return "fail_at"; }
  arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(
      const arrow::Schema& input) const override {
    return std::make_shared<arrow::Schema>(input);
  }
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Process(
      const std::shared_ptr<arrow::RecordBatch>& batch) const override {
    seen_.fetch_add(1);
    if (sleep_us_ > 0) std::this_thread::sleep_for(std::chrono::microseconds(sleep_us_));
    if (batch->num_rows() > 0 && Int64Column(*batch, "x")->Value(0) == fail_at_) {
      return arrow::Status::Invalid("boom");
    }
    return batch;
  }
  int64_t seen() const { return seen_.load(); }

 private:
  int64_t fail_at_;
  int sleep_us_;
  mutable std::atomic<int64_t> seen_{0};
};

/// What the CountingStateful instances of one run did.
struct StatefulLog {
  std::mutex mu;
  int opens = 0;
  int closes = 0;
  std::set<int> open_workers;     // worker_index of each Open()
  std::set<int> process_workers;  // worker_index seen by Process()
  int num_workers_seen = 0;
};

/// Stateful: appends `seen` = rows this instance processed before the row (its state
/// carries across batches and partitions) and `y` = x * 3; sleeps randomly; reports
/// rows with x % error_modulus == 3 as failed and drops them (error_modulus 0: never).
class CountingStateful : public StatefulOperator {
 public:
  CountingStateful(std::shared_ptr<StatefulLog> log, int sleep_us = 0,
                   int64_t error_modulus = 0)
      : log_(std::move(log)), sleep_us_(sleep_us), error_modulus_(error_modulus) {}
  std::string name() const override { return "counting"; }
  arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(
      const arrow::Schema& input) const override {
    ARROW_ASSIGN_OR_RAISE(
        auto s, input.AddField(input.num_fields(), arrow::field("seen", arrow::int64())));
    return s->AddField(s->num_fields(), arrow::field("y", arrow::int64()));
  }
  arrow::Status Open(const OperatorContext& context) override {
    if (open_) return arrow::Status::Invalid("opened twice");
    open_ = true;
    worker_ = context.worker_index;
    std::lock_guard<std::mutex> lock(log_->mu);
    log_->opens += 1;
    log_->open_workers.insert(context.worker_index);
    log_->num_workers_seen = context.num_workers;
    return arrow::Status::OK();
  }
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Process(
      const std::shared_ptr<arrow::RecordBatch>& batch, RowErrors* errors) override {
    if (!open_) return arrow::Status::Invalid("Process before Open");
    if (sleep_us_ > 0) RandomSleep(sleep_us_);
    {
      std::lock_guard<std::mutex> lock(log_->mu);
      log_->process_workers.insert(worker_);
    }
    auto x = Int64Column(*batch, "x");
    arrow::Int64Builder xb, seen, y;
    arrow::StringBuilder sb;
    auto s = std::static_pointer_cast<arrow::StringArray>(batch->GetColumnByName("s"));
    int64_t kept = 0;
    for (int64_t i = 0; i < batch->num_rows(); ++i) {
      if (error_modulus_ > 0 && x->Value(i) % error_modulus_ == 3) {
        errors->Add(i, "bad row x=" + std::to_string(x->Value(i)));
        continue;
      }
      ARROW_RETURN_NOT_OK(xb.Append(x->Value(i)));
      ARROW_RETURN_NOT_OK(sb.Append(s->GetView(i)));
      ARROW_RETURN_NOT_OK(seen.Append(rows_seen_++));
      ARROW_RETURN_NOT_OK(y.Append(x->Value(i) * 3));
      ++kept;
    }
    std::vector<std::shared_ptr<arrow::Array>> cols(4);
    ARROW_RETURN_NOT_OK(xb.Finish(&cols[0]));
    ARROW_RETURN_NOT_OK(sb.Finish(&cols[1]));
    ARROW_RETURN_NOT_OK(seen.Finish(&cols[2]));
    ARROW_RETURN_NOT_OK(y.Finish(&cols[3]));
    ARROW_ASSIGN_OR_RAISE(auto schema, OutputSchema(*batch->schema()));
    // Extra columns of the input (from earlier steps) are not carried in this test op.
    if (schema->num_fields() != 4) return arrow::Status::Invalid("expects x, s input");
    return arrow::RecordBatch::Make(schema, kept, cols);
  }
  arrow::Status Close() override {
    std::lock_guard<std::mutex> lock(log_->mu);
    log_->closes += 1;
    return arrow::Status::OK();
  }

 private:
  std::shared_ptr<StatefulLog> log_;
  int sleep_us_;
  int64_t error_modulus_;
  bool open_ = false;
  int worker_ = -1;
  int64_t rows_seen_ = 0;
};

/// A factory of CountingStateful sharing `log`.
inline StatefulOperatorFactory CountingFactory(std::shared_ptr<StatefulLog> log,
                                               int sleep_us = 0,
                                               int64_t error_modulus = 0) {
  return [=]() -> arrow::Result<std::unique_ptr<StatefulOperator>> {
    return std::make_unique<CountingStateful>(log, sleep_us, error_modulus);
  };
}

}  // namespace dlprep::exec::testing
