#include "io/file_writer.h"

#include <algorithm>
#include <limits>

#include <arrow/csv/writer.h>
#include <arrow/io/file.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/writer.h>
#include <arrow/record_batch.h>
#include <arrow/type.h>
#include <arrow/type_traits.h>
#include <arrow/util/byte_size.h>
#include <arrow/util/compression.h>
#include <parquet/arrow/schema.h>
#include <parquet/arrow/writer.h>
#include <parquet/properties.h>

#include "core/memory.h"
#include "io/manifest.h"
#include "io/tfrecord.h"

namespace dlprep::io {
namespace {

// Buffered Parquet row groups are flushed at this many rows or (in-memory) bytes, so a
// file's memory stays bounded whatever the batch sizes.
constexpr int64_t kRowGroupRows = int64_t{1} << 20;
constexpr int64_t kRowGroupBytes = int64_t{128} << 20;

std::shared_ptr<parquet::ArrowWriterProperties> ParquetArrowProperties() {
  // The Arrow schema goes into the file so readers get back the exact types
  // (timestamp time zones, large types, field metadata).
  return parquet::ArrowWriterProperties::Builder().store_schema()->build();
}

parquet::WriterProperties::Builder BaseParquetProperties() {
  parquet::WriterProperties::Builder builder;
  // Encoded pages of the buffered row group count against the run's memory budget.
  builder.memory_pool(EnginePool());
  // Row groups are cut by ParquetWriter itself (rows and bytes), not inside a batch.
  builder.max_row_group_length(std::numeric_limits<int64_t>::max());
  // Snappy, as pyarrow and Spark write by default: fast, and smaller than plain.
  builder.compression(arrow::Compression::SNAPPY);
  return builder;
}

// Writer properties for `schema`: dictionary encoding (Arrow's default for every
// column) is turned off for floating-point leaf columns, at any depth of lists and
// structs. Features and spectrograms rarely repeat a value, so the dictionary only
// costs: it roughly doubled the CPU time of writing `list<float32>` columns and made
// the files larger, before Parquet fell back to plain encoding anyway. Strings,
// integers and the rest keep it.
arrow::Result<std::shared_ptr<parquet::WriterProperties>> ParquetProperties(
    const arrow::Schema& schema) {
  parquet::WriterProperties::Builder builder = BaseParquetProperties();
  std::shared_ptr<parquet::SchemaDescriptor> descriptor;
  ARROW_RETURN_NOT_OK(parquet::arrow::ToParquetSchema(
      &schema, *builder.build(), *ParquetArrowProperties(), &descriptor));
  for (int i = 0; i < descriptor->num_columns(); ++i) {
    const parquet::ColumnDescriptor* column = descriptor->Column(i);
    const bool is_float16 = column->logical_type() != nullptr &&
                            column->logical_type()->is_float16();
    if (column->physical_type() == parquet::Type::FLOAT ||
        column->physical_type() == parquet::Type::DOUBLE || is_float16) {
      builder.disable_dictionary(column->path());
    }
  }
  return builder.build();
}

arrow::Status WithPath(const arrow::Status& st, const std::string& path) {
  if (st.ok()) return st;
  return st.WithMessage("writing '", path, "': ", st.message());
}

class ParquetWriter : public FileWriter {
 public:
  static arrow::Result<std::unique_ptr<FileWriter>> Open(
      const std::string& path, const std::shared_ptr<arrow::Schema>& schema) {
    auto out = std::unique_ptr<ParquetWriter>(new ParquetWriter(path));
    ARROW_ASSIGN_OR_RAISE(out->sink_, arrow::io::FileOutputStream::Open(path));
    auto properties = ParquetProperties(*schema);
    ARROW_RETURN_NOT_OK(WithPath(properties.status(), path));
    auto writer = parquet::arrow::FileWriter::Open(*schema, EnginePool(),
                                                   out->sink_, *properties,
                                                   ParquetArrowProperties());
    ARROW_RETURN_NOT_OK(WithPath(writer.status(), path));
    out->writer_ = std::move(*writer);
    return out;
  }

