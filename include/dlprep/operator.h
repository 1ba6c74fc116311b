#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type_fwd.h>

namespace dlprep {

/// The four operator kinds of dlprep (see DESIGN.md, "Operators"). Every operator is a
/// plain object that can be called on one batch (or one group) without the executor:
/// unit tests, the local executor and a Spark Python worker all call the same methods.
///
/// Thread-safety, per kind:
/// * ScalarOperator and BatchOperator: one instance is shared by every worker, so
///   Compute() / Process() are called concurrently and must be thread-safe (they are
///   const; keep no mutable state, or guard it yourself).
/// * StatefulOperator: one instance per worker, created by a factory; its methods are
///   only ever called from that worker's thread, one at a time.
/// * GroupedOperator: one instance shared by every worker; Apply() / ApplyStream() are
///   called concurrently for different groups and must be thread-safe.

/// Where a stateful operator instance runs. Passed to StatefulOperator::Open().
struct OperatorContext {
  /// Index of the worker that owns the instance, in [0, num_workers).
  int worker_index = 0;
  /// Number of workers of the run (each with its own instance).
  int num_workers = 1;
  /// Threads the operator may use itself (an intra-op thread pool, e.g. libtorch).
  int threads_per_worker = 1;
  /// Returns true once the run is cancelled (Ctrl-C) or failing elsewhere. An operator
  /// whose Process() can block for long (waiting on a server) polls it and returns
  /// Status::Cancelled soon after it turns true. May be empty (never stops); callable
  /// from the worker's thread while the run lasts.
  std::function<bool()> stop_requested;
};

/// Per-row failures reported by StatefulOperator::Process(): the rows of the input batch
/// that could not be processed (a corrupt WAV, a failed HTTP call) and why. The
/// executor counts them, hands them to the run's error sink, and goes on (or fails the
/// job with `fail_on_row_error`). Row indices are 0-based positions in the batch that
/// was passed to Process(). An operator normally leaves failed rows out of its output.
///
/// A value type; not thread-safe. Empty when no row failed.
struct RowErrors {
  std::vector<int64_t> rows;          ///< row index in the input batch, ascending
  std::vector<std::string> messages;  ///< one message per entry of `rows`

  /// Marks `row` of the input batch failed with `message`.
  void Add(int64_t row, std::string message) {
    rows.push_back(row);
    messages.push_back(std::move(message));
  }
  bool empty() const { return rows.empty(); }
  int64_t size() const { return static_cast<int64_t>(rows.size()); }
  void Clear() {
    rows.clear();
    messages.clear();
  }
};

/// Some columns of a batch -> one new column of the same length (a pandas scalar UDF).
/// The executor appends the column, with the field from OutputField(), to the batch.
class ScalarOperator {
 public:
  virtual ~ScalarOperator() = default;

  /// Short name used in statistics and error messages ("label_from_path").
  virtual std::string name() const = 0;

  /// The field of the new column for batches of schema `input`. Fails (TypeError
  /// naming the column) when `input` lacks a column the operator needs. Called once
  /// per run, before any batch.
  virtual arrow::Result<std::shared_ptr<arrow::Field>> OutputField(
      const arrow::Schema& input) const = 0;

  /// The new column for `batch`. It must have exactly `batch.num_rows()` entries (0 for
  /// an empty batch); the executor fails the job, naming the operator, otherwise.
  /// Thread-safe: called concurrently by every worker.
  virtual arrow::Result<std::shared_ptr<arrow::Array>> Compute(
      const arrow::RecordBatch& batch) const = 0;
};

/// Record batch -> record batch of any length, 0 included (Spark's `mapInArrow`).
class BatchOperator {
 public:
  virtual ~BatchOperator() = default;

  /// Short name used in statistics and error messages.
  virtual std::string name() const = 0;

  /// Schema of the batches Process() returns for input of schema `input`. Called once
  /// per run, before any batch.
  virtual arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(
      const arrow::Schema& input) const = 0;

  /// Transforms one batch. Returns a non-null batch of OutputSchema() (field names and
  /// types; metadata is not compared), possibly with 0 rows. `batch` is never null but
  /// may have 0 rows. Thread-safe: called concurrently by every worker.
  virtual arrow::Result<std::shared_ptr<arrow::RecordBatch>> Process(
      const std::shared_ptr<arrow::RecordBatch>& batch) const = 0;
};

/// A batch operator with per-worker state (Spark's scalar-iterator UDF): Open() once
/// (load a model, open a connection), then Process() for every batch the worker gets,
/// across partitions, then Close().
///
/// The executor creates one instance per worker through a StatefulOperatorFactory and
/// calls Open() lazily, just before the worker's first batch, so workers that get no
/// batch never open one. Not thread-safe, and need not be: each instance is used by one
/// thread at a time.
class StatefulOperator {
 public:
  virtual ~StatefulOperator() = default;

  /// Short name used in statistics and error messages.
  virtual std::string name() const = 0;

  /// As BatchOperator::OutputSchema(). Called before Open(), so it must not depend on
  /// what Open() loads.
  virtual arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(
      const arrow::Schema& input) const = 0;

