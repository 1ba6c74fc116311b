#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type_fwd.h>

#include "dlprep/operator.h"
#include "dlprep/pipeline.h"
#include "dlprep/sink.h"
#include "dlprep/source.h"

namespace dlprep::exec {

class GroupedStage;

/// What the executor writes into: one sink stage, called from one thread (the thread
/// that called Executor::Run), so implementations need no locking.
class BatchSink {
 public:
  virtual ~BatchSink() = default;
  /// Writes `batch` (never null, never empty) of input partition `partition`. Batches of
  /// one partition arrive in order; in unordered runs partitions may interleave.
  virtual arrow::Status Write(int64_t partition,
                              const std::shared_ptr<arrow::RecordBatch>& batch) = 0;
  /// Called once per partition, after its last batch (also for partitions whose output
  /// is empty).
  virtual arrow::Status FinishPartition(int64_t partition) = 0;
  /// Bytes written so far, for progress; 0 when the sink does not know.
  virtual int64_t bytes_written() const { return 0; }
  /// false (the default): every call comes from the thread that called Executor::Run,
  /// through the reorder buffer. true: Write() is called directly on the worker
  /// threads, concurrently for different partitions (in order within one), and the
  /// sink must be thread-safe; FinishPartition() still comes from the Run thread, after
  /// the partition's last Write(). Used by the grouped step's partitioning.
  virtual bool concurrent() const { return false; }
};

/// A BatchSink over a DatasetWriter (not owned; must outlive the sink). Does not commit
/// or abort: the caller does, depending on the run's result.
class DatasetWriterSink : public BatchSink {
 public:
  explicit DatasetWriterSink(DatasetWriter* writer) : writer_(writer) {}
  arrow::Status Write(int64_t partition,
                      const std::shared_ptr<arrow::RecordBatch>& batch) override;
  arrow::Status FinishPartition(int64_t partition) override;
  int64_t bytes_written() const override;

 private:
  DatasetWriter* writer_;
};

/// A BatchSink that keeps every batch, in the order written.
class CollectSink : public BatchSink {
 public:
  arrow::Status Write(int64_t partition,
                      const std::shared_ptr<arrow::RecordBatch>& batch) override;
  arrow::Status FinishPartition(int64_t partition) override;
  const std::vector<std::shared_ptr<arrow::RecordBatch>>& batches() const {
    return batches_;
  }
  /// The batches as one table of `schema` (0 rows when nothing was written).
  arrow::Result<std::shared_ptr<arrow::Table>> ToTable(
      const std::shared_ptr<arrow::Schema>& schema) const;

 private:
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches_;
};

/// Runs source -> chain of scalar/batch/stateful steps -> sink on `workers` threads.
///
/// Each worker takes the next unprocessed partition (in partition order), reads its
/// batches and runs each through the whole chain; results go through a bounded reorder
/// buffer (RunOptions::max_buffered_batches/bytes) to the sink, which runs on the thread
/// that called Run(). In ordered mode the sink receives (partition, batch) in input
/// order whatever the number of workers; a worker whose batch is not yet due blocks
/// while the buffer is full, so a slow sink slows every worker (backpressure).
///
/// Errors: the first failing step fails the run with its status code and a message
/// naming the operator, the partition and the source row range of the batch; the other
/// workers stop at their next batch boundary; Run() returns that error and the caller
/// aborts its sink. Cancellation (RunOptions::cancel) stops the run the same way with
/// Status::Cancelled.
///
/// Stateful steps: one instance per worker, opened lazily before that worker's first
/// batch, reused across partitions, closed when the worker ends.
///
/// Grouped steps: the chain is cut at the first grouped step. The steps before it run
/// as above into the grouped step's partitioning (phase 1, see exec/grouped.h); when
/// every partition is done, the steps after it run the same way over the grouped
/// step's buckets as partitions (phase 2), into `sink`. The spill folder is removed at
/// the end of Run() whatever the result.
///
/// Thread-safety: Make() and Run() are called from one thread; Run() once per Executor.
class Executor {
 public:
  ~Executor();

  /// Plans the run: validates the chain against `source`'s schema (each operator's
  /// OutputField/OutputSchema) and calls each stateful factory once. Fails with the
  /// operator's error, prefixed by its name and position, when the chain does not fit.
  static arrow::Result<std::unique_ptr<Executor>> Make(std::shared_ptr<Source> source,
                                                       std::vector<PipelineStep> steps,
                                                       RunOptions options);

  /// Schema of the batches given to the sink.
  const std::shared_ptr<arrow::Schema>& output_schema() const { return output_schema_; }

  /// Runs to completion, error or cancellation. `sink` is not owned.
  arrow::Result<RunStats> Run(BatchSink* sink);

  /// Internal plan of one step (public for the implementation's helpers only).
  struct PlannedStep;

 private:
  Executor() = default;

  std::shared_ptr<Source> source_;
  RunOptions options_;
  std::vector<PlannedStep> steps_;
  std::shared_ptr<arrow::Schema> output_schema_;
  bool ran_ = false;
  // Runs the steps after a grouped step, over its buckets (the `next_` of another).
  bool nested_ = false;
  // Set when the chain has a grouped step: that step, and the executor of the steps
  // after it (reading the grouped step's buckets).
  std::unique_ptr<GroupedStage> grouped_;
  std::unique_ptr<Executor> next_;
};

}  // namespace dlprep::exec
