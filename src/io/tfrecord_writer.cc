// STUB (replaced by the TFRecord codec work): declared in tfrecord.h.
#include "io/file_writer.h"
#include "io/tfrecord.h"

namespace dlprep::io {
arrow::Result<std::unique_ptr<FileWriter>> MakeTfRecordFileWriter(
    const std::string&, const std::shared_ptr<arrow::Schema>&, const WriteOptions&) {
  return arrow::Status::NotImplemented("TFRecord writer");
}
}  // namespace dlprep::io
