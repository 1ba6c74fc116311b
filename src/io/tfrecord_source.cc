// STUB (replaced by the TFRecord codec work).
#include "dlprep/source.h"

namespace dlprep {
arrow::Result<std::shared_ptr<Source>> OpenTfRecordSource(const TfRecordSourceOptions&) {
  return arrow::Status::NotImplemented("TFRecord source");
}
}  // namespace dlprep
