#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type_fwd.h>

namespace dlprep {

/// A dataset split into partitions that can be read independently (a file, a Parquet
/// row group, a range of files). Partition order is deterministic: the same inputs and
/// options always give the same partitions with the same rows in the same order.
///
/// Thread-safety: every const method may be called concurrently, including
/// OpenPartition() for different (or equal) partitions.
class Source {
 public:
  virtual ~Source() = default;

  /// The schema every batch of every partition has.
  virtual std::shared_ptr<arrow::Schema> schema() const = 0;

  /// Number of partitions; 0 for an empty input.
  virtual int64_t num_partitions() const = 0;

  /// A short name for partition `i` (a file path, "files 0-999 of data/**/*.wav")
  /// used in progress lines and error messages.
  virtual std::string partition_name(int64_t i) const = 0;

  /// Opens partition `i` for reading. Errors while reading name the file and,
  /// where it applies, the byte offset or row.
  virtual arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> OpenPartition(
      int64_t i) const = 0;

  /// Records skipped so far because they were corrupt and the source was asked to
  /// skip them (TFRecord `skip_corrupt`); 0 for sources that never skip.
  virtual int64_t skipped_records() const { return 0; }

  /// Messages for the first skipped records (at most 100), each naming file and offset.
  virtual std::vector<std::string> skipped_messages() const { return {}; }

  /// Total bytes of the input files when known up front (for progress ETA), else -1.
  virtual int64_t total_bytes() const { return -1; }

  /// Total rows of all partitions when known without reading them (Parquet metadata),
  /// else -1. Used for the progress line's ETA.
  virtual int64_t total_rows() const { return -1; }
};

/// Options of the `binary_files` source, which has Spark's `binaryFile` schema:
/// `path` (string), `modificationTime` (timestamp[us, UTC]), `length` (int64),
/// `content` (binary).
struct BinaryFilesOptions {
  /// Files, directories or glob patterns (`*`, `?`, `[...]`, and `**` for any number
  /// of directories). A directory lists its files (all levels with `recursive`).
  std::vector<std::string> paths;
  /// Glob matched against each file's name only (Spark's `pathGlobFilter`); empty: all.
  std::string name_filter;
  /// Walk directories given in `paths` recursively (Spark's `recursiveFileLookup`).
  bool recursive = false;
  /// When false, `content` is null and files are never opened (listing only).
  bool read_content = true;
  /// Files larger than this are refused with an error naming the file; Spark's own
  /// limit is 2 GiB - 1.
  int64_t max_file_size = (int64_t{1} << 31) - 1;
  /// A partition closes at this many files or this many bytes, whichever comes first.
  int64_t files_per_partition = 1000;
  int64_t bytes_per_partition = int64_t{256} << 20;
  /// Rows per record batch inside a partition (also capped by bytes_per_batch).
  int64_t batch_rows = 256;
  int64_t bytes_per_batch = int64_t{64} << 20;
};

/// Lists the files of `options.paths` (sorted by path) and returns a source over them.
/// Fails when a pattern matches nothing or a file exceeds `max_file_size`.
arrow::Result<std::shared_ptr<Source>> OpenBinaryFiles(const BinaryFilesOptions& options);

/// Whole local files read by ReadFileContents.
struct FileContents {
  /// binary, one value per path read (paths[begin, end)); null where the path is null
  /// or the file could not be read.
  std::shared_ptr<arrow::Array> content;
  /// One past the last path read.
  int64_t end = 0;
  /// (index into paths, why) for each file that could not be read, in order; `why` is
  /// the system's message (strerror), e.g. "No such file or directory".
  std::vector<std::pair<int64_t, std::string>> errors;
};

/// Reads the files named in paths[begin, ...) whole, in order, until every path is read
/// or the next file would take the content past `max_bytes` (at least one file is
/// read). Only regular files (and symbolic links to them) are read; a directory fails
/// with "Is a directory", any other kind with "not a regular file", and a file over
/// 2 GiB - 1 bytes (an Arrow binary value's limit) is refused. How `dlprep.spark`
/// tasks read the files a `binaryFile` DataFrame names, without the JVM reading them.
arrow::Result<FileContents> ReadFileContents(
    const std::vector<std::optional<std::string>>& paths, int64_t begin,
    int64_t max_bytes);

/// Formats that Arrow Dataset reads for us.
enum class TableFormat { kAuto, kParquet, kCsv, kJsonLines };

/// Options of the table source (Parquet, CSV, JSON lines) through Arrow Dataset.
struct TableSourceOptions {
  /// Files or directories (directories are walked recursively; files starting with
  /// `_` or `.` are ignored, as Spark and Arrow do).
  std::vector<std::string> paths;
  TableFormat format = TableFormat::kAuto;  ///< kAuto: from the file extensions
  /// Columns to read, in this order; empty: all columns.
  std::vector<std::string> columns;
  /// Discover hive-style `key=value` directories as partition columns.
  bool hive_partitioning = true;
  int64_t batch_rows = 16 * 1024;
};

/// Opens Parquet, CSV or JSON-lines data; one partition per file, except that up to 64
/// Parquet files are split into one partition per row group (their footers are read
/// when opening, so a corrupt one fails here, naming it).
arrow::Result<std::shared_ptr<Source>> OpenTableSource(const TableSourceOptions& options);

/// Compression of a TFRecord file, as TensorFlow names it.
enum class TfRecordCompression { kAuto, kNone, kGzip, kZlib };

/// Which protobuf message each record holds.
enum class RecordType { kExample, kSequenceExample };

/// Options of the TFRecord source.
struct TfRecordSourceOptions {
  /// Files, directories or globs. A directory written by dlprep is read with the exact
  /// Arrow schema from its _manifest.json.
  std::vector<std::string> paths;
  /// kAuto detects GZIP and ZLIB from the first bytes of each file.
  TfRecordCompression compression = TfRecordCompression::kAuto;
  RecordType record_type = RecordType::kExample;
  /// Explicit output schema; null: the manifest's, else inferred from the first
  /// `infer_records` records.
  std::shared_ptr<arrow::Schema> schema;
  int64_t infer_records = 1000;
  /// Count, report and skip corrupt records instead of failing.
  bool skip_corrupt = false;
  /// Columns to keep, in this order; empty: all.
  std::vector<std::string> columns;
  int64_t batch_rows = 4096;
};

arrow::Result<std::shared_ptr<Source>> OpenTfRecordSource(
    const TfRecordSourceOptions& options);

/// Names used by the CLI and pipeline files: "auto", "none", "gzip", "zlib" (GZIP and
/// ZLIB as TensorFlow spells them too); "example", "sequence_example"; "parquet",
/// "csv", "json". nullopt for any other name.
std::optional<TfRecordCompression> TfRecordCompressionFromName(std::string_view name);
std::optional<RecordType> RecordTypeFromName(std::string_view name);
std::optional<TableFormat> TableFormatFromName(std::string_view name);

}  // namespace dlprep
