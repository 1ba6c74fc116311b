#pragma once

// Grouped execution (GroupedOperator): phase 1 hash-partitions the rows of the steps
// before the grouped step into buckets, counting held bytes against
// RunOptions::memory_limit and spilling the largest buckets to Arrow IPC stream files;
// phase 2 presents the buckets as the partitions of a Source, whose reader loads a
// bucket, sorts it by (keys, sort column, input order) and hands each group to the
// operator. The Executor runs phase 1 with the steps before the grouped step and phase 2
// as the source of the steps after it.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type_fwd.h>

#include "dlprep/operator.h"
#include "dlprep/pipeline.h"
#include "dlprep/source.h"

namespace dlprep::exec {

class BatchSink;
class BucketStore;
class GroupedSource;

/// Name of the hidden column phase 1 appends to every row: partition << 40 | row of
/// the partition (counted at the grouped step's input). It makes the sort total, so the
/// order of equal (key, sort value) rows is their input order whatever the worker
/// count. Input schemas may not use this name.
inline constexpr char kRowIdColumn[] = "__dlprep_row_id";

/// A 64-bit hash of the key of each row of `batch` (columns `key_indices`), a stable
/// function of the key values (not of batch boundaries, worker count or the process).
/// Nulls hash to a fixed value of their own. `hashes` is resized to the row count.
/// TypeError naming the column for key types other than integers and string/binary.
arrow::Status HashKeys(const arrow::RecordBatch& batch, const std::vector<int>& key_indices,
                       std::vector<uint64_t>* hashes);

/// Removes the spill folders in `spill_dir` (empty: $TMPDIR, else /tmp) that runs killed
/// outright (SIGKILL, the OOM killer, a power cut) left behind, and returns their paths,
/// sorted. A spill folder is "dlprep-spill-<pid>-<uuid>"; it is removed only when no
/// process <pid> exists (kill(pid, 0) fails with ESRCH) and nobody holds the lock file
/// in it (a live run does, whatever PID namespace it is in). This process's folders,
/// other users' live processes' (EPERM), names of any other form (an older dlprep's
/// "dlprep-spill-<uuid>"), symlinks and files are left alone, and so are folders that
/// cannot be removed (another user's). A missing or unreadable `spill_dir` has nothing
/// to remove. Never fails; safe to call from several processes at once.
std::vector<std::string> RemoveStaleSpillFolders(const std::string& spill_dir);

/// One grouped step of a plan, for one input schema. Planning validates the keys and the
/// sort column; Begin()/End() bracket each run (phase 1 sink, phase 2 source, spill
/// folder).
///
/// Thread-safety: Make(), Begin(), End() and the stats accessors from the thread that
/// runs the Executor; the phase 1 sink and the phase 2 source are called from workers
/// as their interfaces document.
class GroupedStage {
 public:
  ~GroupedStage();

  /// Plans `step` (kind kGrouped) for input of schema `input`: resolves keys and sort
  /// column (the pipeline's or the operator's; Invalid naming both when they differ),
  /// checks their types (TypeError naming the column) and asks the operator for its
  /// output schema.
  static arrow::Result<std::unique_ptr<GroupedStage>> Make(
      const PipelineStep& step, const std::shared_ptr<arrow::Schema>& input);

  const std::string& name() const;
  const std::shared_ptr<arrow::Schema>& output_schema() const;

  /// The phase 2 source: one partition per bucket, each yielding the operator's output
  /// for the groups of that bucket. Readable only between Begin() and End().
  std::shared_ptr<Source> source() const;

  /// Prepares a run with `options` (memory limit, spill folder, buckets). Fails on bad
  /// options, naming them.
  arrow::Status Begin(const RunOptions& options);

  /// The phase 1 sink (concurrent: Write() runs on the workers). Valid after Begin().
  BatchSink* partition_sink();

  /// Ends phase 1: later reads of the source see every row.
  void FinishPartitioning();

  /// Ends the run: drops every bucket and removes the spill folder. Safe to call when
  /// Begin() failed or was never called; returns the removal error, if any.
  arrow::Status End();

  /// Adds this run's memory and spill counters to `stats`, and the groups counted to
  /// `stage`.
  void FillStats(RunStats* stats, StageStats* stage) const;

  /// The resolved step (implementation detail, public for the .cc's helpers only).
  struct Plan;

 private:
  GroupedStage();
  std::shared_ptr<Plan> plan_;
  std::shared_ptr<BucketStore> store_;
  std::unique_ptr<BatchSink> sink_;
  std::shared_ptr<GroupedSource> source_;
};

}  // namespace dlprep::exec
