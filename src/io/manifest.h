#pragma once
// The _manifest.json that DatasetWriter::Commit writes beside the shards, and the
// column statistics the TensorFlow feature spec in it is computed from.

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type_fwd.h>

#include "dlprep/sink.h"

namespace dlprep::io {

/// Version written as "dlprep_version".
inline constexpr char kDlprepVersion[] = "0.1.0";

/// Field metadata key holding a tensor shape as a JSON array, e.g. "[101,64]".
inline constexpr char kShapeMetadataKey[] = "dlprep.shape";

/// Statistics of one column over every written row, gathered batch by batch from
/// Arrow buffers (no per-row virtual calls).
struct ColumnStats {
  /// Null rows, plus (for list columns) null steps and null values inside the lists.
  int64_t null_count = 0;
  /// Number of values of each non-null row of a list column (all nesting levels
  /// flattened); for a sequence column, of each non-null step.
  int64_t min_length = std::numeric_limits<int64_t>::max();
  int64_t max_length = -1;
  /// How many lengths went into min/max (0 for scalar columns).
  int64_t lengths_seen = 0;
};

/// True for `list<list<...>>` columns written as SequenceExample feature lists.
bool IsSequenceColumn(const arrow::DataType& type, RecordType record_type);

/// Adds the statistics of `column` (a whole column of a batch, or a slice of one) to
/// `*stats`. `sequence` as IsSequenceColumn() says for the column's type.
arrow::Status UpdateColumnStats(const arrow::Array& column, bool sequence,
                                ColumnStats* stats);

/// The tf.train.Feature kind a type is written as: "int64" (integers, bool,
/// timestamps, dates), "float32" (floating point) or "string" (string, binary);
/// list types map by their innermost value type. TypeError (naming the type) for
/// types with no mapping.
arrow::Result<std::string> FeatureDtype(const arrow::DataType& type);

/// The shape in `field`'s `dlprep.shape` metadata; nullopt when absent. Invalid
/// (naming the column and the key) when it is not a JSON array of integers >= -1.
arrow::Result<std::optional<std::vector<int64_t>>> ShapeFromMetadata(
    const arrow::Field& field);

/// Everything a manifest is built from.
struct ManifestInfo {
  WriteOptions options;
  std::shared_ptr<arrow::Schema> schema;
  /// Files sorted by name, with their real sizes; rows and bytes are their sums.
  WriteResult result;
  /// One entry per schema field (used for TFRecord feature specs only).
  std::vector<ColumnStats> stats;
  /// Parquet only: the codec the writer used.
  std::string parquet_compression;
  /// A JSON object (or empty) stored under "job".
  std::string extra_json;
};

/// Builds the pretty-printed _manifest.json text: dlprep_version, format, compression
/// (TFRecord: none/gzip/zlib; Parquet: the codec), record_type (TFRecord), rows,
/// bytes, files, schema, arrow_schema (base64 of the Arrow IPC schema message),
/// features (TFRecord: {"dtype", "shape", "fixed_length", "sequence"} per column) and
/// job. Invalid when `extra_json` is not a JSON object.
arrow::Result<std::string> BuildManifestJson(const ManifestInfo& info);

/// Reads the exact Arrow schema stored in `<dir>/_manifest.json` ("arrow_schema").
/// IOError when the file cannot be read, Invalid (naming the file) when it is not a
/// dlprep manifest.
arrow::Result<std::shared_ptr<arrow::Schema>> ReadManifestSchema(const std::string& dir);

}  // namespace dlprep::io
