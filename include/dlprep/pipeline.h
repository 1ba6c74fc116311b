#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type_fwd.h>

#include "dlprep/operator.h"
#include "dlprep/sink.h"
#include "dlprep/source.h"

namespace dlprep {

class Progress;

/// One step of a pipeline's operator chain: exactly one of the four pointers/factory
/// is set, according to `kind`.
struct PipelineStep {
  enum class Kind { kScalar, kBatch, kStateful, kGrouped };
  Kind kind = Kind::kBatch;
  std::shared_ptr<ScalarOperator> scalar;
  std::shared_ptr<BatchOperator> batch;
  StatefulOperatorFactory stateful;
  std::shared_ptr<GroupedOperator> grouped;
  /// kGrouped: key columns and sort column given to Pipeline::GroupBy(); empty: the
  /// operator's own key_columns() / sort_column().
  std::vector<std::string> group_keys;
  std::string group_sort_by;
};

/// Rows that a stateful operator reported failed (RowErrors), with where they came from.
struct FailedRows {
  std::string operator_name;
  int64_t partition = 0;
  std::string partition_name;
  /// Row of the partition (counted in source rows) where the source batch that led to
  /// `input` starts. Exact row identities need `input` itself: earlier batch operators
  /// may have changed the number of rows.
  int64_t first_row = 0;
  /// The batch the operator received; `errors.rows` index into it.
  std::shared_ptr<arrow::RecordBatch> input;
  RowErrors errors;
};

/// Receives the per-row failures of a run (the `--errors PATH` sink).
///
/// Thread-safety: the executor calls Write() from worker threads but never two calls
/// at once. Calls arrive in no particular order across partitions.
class ErrorSink {
 public:
  virtual ~ErrorSink() = default;
  /// A non-OK status fails the job.
  virtual arrow::Status Write(const FailedRows& failed) = 0;
};

/// Default of RunOptions::max_error_rate: a run in which more than 1% of the input rows
/// failed is not committed. Real data has a few bad rows (a corrupt clip, a row the model
/// server refuses), and a long job should not be lost to them; a broken setup (a server
/// that is down, a wrong column, files of the wrong format) fails most rows and is far
/// above 1%, so it fails the job instead of committing an output of errors.
inline constexpr double kDefaultMaxErrorRate = 0.01;

/// Options of one run.
struct RunOptions {
  /// Worker threads; 0: std::thread::hardware_concurrency(). Each worker takes the
  /// next input partition and runs it through the whole chain.
  int workers = 0;
  /// Threads each stateful operator may use itself (OperatorContext).
  int threads_per_worker = 1;
  /// false: the sink gets batches in input order (partition by partition, batch by
  /// batch) whatever `workers` is. true: in the order they finish (faster when
  /// partitions differ in cost; output order then varies between runs).
  bool unordered = false;
  /// Bound on the reorder buffer between the workers and the sink: batches finished by
  /// workers and not yet taken by the sink. A worker blocks while the buffer is full,
  /// so a slow sink slows the source. The batch the sink needs next is always accepted
  /// (so the buffer can never deadlock); the batch count therefore never exceeds
  /// `max_buffered_batches`, and the byte size exceeds `max_buffered_bytes` by at most
  /// that one batch. Memory in flight is about this buffer plus one batch per worker
  /// plus the one being written. 0: 4 x workers batches. With a `memory_limit`, the
  /// byte bound used is the smaller of `max_buffered_bytes` and a quarter of the limit
  /// (ReorderBufferBytes()).
  int64_t max_buffered_batches = 0;
  int64_t max_buffered_bytes = int64_t{256} << 20;
  /// When it becomes true the run stops (checked before it starts, between batches, and
  /// every 20 ms while waiting) and returns Status::Cancelled; true before Run() is
  /// called: nothing is opened or written. May be null.
  const std::atomic<bool>* cancel = nullptr;
  /// Updated as batches are written (rows, sink bytes, partitions done). May be null.
  Progress* progress = nullptr;
  /// Receives per-row failures. May be null: they are then only counted.
  ErrorSink* error_sink = nullptr;
  /// Fail the job on the first per-row failure (`--fail-on-error`).
  bool fail_on_row_error = false;
  /// Pipeline::Run only: the largest fraction of the input rows (RunStats::rows_read)
  /// that may fail (RunStats::row_errors) for the output to be committed
  /// (`--max-error-rate`). Over it the run fails, commits nothing, and its message gives
  /// the count of failed rows and the first error. 0: any failed row fails the run (at
  /// the end, unlike `fail_on_row_error`, which stops at the first); 1: no limit by rate.
  /// Must be within [0, 1].
  double max_error_rate = kDefaultMaxErrorRate;
  /// Pipeline::Run only: the largest number of failed rows (`--max-errors`); -1: no
  /// limit by count. Both limits apply. Whatever the limits, a run that read rows and
  /// wrote none because rows failed always fails.
  int64_t max_errors = -1;

