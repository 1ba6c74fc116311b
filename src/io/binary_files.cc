// STUB (replaced by the sources work).
#include "dlprep/source.h"

namespace dlprep {
arrow::Result<std::shared_ptr<Source>> OpenBinaryFiles(const BinaryFilesOptions&) {
  return arrow::Status::NotImplemented("binary_files source");
}
}  // namespace dlprep
