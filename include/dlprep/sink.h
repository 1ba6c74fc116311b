#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type_fwd.h>

#include "dlprep/source.h"

namespace dlprep {

enum class OutputFormat { kTfRecord, kParquet, kCsv };

/// Options shared by every sink.
struct WriteOptions {
  /// The folder readers look in. It must not exist or be empty unless `overwrite`.
  std::string output_dir;
  OutputFormat format = OutputFormat::kTfRecord;
  /// TFRecord only (kAuto means none when writing).
  TfRecordCompression compression = TfRecordCompression::kNone;
  /// TFRecord only: with kSequenceExample, `list<list<...>>` columns become feature
  /// lists and every other column a context feature.
  RecordType record_type = RecordType::kExample;
  /// Exactly this many files, batches dealt round-robin; 0: one file per input
  /// partition (rolled by the limits below).
  int64_t shards = 0;
  /// Roll to a new file after this many rows / bytes; 0: no limit. A file can exceed
  /// max_bytes_per_file by at most one slice of `rows_per_slice` rows.
  int64_t max_rows_per_file = 0;
  int64_t max_bytes_per_file = 0;
  int64_t rows_per_slice = 1024;
  /// Replace an existing non-empty output folder (atomically, at commit).
  bool overwrite = false;
};

/// Per-file entry of the manifest.
struct WrittenFile {
  std::string name;  ///< relative to the output folder
  int64_t rows = 0;
  int64_t bytes = 0;
};

/// Summary of a committed dataset.
struct WriteResult {
  std::vector<WrittenFile> files;
  int64_t rows = 0;
  int64_t bytes = 0;
};

/// What the `_manifest.json` of a committed dataset folder `dir` lists: each file (its
/// name relative to `dir`, rows and bytes) and the totals. IOError when the manifest
/// cannot be read; Invalid, naming it, when it is not a dlprep manifest (an entry
/// without a name, integer rows and bytes, or whose name leaves the folder).
arrow::Result<WriteResult> ReadManifestFiles(const std::string& dir);

/// Writes a dataset with the commit protocol: every shard is written into a hidden
/// attempt folder beside the output folder (`.<name>.dlprep-attempt-<uuid>`), and
/// Commit() writes `_manifest.json` and `_SUCCESS` into it and then renames it onto
/// the output folder in one atomic step. Readers never see a partial dataset; a job
/// that dies leaves only the hidden attempt folder, which it names on stderr.
///
/// Shards are named `part-<partition>-<uuid>-c<file>.<ext>` (Spark's convention).
///
/// Thread-safety: not thread-safe; one sink stage calls it. Batches of one partition
/// must arrive in order; partitions may interleave.
class DatasetWriter {
 public:
  virtual ~DatasetWriter() = default;

  /// Validates options and schema (every column must be writable in the format, or a
  /// TypeError names the column) and creates the attempt folder.
  static arrow::Result<std::unique_ptr<DatasetWriter>> Open(
      const WriteOptions& options, std::shared_ptr<arrow::Schema> schema);

  /// Writes `batch`, which belongs to input partition `partition`.
  virtual arrow::Status Write(int64_t partition,
                              const std::shared_ptr<arrow::RecordBatch>& batch) = 0;

  /// Closes the files of `partition` (optional; Commit closes everything).
  virtual arrow::Status FinishPartition(int64_t partition) = 0;

  /// Closes all files, writes the manifest and `_SUCCESS`, and moves the dataset
  /// into place. `extra_manifest_json` (a JSON object, may be empty) is merged into
  /// the manifest under "job".
  virtual arrow::Result<WriteResult> Commit(const std::string& extra_manifest_json = "") = 0;

  /// Deletes the attempt folder; the output folder is left as it was. Idempotent;
  /// also run by the destructor when neither Commit nor Abort was called.
  virtual void Abort() = 0;

  /// Rows and bytes written so far (for progress).
  virtual int64_t rows_written() const = 0;
  virtual int64_t bytes_written() const = 0;

  /// Path of the hidden attempt folder.
  virtual const std::string& attempt_dir() const = 0;
};

}  // namespace dlprep
