// MakeTfRecordFileWriter: a FileWriter that encodes batches with ExampleEncoder and
// writes the framed records with RecordWriter.
#include <algorithm>
#include <string>

#include <arrow/record_batch.h>

#include "io/file_writer.h"
#include "io/tfrecord.h"

namespace dlprep::io {
namespace {

// Rows encoded per EncodeFramed call, so that the reused buffer stays small.
constexpr int64_t kRowsPerChunk = 4096;

class TfRecordFileWriter final : public FileWriter {
 public:
  TfRecordFileWriter(std::unique_ptr<ExampleEncoder> encoder,
                     std::unique_ptr<RecordWriter> writer)
      : encoder_(std::move(encoder)), writer_(std::move(writer)) {}

  arrow::Status Write(const arrow::RecordBatch& batch) override {
    for (int64_t offset = 0; offset < batch.num_rows(); offset += kRowsPerChunk) {
      const int64_t n = std::min(kRowsPerChunk, batch.num_rows() - offset);
      buffer_.clear();
      ARROW_RETURN_NOT_OK(encoder_->EncodeFramed(batch, offset, n, &buffer_));
      ARROW_RETURN_NOT_OK(writer_->WriteFramed(buffer_));
    }
    return arrow::Status::OK();
  }

  arrow::Status Close() override { return writer_->Close(); }

  int64_t bytes_written() const override { return writer_->bytes_written(); }

 private:
  std::unique_ptr<ExampleEncoder> encoder_;
  std::unique_ptr<RecordWriter> writer_;
  std::string buffer_;
};

}  // namespace

arrow::Result<std::unique_ptr<FileWriter>> MakeTfRecordFileWriter(
    const std::string& path, const std::shared_ptr<arrow::Schema>& schema,
    const WriteOptions& options) {
  // Validate the schema before creating the file.
  ARROW_ASSIGN_OR_RAISE(auto encoder, ExampleEncoder::Make(schema, options.record_type));
  ARROW_ASSIGN_OR_RAISE(auto writer, RecordWriter::Open(path, options.compression));
  return std::make_unique<TfRecordFileWriter>(std::move(encoder), std::move(writer));
}

}  // namespace dlprep::io