  /// Prepares the instance (the expensive part). Called once, before Process().
  virtual arrow::Status Open(const OperatorContext& context) = 0;

  /// Transforms one batch, as BatchOperator::Process(). Rows that fail on their own
  /// (bad input in that row) are reported in `*row_errors` (never null; empty on entry)
  /// and normally left out of the output; a non-OK Status fails the whole job.
  virtual arrow::Result<std::shared_ptr<arrow::RecordBatch>> Process(
      const std::shared_ptr<arrow::RecordBatch>& batch, RowErrors* row_errors) = 0;

  /// Returns the rows the instance still holds back, or null when it holds none (the
  /// default). An operator may keep rows of a batch for a later call (to batch small
  /// input batches together, as `score` does), returning fewer rows from Process() than
  /// it was given, 0 included; it must emit every row in input order in the end. The
  /// executor calls Flush() after the last batch of every input partition, so held rows
  /// never cross a partition boundary; a direct caller calls it after its last batch.
  /// Returns a batch of OutputSchema(). Rows cannot fail here: per-row failures are
  /// reported by the Process() call that received the row.
  virtual arrow::Result<std::shared_ptr<arrow::RecordBatch>> Flush() { return nullptr; }

  /// Rows the executor gathers before it calls Process(): consecutive batches of one
  /// input partition are concatenated until they hold at least this many rows (the
  /// last call of a partition may get fewer). For operators whose work has a cost per
  /// call or that work in parallel within a call (score_http keeps batch_size x
  /// concurrency rows in flight). Row errors then name rows of the gathered batch. 0
  /// (the default): batches as they come. Read once, when the executor plans the job.
  virtual int64_t min_batch_rows() const { return 0; }

  /// Releases what Open() acquired. Called once after the last batch if Open() was
  /// called (also when the job fails; its error is then ignored).
  virtual arrow::Status Close() = 0;
};

/// Makes a fresh, unopened StatefulOperator. Construction should be cheap (heavy work
/// belongs in Open()): the executor calls the factory once while planning, to learn the
/// name and output schema, and hands that instance to the first worker that needs one;
/// it calls it again for each further worker. Called from any thread, one call at a
/// time.
using StatefulOperatorFactory =
    std::function<arrow::Result<std::unique_ptr<StatefulOperator>>()>;

/// All rows of one key, optionally sorted by a column -> a table (Spark's grouped-map
/// UDF, `applyInArrow`).
///
/// Run it with Pipeline::GroupBy(keys, sort_by).Apply(op): the executor hash-partitions
/// rows by key into buckets (spilling to disk over RunOptions::memory_limit), sorts each
/// bucket and hands each group to Apply(), or, for a group over the group limit
/// (RunOptions::max_group_bytes), to ApplyStream() when supports_streaming().
///
/// Thread-safety: Apply() and ApplyStream() may be called concurrently for different
/// groups; implementations must be thread-safe.
class GroupedOperator {
 public:
  virtual ~GroupedOperator() = default;

  /// Short name used in statistics and error messages.
  virtual std::string name() const = 0;

  /// Columns whose values define a group (int64 and string; several columns form a
  /// composite key). Never empty.
  virtual std::vector<std::string> key_columns() const = 0;

  /// Column the rows of a group are sorted by (ascending, stable) before Apply();
  /// empty: rows keep their input order.
  virtual std::string sort_column() const { return ""; }

  /// Schema of the tables Apply() returns for input of schema `input`.
  virtual arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(
      const arrow::Schema& input) const = 0;

  /// Transforms one whole group (all its rows; never empty). Returns a non-null table
  /// of OutputSchema(), any number of rows.
  virtual arrow::Result<std::shared_ptr<arrow::Table>> Apply(
      const arrow::Table& group) const = 0;

  /// Optional map-side step, run on every input batch in phase 1 (on the workers,
  /// before rows are partitioned, held and spilled): keep only the columns Apply()
  /// reads, encode strings as small codes, convert units, drop rows Apply() would
  /// ignore. Its output must keep the key columns (names and types) and the sort
  /// column (name; its type may change); OutputSchema() and Apply() then see its
  /// output. Statistics show it as a batch stage of its own. Null (the default): none.
  virtual std::shared_ptr<BatchOperator> PreGroup() const { return nullptr; }

  /// Whether ApplyStream() is implemented; groups too large to hold in memory are then
  /// streamed instead of refused.
  virtual bool supports_streaming() const { return false; }

  /// Streaming variant of Apply(): the group arrives as a sequence of batches (sorted
  /// when sort_column() is set) and the output is handed to `emit`, batch by batch, in
  /// order. Default: NotImplemented.
  virtual arrow::Status ApplyStream(
      arrow::RecordBatchReader* group,
      const std::function<arrow::Status(std::shared_ptr<arrow::RecordBatch>)>& emit)
      const {
    return arrow::Status::NotImplemented("grouped operator '", name(),
                                         "' has no streaming variant");
  }
};

}  // namespace dlprep
