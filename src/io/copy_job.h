#pragma once

#include <atomic>
#include <cstdint>

#include <arrow/result.h>

#include "dlprep/sink.h"
#include "dlprep/source.h"

namespace dlprep {
class Progress;
}

namespace dlprep::io {

/// Counters of one copy from a source to a sink.
struct CopyStats {
  int64_t partitions = 0;
  int64_t batches = 0;
  int64_t rows = 0;
  double read_seconds = 0;   ///< time spent in the source (reading, decoding)
  double write_seconds = 0;  ///< time spent in the sink (encoding, writing)
};

/// Reads every partition of `source` in order and writes it to `writer` (partition by
/// partition, so output order equals input order). Does not commit: the caller commits
/// on success and aborts otherwise. Stops with a Cancelled status as soon as `*cancel`
/// becomes true (checked between batches). `progress` and `cancel` may be null.
/// `limit_rows` >= 0 stops after that many rows.
arrow::Result<CopyStats> CopyToSink(const Source& source, DatasetWriter* writer,
                                    Progress* progress, const std::atomic<bool>* cancel,
                                    int64_t limit_rows = -1);

}  // namespace dlprep::io
