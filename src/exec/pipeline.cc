#include "dlprep/pipeline.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>

#include <arrow/record_batch.h>
#include <arrow/table.h>
#include <arrow/type.h>
#include <nlohmann/json.hpp>

#include "core/memory.h"
#include "core/text.h"
#include "exec/executor.h"

namespace dlprep {

std::string RunStats::ToJson() const {
  nlohmann::json stages_json = nlohmann::json::array();
  for (const StageStats& s : stages) {
    nlohmann::json j = {{"name", s.name},
                        {"kind", s.kind},
                        {"batches_in", s.batches_in},
                        {"rows_in", s.rows_in},
                        {"batches_out", s.batches_out},
                        {"rows_out", s.rows_out},
                        {"seconds", s.seconds}};
    if (s.kind == "stateful") {
      j["opens"] = s.opens;
      j["row_errors"] = s.row_errors;
    }
    if (s.kind == "grouped") {
      j["groups"] = s.groups;
      j["streamed_groups"] = s.streamed_groups;
    }
    stages_json.push_back(std::move(j));
  }
  nlohmann::json j = {
      {"workers", workers},
      {"unordered", unordered},
      {"partitions", partitions},
      {"rows_read", rows_read},
      {"rows_written", rows_written},
      {"batches_written", batches_written},
      {"row_errors", row_errors},
      {"row_error_samples", row_error_samples},
      {"buffer",
       {{"max_batches", max_buffered_batches},
        {"max_bytes", max_buffered_bytes},
        {"peak_batches", peak_buffered_batches},
        {"peak_bytes", peak_buffered_bytes}}},
      {"memory",
       {{"peak_tracked_bytes", peak_tracked_bytes},
        {"peak_pool_bytes", peak_pool_bytes},
        {"spilled_bytes", spilled_bytes},
        {"spill_files", spill_files}}},
      {"files_written", files_written},
      {"bytes_written", bytes_written},
      {"wall_seconds", wall_seconds},
      {"stages", std::move(stages_json)},
  };
  return DumpJson(j);
}

namespace {

arrow::Status CheckLimits(const RunOptions& options) {
  if (!(options.max_error_rate >= 0 && options.max_error_rate <= 1)) {
    return arrow::Status::Invalid("max error rate (--max-error-rate): expected a fraction "
                                  "from 0 to 1, got ",
                                  options.max_error_rate);
  }
  if (options.max_errors < -1) {
    return arrow::Status::Invalid("max errors (--max-errors): expected a count >= 0, got ",
                                  options.max_errors);
  }
  return arrow::Status::OK();
}

std::string Percent(int64_t part, int64_t whole) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.4g%%",
                whole > 0 ? 100.0 * static_cast<double>(part) / static_cast<double>(whole)
                          : 0.0);
  return text;
}

}  // namespace

arrow::Status CheckFailedRows(const RunStats& stats, const RunOptions& options) {
  ARROW_RETURN_NOT_OK(CheckLimits(options));
  const int64_t failed = stats.row_errors;
  if (failed <= 0) return arrow::Status::OK();
  const int64_t read = stats.rows_read;
  const std::string first = stats.row_error_samples.empty()
                                ? std::string("(not recorded)")
                                : stats.row_error_samples.front();
  const std::string counts = std::to_string(failed) + " of " + std::to_string(read) +
                             " input rows failed (" + Percent(failed, read) + ")";
  if (read > 0 && stats.rows_written == 0) {
    return arrow::Status::Invalid("no row was written: ", counts,
                                  "; first error: ", first);
  }
  if (options.max_errors >= 0 && failed > options.max_errors) {
    return arrow::Status::Invalid(counts, ", more than the ", options.max_errors,
                                  " that max errors (--max-errors) allows; first error: ",
                                  first);
  }
  // Compared in integers: rate 0.01 of 300 rows allows 3 failed rows, not 2.
  const double allowed = std::floor(options.max_error_rate * static_cast<double>(read) + 1e-9);
  if (static_cast<double>(failed) > allowed) {
    char rate[32];
    std::snprintf(rate, sizeof(rate), "%g", options.max_error_rate);
    return arrow::Status::Invalid(counts, ", more than the ", static_cast<int64_t>(allowed),
                                  " that max error rate (--max-error-rate) ", rate,
                                  " allows; first error: ", first);
  }
  return arrow::Status::OK();
}

Pipeline Pipeline::Read(std::shared_ptr<Source> source) {
  Pipeline p;
  p.source_ = std::move(source);
  return p;
}

Pipeline& Pipeline::Map(std::shared_ptr<ScalarOperator> op) {
  PipelineStep step;
  step.kind = PipelineStep::Kind::kScalar;
  step.scalar = std::move(op);
  steps_.push_back(std::move(step));
  return *this;
}

