#include "dlprep/pipeline.h"

#include <arrow/api.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "exec/exec_test_util.h"

namespace dlprep {
namespace {

using exec::testing::CountingFactory;
using exec::testing::CountingStateful;
using exec::testing::DropMultiples;
using exec::testing::FailAt;
using exec::testing::Int64Column;
using exec::testing::MakeBatch;
using exec::testing::StatefulLog;
using exec::testing::TimesScalar;
using exec::testing::VectorSource;
using ::testing::HasSubstr;

// What a FakeWriter saw; shared with the test because the pipeline owns the writer.
struct WriterLog {
  std::shared_ptr<arrow::Schema> schema;
  int64_t rows = 0;
  std::vector<int64_t> partitions_written;  // partition of each Write, in order
  std::vector<int64_t> partitions_finished;
  bool committed = false;
  bool aborted = false;
  std::string manifest_job;
};

class FakeWriter : public DatasetWriter {
 public:
  explicit FakeWriter(std::shared_ptr<WriterLog> log) : log_(std::move(log)) {}
  arrow::Status Write(int64_t partition,
                      const std::shared_ptr<arrow::RecordBatch>& batch) override {
    log_->rows += batch->num_rows();
    log_->partitions_written.push_back(partition);
    return arrow::Status::OK();
  }
  arrow::Status FinishPartition(int64_t partition) override {
    log_->partitions_finished.push_back(partition);
    return arrow::Status::OK();
  }
  arrow::Result<WriteResult> Commit(const std::string& extra_manifest_json) override {
    log_->committed = true;
    log_->manifest_job = extra_manifest_json;
    WriteResult r;
    r.files.push_back({"part-0.tfrecord", log_->rows, 123});
    r.rows = log_->rows;
    r.bytes = 123;
    return r;
  }
  void Abort() override { log_->aborted = true; }
  int64_t rows_written() const override { return log_->rows; }
  int64_t bytes_written() const override { return 0; }
  const std::string& attempt_dir() const override { return dir_; }