  ~ParquetWriter() override {
    // Open() may have failed half way; a writer that was not closed is closed quietly.
    if (!closed_ && writer_) (void)writer_->Close();
    if (!closed_ && sink_) (void)sink_->Close();
  }

  arrow::Status Write(const arrow::RecordBatch& batch) override {
    if (batch.num_rows() == 0) return arrow::Status::OK();
    ARROW_RETURN_NOT_OK(WithPath(writer_->WriteRecordBatch(batch), path_));
    ARROW_ASSIGN_OR_RAISE(int64_t size, arrow::util::ReferencedBufferSize(batch));
    pending_rows_ += batch.num_rows();
    pending_bytes_ += size;
    // Under a memory limit the buffered row group (encoded pages, held until the row
    // group is closed) takes at most an eighth of it, counted in its in-memory size.
    const int64_t limit = EnginePool()->limit();
    const int64_t max_bytes =
        limit > 0 ? std::min(kRowGroupBytes, std::max<int64_t>(limit / 8, 1))
                  : kRowGroupBytes;
    if (pending_rows_ >= kRowGroupRows || pending_bytes_ >= max_bytes) {
      ARROW_RETURN_NOT_OK(WithPath(writer_->NewBufferedRowGroup(), path_));
      pending_rows_ = pending_bytes_ = 0;
    }
    return arrow::Status::OK();
  }

  arrow::Status Close() override {
    if (closed_) return arrow::Status::OK();
    closed_ = true;
    ARROW_RETURN_NOT_OK(WithPath(writer_->Close(), path_));
    auto tell = sink_->Tell();
    if (tell.ok()) flushed_bytes_ = *tell;
    pending_bytes_ = 0;
    return WithPath(sink_->Close(), path_);
  }

  /// Bytes flushed to the file plus the in-memory size of the buffered row group
  /// (an over-estimate of what it will take once encoded).
  int64_t bytes_written() const override {
    if (closed_) return flushed_bytes_;
    auto tell = sink_->Tell();
    return (tell.ok() ? *tell : 0) + pending_bytes_;
  }

 private:
  explicit ParquetWriter(std::string path) : path_(std::move(path)) {}

  std::string path_;
  std::shared_ptr<arrow::io::FileOutputStream> sink_;
  std::unique_ptr<parquet::arrow::FileWriter> writer_;
  int64_t pending_rows_ = 0;
  int64_t pending_bytes_ = 0;
  int64_t flushed_bytes_ = 0;
  bool closed_ = false;
};

class CsvWriter : public FileWriter {
 public:
  static arrow::Result<std::unique_ptr<FileWriter>> Open(
      const std::string& path, const std::shared_ptr<arrow::Schema>& schema) {
    auto out = std::unique_ptr<CsvWriter>(new CsvWriter(path));
    ARROW_ASSIGN_OR_RAISE(out->sink_, arrow::io::FileOutputStream::Open(path));
    auto writer = arrow::csv::MakeCSVWriter(out->sink_, schema);
    ARROW_RETURN_NOT_OK(WithPath(writer.status(), path));
    out->writer_ = std::move(*writer);
    return out;
  }

  ~CsvWriter() override {
    // Open() may have failed half way; a writer that was not closed is closed quietly.
    if (!closed_ && writer_) (void)writer_->Close();
    if (!closed_ && sink_) (void)sink_->Close();
  }

  arrow::Status Write(const arrow::RecordBatch& batch) override {
    return WithPath(writer_->WriteRecordBatch(batch), path_);
  }

  arrow::Status Close() override {
    if (closed_) return arrow::Status::OK();
    closed_ = true;
    ARROW_RETURN_NOT_OK(WithPath(writer_->Close(), path_));
    auto tell = sink_->Tell();
    if (tell.ok()) final_bytes_ = *tell;
    return WithPath(sink_->Close(), path_);
  }

  /// Exact: the CSV writer hands every batch to the (unbuffered) file at once.
  int64_t bytes_written() const override {
    if (closed_) return final_bytes_;
    auto tell = sink_->Tell();
    return tell.ok() ? *tell : 0;
  }

 private:
  explicit CsvWriter(std::string path) : path_(std::move(path)) {}