  /// The memory budget of the run (`--memory-limit`), in bytes; 0: unlimited. It
  /// limits the engine's memory pool (EnginePool() in core/memory.h), from which the
  /// engine allocates its Arrow data: source decode buffers, operator outputs, the
  /// reorder buffer's batches (whose bound becomes at most a quarter of the limit),
  /// grouped steps' buckets, sort buffers, and spill write and read buffers. Grouped
  /// steps spill their largest in-memory buckets to `spill_dir` when the bucket data
  /// would not fit in what the rest of the pool leaves, and sort buckets too large to
  /// sort in memory (2 x their size over the limit) in runs on disk. An allocation
  /// that still does not fit fails the run (Run() only) with Status::OutOfMemory naming
  /// `--memory-limit` and the bytes needed, instead of growing the process. Memory
  /// outside the pool (C++ objects, allocator overhead, libraries' own buffers, data
  /// given by the caller) comes on top. RunStats::peak_tracked_bytes reports the peak of
  /// bucket data, RunStats::peak_pool_bytes that of the pool.
  int64_t memory_limit = 0;
  /// Grouped steps only. Largest group handed whole to GroupedOperator::Apply()
  /// (`--max-group-bytes`); 0: no limit of its own. The limit actually used is the
  /// smaller of this and memory_limit / 4 (when set). A larger group is streamed to
  /// ApplyStream() when the operator supports_streaming(), else the run fails with an
  /// error naming the key value, the group's size and the option.
  int64_t max_group_bytes = 0;
  /// Grouped steps only. Parent folder of the spill folder; the run creates a fresh
  /// `dlprep-spill-<pid>-<uuid>` folder inside it on the first spill and removes it at
  /// the end of the run, also when the run fails. A run killed outright (SIGKILL) cannot;
  /// the next run with grouped steps removes such folders of processes that no longer
  /// exist (the CLI says so on stderr). Empty: $TMPDIR, else /tmp.
  std::string spill_dir = "";
  /// Grouped steps only. Number of hash buckets (>= 1). Part of the output order (see
  /// Pipeline::GroupBy), so it does not depend on `workers`. The buckets are written as
  /// one output partition per worker (runs of consecutive buckets), so a grouped job
  /// writes `workers` files at most unless the writer's own limits (shards,
  /// max_rows_per_file, max_bytes_per_file) say otherwise.
  int grouped_buckets = 64;
};

/// Counters of one stage: the source ("source"), each operator step, the sink ("sink").
struct StageStats {
  std::string name;
  std::string kind;  ///< "source", "scalar", "batch", "stateful", "grouped", "sink"
  int64_t batches_in = 0;
  int64_t rows_in = 0;
  int64_t batches_out = 0;
  int64_t rows_out = 0;
  /// Wall seconds spent in the stage, summed over workers.
  double seconds = 0;
  /// Stateful only: Open() calls (= workers that processed at least one batch).
  int64_t opens = 0;
  /// Stateful only: rows reported failed.
  int64_t row_errors = 0;
  /// Grouped only: groups handed to the operator, and those of them streamed.
  int64_t groups = 0;
  int64_t streamed_groups = 0;
};

/// Statistics of one run; ToJson() gives the `--stats` document.
struct RunStats {
  int workers = 0;
  bool unordered = false;
  int64_t partitions = 0;
  /// stages.front() is the source, stages.back() the sink, operators in between.
  std::vector<StageStats> stages;
  int64_t rows_read = 0;
  int64_t rows_written = 0;
  int64_t batches_written = 0;
  int64_t row_errors = 0;
  /// The first (at most 100) per-row failures: "operator 'x', partition 'p', row r: msg".
  std::vector<std::string> row_error_samples;
  /// Reorder buffer: the bound used and the peak actually reached.
  int64_t max_buffered_batches = 0;
  int64_t max_buffered_bytes = 0;
  int64_t peak_buffered_batches = 0;
  int64_t peak_buffered_bytes = 0;
  /// Set by Pipeline::Run after commit: files and bytes of the committed dataset.
  int64_t files_written = 0;
  int64_t bytes_written = 0;
  /// Grouped steps: peak bytes of bucket data held in memory as counted against
  /// RunOptions::memory_limit, bytes written to spill files, and their number.
  int64_t peak_tracked_bytes = 0;
  /// Peak bytes held by the engine's memory pool during the run (all runs in the
  /// process together, when several run at once).
  int64_t peak_pool_bytes = 0;
  int64_t spilled_bytes = 0;
  int64_t spill_files = 0;
  double wall_seconds = 0;

