// STUB (replaced by the sources work).
#include "dlprep/source.h"

namespace dlprep {
arrow::Result<std::shared_ptr<Source>> OpenTableSource(const TableSourceOptions&) {
  return arrow::Status::NotImplemented("table source");
}
}  // namespace dlprep
