#include "io/copy_job.h"

#include <chrono>

#include <arrow/record_batch.h>

#include "core/progress.h"

namespace dlprep::io {

namespace {
double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
}  // namespace

arrow::Result<CopyStats> CopyToSink(const Source& source, DatasetWriter* writer,
                                    Progress* progress, const std::atomic<bool>* cancel,
                                    int64_t limit_rows) {
  CopyStats stats;
  for (int64_t p = 0; p < source.num_partitions(); ++p) {
    auto t0 = std::chrono::steady_clock::now();
    ARROW_ASSIGN_OR_RAISE(auto reader, source.OpenPartition(p));
    stats.read_seconds += Since(t0);
    while (true) {
      if (cancel != nullptr && cancel->load()) {
        return arrow::Status::Cancelled("interrupted while reading ", source.partition_name(p));
      }
      if (limit_rows >= 0 && stats.rows >= limit_rows) break;
      t0 = std::chrono::steady_clock::now();
      std::shared_ptr<arrow::RecordBatch> batch;
      ARROW_RETURN_NOT_OK(reader->ReadNext(&batch));
      stats.read_seconds += Since(t0);
      if (batch == nullptr) break;
      if (limit_rows >= 0 && stats.rows + batch->num_rows() > limit_rows) {
        batch = batch->Slice(0, limit_rows - stats.rows);
      }
      if (batch->num_rows() == 0) continue;
      t0 = std::chrono::steady_clock::now();
      int64_t before = writer->bytes_written();
      ARROW_RETURN_NOT_OK(writer->Write(p, batch));
      stats.write_seconds += Since(t0);
      stats.rows += batch->num_rows();
      stats.batches += 1;
      if (progress != nullptr) {
        progress->Add(batch->num_rows(), writer->bytes_written() - before);
      }
    }
    ARROW_RETURN_NOT_OK(writer->FinishPartition(p));
    stats.partitions += 1;
    if (progress != nullptr) progress->PartDone();
    if (limit_rows >= 0 && stats.rows >= limit_rows) break;
  }
  return stats;
}

}  // namespace dlprep::io