Pipeline& Pipeline::Map(std::shared_ptr<BatchOperator> op) {
  PipelineStep step;
  step.kind = PipelineStep::Kind::kBatch;
  step.batch = std::move(op);
  steps_.push_back(std::move(step));
  return *this;
}

Pipeline& Pipeline::MapStateful(StatefulOperatorFactory factory) {
  PipelineStep step;
  step.kind = PipelineStep::Kind::kStateful;
  step.stateful = std::move(factory);
  steps_.push_back(std::move(step));
  return *this;
}

Pipeline::GroupBuilder Pipeline::GroupBy(std::vector<std::string> keys,
                                        std::string sort_by) {
  return GroupBuilder(this, std::move(keys), std::move(sort_by));
}

Pipeline& Pipeline::GroupBuilder::Apply(std::shared_ptr<GroupedOperator> op) {
  PipelineStep step;
  step.kind = PipelineStep::Kind::kGrouped;
  step.grouped = std::move(op);
  step.group_keys = std::move(keys_);
  step.group_sort_by = std::move(sort_by_);
  pipeline_->steps_.push_back(std::move(step));
  return *pipeline_;
}

Pipeline& Pipeline::Write(WriteOptions options) {
  writer_opener_ =
      [options = std::move(options)](const std::shared_ptr<arrow::Schema>& schema) {
        return DatasetWriter::Open(options, schema);
      };
  return *this;
}

Pipeline& Pipeline::Write(DatasetWriterOpener opener) {
  writer_opener_ = std::move(opener);
  return *this;
}

arrow::Result<std::shared_ptr<arrow::Schema>> Pipeline::OutputSchema() const {
  ARROW_ASSIGN_OR_RAISE(auto ex, exec::Executor::Make(source_, steps_, RunOptions{}));
  return ex->output_schema();
}

int64_t ReorderBufferBytes(const RunOptions& options) {
  int64_t bytes = std::max<int64_t>(options.max_buffered_bytes, 1);
  if (options.memory_limit > 0) {
    bytes = std::min(bytes, std::max<int64_t>(options.memory_limit / 4, 1));
  }
  return bytes;
}

arrow::Result<RunStats> Pipeline::Run(const RunOptions& options,
                                      RunStats* failed_run) const {
  ARROW_RETURN_NOT_OK(CheckLimits(options));
  if (!writer_opener_) {
    return arrow::Status::Invalid(
        "Pipeline::Run: no output; call Write() first (or Collect() for a table)");
  }
  // Cancelled before it began (Ctrl-C while the inputs were opened): no attempt folder.
  if (options.cancel != nullptr && options.cancel->load()) {
    return arrow::Status::Cancelled("interrupted before the run started");
  }
  MemoryLimitScope limit(options.memory_limit);
  EnginePool()->ResetPeak();
  ARROW_ASSIGN_OR_RAISE(auto ex, exec::Executor::Make(source_, steps_, options));
  ARROW_ASSIGN_OR_RAISE(std::unique_ptr<DatasetWriter> writer,
                        writer_opener_(ex->output_schema()));
  if (writer == nullptr) return arrow::Status::Invalid("Pipeline::Run: null writer");
  exec::DatasetWriterSink sink(writer.get());
  auto stats = ex->Run(&sink);
  if (!stats.ok()) {
    writer->Abort();
    return stats.status();
  }
  stats->peak_pool_bytes = EnginePool()->max_memory();
  arrow::Status rows_ok = CheckFailedRows(*stats, options);
  if (!rows_ok.ok()) {
    writer->Abort();
    if (failed_run != nullptr) *failed_run = *stats;
    return rows_ok;
  }
  auto committed = writer->Commit(stats->ToJson());
  if (!committed.ok()) {
    writer->Abort();
    return committed.status();
  }
  stats->files_written = static_cast<int64_t>(committed->files.size());
  stats->bytes_written = committed->bytes;
  return stats;
}

arrow::Result<std::shared_ptr<arrow::Table>> Pipeline::Collect(const RunOptions& options,
                                                               RunStats* stats) const {
  if (options.cancel != nullptr && options.cancel->load()) {
    return arrow::Status::Cancelled("interrupted before the run started");
  }
  // The whole output is held for the caller, so the limit does not bound the pool
  // here; grouped steps still spill to keep their buckets within it.
  EnginePool()->ResetPeak();
  ARROW_ASSIGN_OR_RAISE(auto ex, exec::Executor::Make(source_, steps_, options));
  exec::CollectSink sink;
  ARROW_ASSIGN_OR_RAISE(RunStats run_stats, ex->Run(&sink));
  run_stats.peak_pool_bytes = EnginePool()->max_memory();
  if (stats != nullptr) *stats = std::move(run_stats);
  return sink.ToTable(ex->output_schema());
}

}  // namespace dlprep