 private:
  std::shared_ptr<WriterLog> log_;
  std::string dir_ = "/tmp/none";
};

DatasetWriterOpener FakeOpener(std::shared_ptr<WriterLog> log) {
  return [log](const std::shared_ptr<arrow::Schema>& schema)
             -> arrow::Result<std::unique_ptr<DatasetWriter>> {
    log->schema = schema;
    return std::make_unique<FakeWriter>(log);
  };
}

TEST(StandaloneOperatorTest, EachKindIsCallableWithoutExecutor) {
  auto batch = MakeBatch(10, 5);  // x = 10..14

  TimesScalar scalar("x2", 2);
  ASSERT_OK_AND_ASSIGN(auto field, scalar.OutputField(*batch->schema()));
  EXPECT_EQ(field->name(), "x2");
  ASSERT_OK_AND_ASSIGN(auto column, scalar.Compute(*batch));
  ASSERT_EQ(column->length(), 5);
  EXPECT_EQ(std::static_pointer_cast<arrow::Int64Array>(column)->Value(4), 28);

  DropMultiples even(2);
  ASSERT_OK_AND_ASSIGN(auto odd, even.Process(batch));
  ASSERT_EQ(odd->num_rows(), 2);
  EXPECT_EQ(Int64Column(*odd, "x")->Value(0), 11);
  EXPECT_EQ(Int64Column(*odd, "x")->Value(1), 13);

  auto log = std::make_shared<StatefulLog>();
  CountingStateful stateful(log, 0, /*error_modulus=*/10);
  ASSERT_OK(stateful.Open(OperatorContext{}));
  RowErrors errors;
  ASSERT_OK_AND_ASSIGN(auto out, stateful.Process(batch, &errors));
  EXPECT_EQ(out->num_rows(), 4);  // x = 13 failed
  ASSERT_EQ(errors.size(), 1);
  EXPECT_EQ(errors.rows[0], 3);
  EXPECT_EQ(errors.messages[0], "bad row x=13");
  ASSERT_OK(stateful.Close());
  EXPECT_EQ(log->opens, 1);
  EXPECT_EQ(log->closes, 1);
}

TEST(PipelineTest, CollectRunsTheChainInOrder) {
  auto source = VectorSource::FromSizes({{7, 3}, {}, {5}});
  auto log = std::make_shared<StatefulLog>();
  RunStats stats;
  ASSERT_OK_AND_ASSIGN(auto table, Pipeline::Read(source)
                                       .Map(std::make_shared<DropMultiples>(5))
                                       .MapStateful(CountingFactory(log))
                                       .Map(std::make_shared<TimesScalar>("x2", 2))
                                       .Collect(RunOptions{.workers = 3}, &stats));
  // x = 0..14 without 0, 5, 10.
  ASSERT_EQ(table->num_rows(), 12);
  EXPECT_EQ(table->schema()->ToString(),
            "x: int64\ns: string\nseen: int64\ny: int64\nx2: int64");
  ASSERT_OK_AND_ASSIGN(auto b, table->CombineChunksToBatch());
  std::vector<int64_t> xs;
  for (int64_t i = 0; i < b->num_rows(); ++i) {
    xs.push_back(Int64Column(*b, "x")->Value(i));
    EXPECT_EQ(Int64Column(*b, "x2")->Value(i), 2 * xs.back());
  }
  EXPECT_EQ(xs, (std::vector<int64_t>{1, 2, 3, 4, 6, 7, 8, 9, 11, 12, 13, 14}));
  EXPECT_EQ(stats.stages.size(), 5u);
  EXPECT_EQ(stats.stages[1].name, "drop_multiples");
  EXPECT_EQ(stats.stages[2].name, "counting");
  EXPECT_EQ(stats.stages[3].name, "x2");
  EXPECT_EQ(stats.rows_read, 15);
  EXPECT_EQ(stats.rows_written, 12);
}

TEST(PipelineTest, OutputSchemaWithoutRunning) {
  auto log = std::make_shared<StatefulLog>();
  ASSERT_OK_AND_ASSIGN(auto schema, Pipeline::Read(VectorSource::FromSizes({{1}}))
                                        .MapStateful(CountingFactory(log))
                                        .OutputSchema());
  EXPECT_EQ(schema->num_fields(), 4);
  EXPECT_EQ(log->opens, 0);
}

TEST(PipelineTest, RunWithoutWriteIsInvalid) {
  auto r = Pipeline::Read(VectorSource::FromSizes({{1}})).Run();
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsInvalid());
  EXPECT_THAT(r.status().message(), HasSubstr("call Write() first"));
}

TEST(PipelineTest, NullSourceIsInvalid) {
  auto r = Pipeline::Read(nullptr).Collect();
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("no source"));
}

TEST(PipelineTest, RunCommitsOnSuccess) {
  auto wlog = std::make_shared<WriterLog>();
  auto source = VectorSource::FromSizes({{4, 4}, {2}, {3}});
  ASSERT_OK_AND_ASSIGN(auto stats, Pipeline::Read(source)
                                       .Map(std::make_shared<TimesScalar>("x2", 2))
                                       .Write(FakeOpener(wlog))
                                       .Run(RunOptions{.workers = 2}));
  EXPECT_TRUE(wlog->committed);
  EXPECT_FALSE(wlog->aborted);
  EXPECT_EQ(wlog->rows, 13);
  EXPECT_EQ(wlog->schema->num_fields(), 3);
  EXPECT_EQ(wlog->partitions_written, (std::vector<int64_t>{0, 0, 1, 2}));
  EXPECT_EQ(wlog->partitions_finished, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(stats.files_written, 1);
  EXPECT_EQ(stats.bytes_written, 123);
  auto job = nlohmann::json::parse(wlog->manifest_job);
  EXPECT_EQ(job["rows_written"], 13);
}

TEST(PipelineTest, RunAbortsOnFailure) {
  auto wlog = std::make_shared<WriterLog>();
  auto source = VectorSource::FromSizes({{4, 4}, {2}, {3}});
  auto r = Pipeline::Read(source)
               .Map(std::make_shared<FailAt>(8))
               .Write(FakeOpener(wlog))
               .Run(RunOptions{.workers = 2});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              HasSubstr("operator 'fail_at' failed on partition 1 'part-1', rows 0-1"));
  EXPECT_TRUE(wlog->aborted);
  EXPECT_FALSE(wlog->committed);
}

