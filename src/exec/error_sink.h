#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>

#include "dlprep/pipeline.h"

namespace dlprep::exec {

/// The `--errors PATH` sink: keeps every row an operator reported failed, with its
/// message, as JSON lines ({"operator", "partition", "batch_first_row", "row_in_batch",
/// "error", "row": {column: value}}). String values are kept whole; binary values are
/// summarised as "<N bytes>" and other values are written as Arrow prints them.
///
/// Lines are sorted by (partition, batch_first_row, row_in_batch) so the file is the
/// same whatever the worker count. The file appears at `path` only on Commit() (written
/// to a temporary name and renamed); nothing is written when the run fails.
///
/// Thread-safety: Write() may be called from any thread.
class JsonLinesErrorSink : public ErrorSink {
 public:
  explicit JsonLinesErrorSink(std::string path) : path_(std::move(path)) {}

  arrow::Status Write(const FailedRows& failed) override;

  /// Writes the file; returns the number of rows it holds.
  arrow::Result<int64_t> Commit();

 private:
  struct Entry {
    int64_t partition;
    int64_t first_row;
    int64_t row;
    std::string line;
  };
  std::string path_;
  std::mutex mu_;
  std::vector<Entry> entries_;  // guarded by mu_
};

}  // namespace dlprep::exec
