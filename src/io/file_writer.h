#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type_fwd.h>

#include "dlprep/sink.h"

namespace dlprep::io {

/// Writes record batches into one file of one format. Not thread-safe.
class FileWriter {
 public:
  virtual ~FileWriter() = default;
  virtual arrow::Status Write(const arrow::RecordBatch& batch) = 0;
  /// Flushes and closes the file; the file is complete after this returns OK.
  virtual arrow::Status Close() = 0;
  /// Bytes on disk so far (approximate until Close for buffered formats).
  virtual int64_t bytes_written() const = 0;
};

/// Opens a writer for `path` in `options.format` (compression and record type from
/// `options`). TypeError names a column that the format cannot hold.
arrow::Result<std::unique_ptr<FileWriter>> OpenFileWriter(
    const std::string& path, const std::shared_ptr<arrow::Schema>& schema,
    const WriteOptions& options);

/// File extension for the format and compression, e.g. "tfrecord.gz", "parquet".
std::string FileExtension(const WriteOptions& options);

/// Checks, before anything is written, that every column of `schema` can be written
/// in `options.format` (and its record type); a TypeError names the first column that
/// cannot, says why and suggests a format that can hold it.
arrow::Status CheckWritable(const arrow::Schema& schema, const WriteOptions& options);

/// Name of the compression codec the Parquet writer uses, as Arrow reports it
/// (e.g. "uncompressed", "snappy"); recorded in the manifest.
std::string ParquetCompressionName();

}  // namespace dlprep::io