  std::string path_;
  std::shared_ptr<arrow::io::FileOutputStream> sink_;
  std::shared_ptr<arrow::ipc::RecordBatchWriter> writer_;
  int64_t final_bytes_ = 0;
  bool closed_ = false;
};

arrow::Status CheckCsvField(const std::shared_ptr<arrow::Field>& field) {
  const arrow::DataType& type = *field->type();
  if (arrow::is_nested(type.id())) {
    return arrow::Status::TypeError(
        "column '", field->name(), "' has type ", type.ToString(),
        ", which CSV cannot hold (CSV has no list or nested columns); write parquet or "
        "tfrecord instead (--format)");
  }
  // Anything else the Arrow CSV writer cannot format is refused when it is created.
  ARROW_ASSIGN_OR_RAISE(auto probe, arrow::io::BufferOutputStream::Create());
  auto writer = arrow::csv::MakeCSVWriter(probe, arrow::schema({field}));
  if (!writer.ok()) {
    return arrow::Status::TypeError(
        "column '", field->name(), "' has type ", type.ToString(),
        ", which CSV cannot hold: ", writer.status().message(),
        "; write parquet instead (--format)");
  }
  return (*writer)->Close();
}

arrow::Status CheckParquetField(const std::shared_ptr<arrow::Field>& field) {
  std::shared_ptr<parquet::SchemaDescriptor> descr;
  auto single = arrow::schema({field});
  arrow::Status st = parquet::arrow::ToParquetSchema(
      single.get(), *BaseParquetProperties().build(), *ParquetArrowProperties(), &descr);
  if (!st.ok()) {
    return arrow::Status::TypeError("column '", field->name(), "' has type ",
                                    field->type()->ToString(),
                                    ", which Parquet cannot hold: ", st.message());
  }
  return arrow::Status::OK();
}

}  // namespace

std::string FileExtension(const WriteOptions& options) {
  switch (options.format) {
    case OutputFormat::kParquet:
      return "parquet";
    case OutputFormat::kCsv:
      return "csv";
    case OutputFormat::kTfRecord:
      switch (options.compression) {
        case TfRecordCompression::kGzip:
          return "tfrecord.gz";
        case TfRecordCompression::kZlib:
          return "tfrecord.zz";
        default:
          return "tfrecord";
      }
  }
  return "out";
}

std::string ParquetCompressionName() {
  auto codec = BaseParquetProperties().build()->default_column_properties().compression();
  return arrow::util::Codec::GetCodecAsString(codec);
}

arrow::Status CheckWritable(const arrow::Schema& schema, const WriteOptions& options) {
  for (const auto& field : schema.fields()) {
    switch (options.format) {
      case OutputFormat::kCsv:
        ARROW_RETURN_NOT_OK(CheckCsvField(field));
        break;
      case OutputFormat::kParquet:
        ARROW_RETURN_NOT_OK(CheckParquetField(field));
        break;
      case OutputFormat::kTfRecord:
        ARROW_RETURN_NOT_OK(ShapeFromMetadata(*field).status());
        break;
    }
  }
  if (options.format == OutputFormat::kTfRecord) {
    // The encoder's own type mapping is the single source of truth for TFRecord.
    auto shared = std::make_shared<arrow::Schema>(schema);
    ARROW_RETURN_NOT_OK(io::ExampleEncoder::Make(shared, options.record_type).status());
  }
  return arrow::Status::OK();
}

arrow::Result<std::unique_ptr<FileWriter>> OpenFileWriter(
    const std::string& path, const std::shared_ptr<arrow::Schema>& schema,
    const WriteOptions& options) {
  ARROW_RETURN_NOT_OK(CheckWritable(*schema, options));
  switch (options.format) {
    case OutputFormat::kParquet:
      return ParquetWriter::Open(path, schema);
    case OutputFormat::kCsv:
      return CsvWriter::Open(path, schema);
    case OutputFormat::kTfRecord:
      return MakeTfRecordFileWriter(path, schema, options);
  }
  return arrow::Status::Invalid("unknown output format");
}

}  // namespace dlprep::io
