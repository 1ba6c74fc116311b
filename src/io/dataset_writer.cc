// STUB (replaced by the sinks work).
#include "dlprep/sink.h"

namespace dlprep {
arrow::Result<std::unique_ptr<DatasetWriter>> DatasetWriter::Open(
    const WriteOptions&, std::shared_ptr<arrow::Schema>) {
  return arrow::Status::NotImplemented("dataset writer");
}
}  // namespace dlprep