  /// A JSON object with every field above (stages as an array).
  std::string ToJson() const;
};

/// Whether a finished run may be committed given its failed rows: OK, or Invalid when
/// `stats.row_errors` is over `options.max_errors` or over `options.max_error_rate` of
/// `stats.rows_read`, or when rows were read, some failed and none was written. The
/// message gives the counts, the limit passed and the first failed row's error. Also
/// Invalid when the limits themselves are out of range.
arrow::Status CheckFailedRows(const RunStats& stats, const RunOptions& options);

/// The bound on the reorder buffer's bytes that a run with `options` uses: 
/// `max_buffered_bytes` (at least 1), and at most a quarter of `memory_limit` when set.
int64_t ReorderBufferBytes(const RunOptions& options);

/// Opens the writer a pipeline writes to, for the output schema of the chain.
using DatasetWriterOpener = std::function<arrow::Result<std::unique_ptr<DatasetWriter>>(
    const std::shared_ptr<arrow::Schema>& schema)>;

/// Builds and runs source -> operators -> sink:
///
///     auto stats = Pipeline::Read(source).Map(scalar_op).MapStateful(factory)
///                      .GroupBy({"user"}, "ts").Apply(grouped_op).Map(batch_op)
///                      .Write(write_options).Run({.workers = 8});
///
/// A value type; building is cheap and copies share the operators. Run() and Collect()
/// may be called several times (each call runs the whole pipeline again). Not
/// thread-safe: build and run from one thread (the run itself uses `workers` threads).
class Pipeline {
 public:
  /// Starts a pipeline reading `source` (must not be null; Run reports it otherwise).
  static Pipeline Read(std::shared_ptr<Source> source);

  /// Appends a scalar operator: its column is appended to every batch.
  Pipeline& Map(std::shared_ptr<ScalarOperator> op);
  /// Appends a batch operator.
  Pipeline& Map(std::shared_ptr<BatchOperator> op);
  /// Appends a stateful operator; see StatefulOperatorFactory for when it is called.
  Pipeline& MapStateful(StatefulOperatorFactory factory);

  /// The pending grouped step returned by GroupBy(); Apply() completes it.
  class GroupBuilder {
   public:
    /// Appends a grouped step running `op` on the groups and returns the pipeline, so
    /// that more Map() steps and Write() can follow. `op` must not be null (Run reports
    /// it otherwise).
    Pipeline& Apply(std::shared_ptr<GroupedOperator> op);

   private:
    friend class Pipeline;
    GroupBuilder(Pipeline* pipeline, std::vector<std::string> keys, std::string sort_by)
        : pipeline_(pipeline), keys_(std::move(keys)), sort_by_(std::move(sort_by)) {}
    Pipeline* pipeline_;  // not owned; the builder lives within one expression
    std::vector<std::string> keys_;
    std::string sort_by_;
  };

  /// Groups rows by `keys` (int64/int32 or string columns, any mix; empty: the
  /// operator's key_columns()) with rows of a group sorted by `sort_by` (ascending,
  /// ties in input order; empty: the operator's sort_column(), else input order).
  /// When both the pipeline and the operator name keys or a sort column they must
  /// agree; Run fails naming both otherwise.
  ///
  /// Semantics: rows whose key is null (in any key column) are grouped like any other
  /// value, all nulls of a column together (Spark's and pandas' dropna=False
  /// behaviour). Output order is deterministic and does not depend on `workers` or
  /// `memory_limit`: groups come by hash bucket of the key (a stable hash of the key
  /// bytes, RunOptions::grouped_buckets buckets), then by ascending key value (nulls
  /// last) within a bucket; each group's output in the order Apply() returned it.
  /// Input order is therefore not kept across a grouped step.
  GroupBuilder GroupBy(std::vector<std::string> keys, std::string sort_by = "");

  /// Writes the result with DatasetWriter::Open(options) (the commit protocol). The
  /// writer is opened at Run(), committed when the run succeeds, aborted otherwise.
  Pipeline& Write(WriteOptions options);
  /// As above with a custom way to open the writer (tests, embedding).
  Pipeline& Write(DatasetWriterOpener opener);

  /// Schema of the chain's output. Calls each stateful factory once.
  arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema() const;

  /// Runs to the writer given to Write(); Invalid if Write() was not called. The
  /// committed manifest gets the statistics under "job". A run whose failed rows are
  /// over RunOptions::max_error_rate or max_errors (see CheckFailedRows) commits
  /// nothing and returns Invalid; `failed_run`, when not null, then receives its
  /// statistics (for reports), and is left unchanged on every other outcome.
  arrow::Result<RunStats> Run(const RunOptions& options = {},
                              RunStats* failed_run = nullptr) const;

  /// Runs and returns the whole output as one table (in input order unless
  /// `options.unordered`); meant for tests and embedding, it holds everything in
  /// memory, so `options.memory_limit` does not limit the engine's pool here (grouped
  /// steps still spill to keep their buckets within it). `stats` may be null.
  arrow::Result<std::shared_ptr<arrow::Table>> Collect(const RunOptions& options = {},
                                                       RunStats* stats = nullptr) const;

  const std::vector<PipelineStep>& steps() const { return steps_; }

 private:
  std::shared_ptr<Source> source_;
  std::vector<PipelineStep> steps_;
  DatasetWriterOpener writer_opener_;
};

}  // namespace dlprep