// 35 rows (x = 0..34) of which 4 fail (x % 10 == 3), through Pipeline::Run.
arrow::Result<RunStats> RunWithFailedRows(const RunOptions& options,
                                          std::shared_ptr<WriterLog> wlog,
                                          RunStats* failed, int64_t error_modulus = 10) {
  auto source = VectorSource::FromSizes({{10, 10}, {10}, {5}});
  auto log = std::make_shared<StatefulLog>();
  return Pipeline::Read(source)
      .MapStateful(CountingFactory(log, 0, error_modulus))
      .Write(FakeOpener(std::move(wlog)))
      .Run(options, failed);
}

TEST(PipelineTest, FailedRowsOverTheRateCommitNothing) {
  // The default rate (0.01 of 35 rows: 0 rows) is passed by 4 failed rows.
  auto wlog = std::make_shared<WriterLog>();
  RunStats failed;
  auto r = RunWithFailedRows(RunOptions{.workers = 2}, wlog, &failed);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsInvalid());
  EXPECT_THAT(r.status().message(),
              HasSubstr("4 of 35 input rows failed (11.43%), more than the 0 that max "
                        "error rate (--max-error-rate) 0.01 allows; first error: operator "
                        "'counting'"));
  EXPECT_THAT(r.status().message(), HasSubstr("bad row x="));
  EXPECT_TRUE(wlog->aborted);
  EXPECT_FALSE(wlog->committed);
  EXPECT_EQ(failed.row_errors, 4);
  EXPECT_EQ(failed.rows_read, 35);
  EXPECT_EQ(failed.rows_written, 31);

  // Just under: 0.12 of 35 allows 4 rows; just over: 0.11 allows 3.
  wlog = std::make_shared<WriterLog>();
  RunStats untouched;
  ASSERT_OK_AND_ASSIGN(auto stats,
                       RunWithFailedRows(RunOptions{.workers = 2, .max_error_rate = 0.12},
                                         wlog, &untouched));
  EXPECT_TRUE(wlog->committed);
  EXPECT_EQ(stats.row_errors, 4);
  EXPECT_EQ(untouched.row_errors, 0);  // only filled on a failed-rows failure
  wlog = std::make_shared<WriterLog>();
  r = RunWithFailedRows(RunOptions{.workers = 2, .max_error_rate = 0.11}, wlog, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("more than the 3 that max error rate"));
  EXPECT_FALSE(wlog->committed);
}

TEST(PipelineTest, FailedRowsOverTheCountCommitNothing) {
  auto wlog = std::make_shared<WriterLog>();
  ASSERT_OK(RunWithFailedRows(RunOptions{.max_error_rate = 1, .max_errors = 4}, wlog,
                              nullptr)
                .status());
  EXPECT_TRUE(wlog->committed);
  wlog = std::make_shared<WriterLog>();
  auto r = RunWithFailedRows(RunOptions{.max_error_rate = 1, .max_errors = 3}, wlog, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              HasSubstr("4 of 35 input rows failed (11.43%), more than the 3 that max "
                        "errors (--max-errors) allows"));
  EXPECT_FALSE(wlog->committed);
  EXPECT_TRUE(wlog->aborted);
}

