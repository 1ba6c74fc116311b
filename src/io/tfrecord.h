#pragma once
// TFRecord framing, compression and tf.train.Example / SequenceExample coding.
// Internal to dlprep_io; the public entry points are in dlprep/source.h and sink.h.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type_fwd.h>

#include "dlprep/sink.h"
#include "dlprep/source.h"

namespace dlprep::io {

/// The tf.train.Feature list that values of an Arrow type go to; the values are the
/// Feature.kind field numbers (bytes_list = 1, float_list = 2, int64_list = 3).
enum class FeatureKind { kBytes = 1, kFloat = 2, kInt64 = 3 };

/// The one Arrow -> tf.train.Feature mapping, shared by the encoder, the decoder and the
/// manifest: integers, bool, timestamp and date -> int64; float32/float64 -> float;
/// string, binary (all widths) and dictionaries of strings -> bytes. Pass a list
/// column's value type. nullopt when the type has no mapping.
std::optional<FeatureKind> FeatureKindOf(const arrow::DataType& type);

/// Reads framed records from one TFRecord file (optionally GZIP/ZLIB compressed),
/// checking both CRCs of every record. Not thread-safe.
class RecordReader {
 public:
  virtual ~RecordReader() = default;

  /// Opens `path`. kAuto detects compression from the magic bytes; an explicit
  /// compression that does not match the file is an error that says which one it is.
  static arrow::Result<std::unique_ptr<RecordReader>> Open(const std::string& path,
                                                           TfRecordCompression compression);

  /// Reads the next record into `*record` (valid until the next call). Returns false at
  /// a clean end of file. A corrupt length, length CRC, data CRC or a truncated record
  /// is an IOError naming the file and the byte offset (in the uncompressed stream) of
  /// the record. With `skip_corrupt` the caller may call SkipCorrupt() and go on.
  virtual arrow::Result<bool> Next(std::string_view* record) = 0;

  /// Byte offset of the record returned last (uncompressed stream).
  virtual int64_t record_offset() const = 0;

  /// After Next() failed with a data CRC error, moves past that record so reading can
  /// continue. Returns false when the stream cannot be resynchronised (corrupt length,
  /// truncation), in which case the rest of the file is lost and must be reported.
  virtual arrow::Result<bool> SkipCorrupt() = 0;

  /// After SkipCorrupt() returned false: the bytes of the file after the last record
  /// read (compressed bytes for a compressed file), which no record can be read from.
  virtual int64_t lost_bytes() const = 0;

  virtual const std::string& path() const = 0;
};

/// Writes framed records to one file, compressing when asked. Not thread-safe.
class RecordWriter {
 public:
  virtual ~RecordWriter() = default;
  /// Creates (truncates) `path`. kAuto is treated as kNone.
  static arrow::Result<std::unique_ptr<RecordWriter>> Open(const std::string& path,
                                                           TfRecordCompression compression);
  /// Appends one record (frames it: length, masked CRC of length, data, masked CRC).
  virtual arrow::Status Write(std::string_view record) = 0;
  /// Appends bytes that are already framed records (from ExampleEncoder).
  virtual arrow::Status WriteFramed(std::string_view framed) = 0;
  virtual arrow::Status Close() = 0;
  /// Bytes handed to the file so far (compressed size when compressed).
  virtual int64_t bytes_written() const = 0;
};

/// Encodes the rows of record batches as serialized tf.train.Example (or
/// SequenceExample) protobuf messages, straight from Arrow buffers (no message objects).
/// Features appear in the order Python protobuf's deterministic serialization writes
/// map keys (bytewise; of two keys where one is a prefix of the other, the longer
/// first), so bytes equal `tf.train.Example.SerializeToString(deterministic=True)`.
/// A null value omits the feature for that row. Not thread-safe; one per writer.
class ExampleEncoder {
 public:
  virtual ~ExampleEncoder() = default;
  /// Fails with TypeError naming the column when a column has no TFRecord mapping.
  static arrow::Result<std::unique_ptr<ExampleEncoder>> Make(
      std::shared_ptr<arrow::Schema> schema, RecordType record_type);
  /// Appends framed records (length, CRC, message, CRC) for rows [offset, offset +
  /// length) of `batch` to `out`.
  virtual arrow::Status EncodeFramed(const arrow::RecordBatch& batch, int64_t offset,
                                     int64_t length, std::string* out) = 0;
  /// Encodes one row as an unframed message (tests, tools).
  virtual arrow::Status EncodeRow(const arrow::RecordBatch& batch, int64_t row,
                                  std::string* out) = 0;
};

/// Decodes serialized tf.train.Example / SequenceExample messages into Arrow arrays
/// of a given schema, as protobuf parses them (tf.train.Example.FromString): repeated
/// values that occur in several runs concatenate, packed or not; a message that occurs
/// twice merges (Example.features, a map entry's value); a value list of another kind
/// replaces the one before (Feature.kind is a oneof); the last map entry of a key wins.
/// A missing feature is null; a feature of the wrong kind or a scalar column whose
/// feature does not have exactly one value is an Invalid error naming the feature, as
/// is a record that does not parse or has a feature key that is not UTF-8. The
/// features of keys that are not columns are not parsed. Not thread-safe.
class ExampleDecoder {
 public:
  virtual ~ExampleDecoder() = default;
  static arrow::Result<std::unique_ptr<ExampleDecoder>> Make(
      std::shared_ptr<arrow::Schema> schema, RecordType record_type);
  /// Appends one record as one row. On error nothing is appended.
  virtual arrow::Status Append(std::string_view record) = 0;
  virtual int64_t num_rows() const = 0;
  /// Returns the rows appended so far and resets.
  virtual arrow::Result<std::shared_ptr<arrow::RecordBatch>> Flush() = 0;
};

/// Infers an Arrow schema from sample records one at a time, as InferExampleSchema()
/// does. Add() refuses a record that protobuf would not parse (a key that is not UTF-8
/// among them) or whose features conflict with those of earlier records (Invalid,
/// naming the feature), and then leaves the schema as it was, so a caller may skip the
/// record. Not thread-safe.
class ExampleSchemaInferer {
 public:
  explicit ExampleSchemaInferer(RecordType record_type);
  ~ExampleSchemaInferer();
  arrow::Status Add(std::string_view record);
  /// The schema of the records added so far (no columns when none had features).
  std::shared_ptr<arrow::Schema> Finish() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Infers an Arrow schema from sample records: each feature becomes a nullable column
/// (int64, float32, string or binary when some value is not UTF-8); a feature that
/// has exactly one value in every sampled record where it appears is a scalar, else a
/// list. SequenceExample feature lists become list<list<...>>. Columns are sorted by
/// name. Records are read as protobuf parses them: a value list or message that occurs
/// twice merges, the last map entry of a key wins. Invalid ("record N: ...") when a
/// record does not parse, or a feature changes kind.
arrow::Result<std::shared_ptr<arrow::Schema>> InferExampleSchema(
    const std::vector<std::string>& records, RecordType record_type);

class FileWriter;

/// Opens a TFRecord file writer (compression and record type from `options`) that
/// encodes batches with ExampleEncoder and writes them with RecordWriter.
arrow::Result<std::unique_ptr<FileWriter>> MakeTfRecordFileWriter(
    const std::string& path, const std::shared_ptr<arrow::Schema>& schema,
    const WriteOptions& options);

}  // namespace dlprep::io