TEST(PipelineTest, EveryRowFailedFailsWhateverTheLimits) {
  // One partition of the single row x = 3, which fails (x % 10 == 3).
  auto only_bad = std::make_shared<VectorSource>(
      std::vector<std::vector<std::shared_ptr<arrow::RecordBatch>>>{{MakeBatch(3, 1)}});
  auto log = std::make_shared<StatefulLog>();
  auto wlog = std::make_shared<WriterLog>();
  RunStats failed;
  auto r = Pipeline::Read(only_bad)
               .MapStateful(CountingFactory(log, 0, 10))
               .Write(FakeOpener(wlog))
               .Run(RunOptions{.max_error_rate = 1}, &failed);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              HasSubstr("no row was written: 1 of 1 input rows failed (100%); first "
                        "error: operator 'counting'"));
  EXPECT_FALSE(wlog->committed);
  EXPECT_EQ(failed.row_errors, 1);
  // A run that writes no row because a filter dropped them all is not a failure.
  wlog = std::make_shared<WriterLog>();
  ASSERT_OK(Pipeline::Read(VectorSource::FromSizes({{5}}))
                .Map(std::make_shared<DropMultiples>(1))
                .Write(FakeOpener(wlog))
                .Run(RunOptions{.max_error_rate = 0})
                .status());
  EXPECT_TRUE(wlog->committed);
  EXPECT_EQ(wlog->rows, 0);
}

TEST(PipelineTest, LimitsOutOfRangeFailBeforeAnythingIsOpened) {
  for (RunOptions o : {RunOptions{.max_error_rate = -0.5}, RunOptions{.max_error_rate = 1.5},
                       RunOptions{.max_errors = -2}}) {
    auto wlog = std::make_shared<WriterLog>();
    auto r = RunWithFailedRows(o, wlog, nullptr);
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.status().IsInvalid());
    EXPECT_THAT(r.status().message(), HasSubstr("--max-error"));
    EXPECT_EQ(wlog->schema, nullptr);  // the writer was never opened
  }
}

// Sets the flag when it sees its first batch.
class CancelOnFirstBatch : public BatchOperator {
 public:
  explicit CancelOnFirstBatch(std::atomic<bool>* cancel) : cancel_(cancel) {}
  std::string name() const override { return "cancel"; }
  arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(
      const arrow::Schema& input) const override {
    return std::make_shared<arrow::Schema>(input);
  }
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Process(
      const std::shared_ptr<arrow::RecordBatch>& batch) const override {
    cancel_->store(true);
    return batch;
  }

 private:
  std::atomic<bool>* cancel_;
};

TEST(PipelineTest, RunAbortsOnCancel) {
  auto wlog = std::make_shared<WriterLog>();
  std::atomic<bool> cancel{false};
  auto r = Pipeline::Read(VectorSource::FromSizes({{4}, {4}, {4}}))
               .Map(std::make_shared<CancelOnFirstBatch>(&cancel))
               .Write(FakeOpener(wlog))
               .Run(RunOptions{.workers = 1, .cancel = &cancel});
  EXPECT_TRUE(r.status().IsCancelled());
  EXPECT_TRUE(wlog->aborted);
  EXPECT_FALSE(wlog->committed);
}

// Ctrl-C before the run began (while a command opened its inputs): nothing is opened,
// so no attempt folder is created and none is left.
TEST(PipelineTest, CancelledBeforeTheStartOpensNoWriter) {
  auto wlog = std::make_shared<WriterLog>();
  std::atomic<bool> cancel{true};
  auto r = Pipeline::Read(VectorSource::FromSizes({{4}}))
               .Write(FakeOpener(wlog))
               .Run(RunOptions{.cancel = &cancel});
  ASSERT_TRUE(r.status().IsCancelled()) << r.status().ToString();
  EXPECT_EQ(r.status().message(), "interrupted before the run started");
  EXPECT_EQ(wlog->schema, nullptr);  // the opener was never called
  EXPECT_FALSE(wlog->committed);
  auto t = Pipeline::Read(VectorSource::FromSizes({{4}})).Collect({.cancel = &cancel});
  EXPECT_TRUE(t.status().IsCancelled());
}

}  // namespace
}  // namespace dlprep
