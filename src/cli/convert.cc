#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/progress.h"
#include "core/units.h"
#include "io/copy_job.h"

namespace dlprep::cli {

namespace {

struct ConvertFlags {
  InputFlags input;
  OutputFlags output;
  CommonFlags common;
  int64_t limit = -1;
};

// Appends the skipped-record report of `source` to `stats` and prints it.
void ReportSkipped(const Source& source, bool quiet, nlohmann::json* stats) {
  int64_t skipped = source.skipped_records();
  (*stats)["input"]["skipped_records"] = skipped;
  if (skipped == 0) return;
  auto messages = source.skipped_messages();
  (*stats)["input"]["skipped"] = messages;
  if (!quiet) {
    std::fprintf(stderr, "dlprep: skipped %lld corrupt record(s):\n",
                 static_cast<long long>(skipped));
    for (size_t i = 0; i < messages.size() && i < 10; ++i) {
      std::fprintf(stderr, "  %s\n", messages[i].c_str());
    }
  }
}

arrow::Status RunConvert(const ConvertFlags& f) {
  nlohmann::json stats = {{"command", "convert"}};
  Progress* progress_ptr = nullptr;
  auto finish = [&](const arrow::Status& st) {
    if (progress_ptr != nullptr) progress_ptr->Finish();
    stats["status"] = st.ok() ? "ok" : (st.IsCancelled() ? "interrupted" : "error");
    if (!st.ok()) stats["error"] = st.message();
    arrow::Status ws = WriteStats(f.common.stats_path, stats.dump(2));
    return st.ok() ? ws : st;
  };
  WarnAboutLeftoverAttempts(f.output.output_dir);
  auto source_r = OpenInput(f.input);
  if (!source_r.ok()) return finish(source_r.status());
  auto source = *source_r;
  auto wopts_r = MakeWriteOptions(f.output);
  if (!wopts_r.ok()) return finish(wopts_r.status());
  auto writer_r = DatasetWriter::Open(*wopts_r, source->schema());
  if (!writer_r.ok()) return finish(writer_r.status());
  auto writer = std::move(*writer_r);

  Progress progress("convert", source->num_partitions(), !f.common.quiet);
  progress_ptr = &progress;
  const std::atomic<bool>* cancel = InstallCancelHandler();
  auto copied = io::CopyToSink(*source, writer.get(), &progress, cancel, f.limit);
  stats["input"] = {{"paths", f.input.paths}, {"partitions", source->num_partitions()}};
  ReportSkipped(*source, f.common.quiet, &stats);
  if (!copied.ok()) {
    writer->Abort();
    return finish(copied.status().WithMessage(
        copied.status().message(), "; nothing was written to '", f.output.output_dir, "'"));
  }
  stats["input"]["rows"] = copied->rows;
  nlohmann::json job = {{"command", "convert"},
                        {"input", f.input.paths},
                        {"skipped_records", source->skipped_records()}};
  auto committed = writer->Commit(job.dump());
  if (!committed.ok()) {
    writer->Abort();
    return finish(committed.status());
  }
  progress.Finish();
  double secs = progress.elapsed_seconds();
  stats["output"] = {{"dir", f.output.output_dir},
                     {"format", f.output.format},
                     {"files", committed->files.size()},
                     {"rows", committed->rows},
                     {"bytes", committed->bytes}};
  stats["seconds"] = {{"total", secs},
                      {"read", copied->read_seconds},
                      {"write", copied->write_seconds}};
  if (!f.common.quiet) {
    std::fprintf(stderr, "dlprep convert: %lld rows -> %zu file(s), %s in '%s' (%.2f s, %.0f rows/s)\n",
                 static_cast<long long>(committed->rows), committed->files.size(),
                 FormatBytes(static_cast<double>(committed->bytes)).c_str(),
                 f.output.output_dir.c_str(), secs,
                 secs > 0 ? static_cast<double>(committed->rows) / secs : 0.0);
  }
  return finish(arrow::Status::OK());
}

}  // namespace

void AddConvertCommand(CLI::App* root, std::vector<Command>* commands) {
  auto flags = std::make_shared<ConvertFlags>();
  CLI::App* app = root->add_subcommand(
      "convert", "Convert any input (Parquet, CSV, JSON lines, TFRecord, raw files) to "
                 "TFRecord, Parquet or CSV");
  AddInputFlags(app, &flags->input, /*binary_options=*/true);
  AddOutputFlags(app, &flags->output, "tfrecord");
  app->add_option("--limit", flags->limit, "Stop after this many rows");
  AddCommonFlags(app, &flags->common);
  app->footer(
      "The output folder appears only when the job succeeds, complete, with a\n"
      "_manifest.json (files, rows, bytes, Arrow schema, TensorFlow feature spec) and\n"
      "_SUCCESS. A null value omits the feature from that row's tf.train.Example.\n\n"
      "Examples:\n"
      "  dlprep convert -i events.parquet -o out/tfr\n"
      "  dlprep convert -i 'logs/**/*.jsonl' -o out/pq --format parquet\n"
      "  dlprep convert -i data/ -o out/tfr --compression gzip --shards 8\n"
      "  dlprep convert -i train.tfrecord -o out/pq --format parquet --skip-corrupt\n"
      "  dlprep convert -i 'clips/**' --input-format binary --name-filter '*.wav' -o out/raw");
  commands->push_back({app, [flags]() { return RunConvert(*flags); }});
}

}  // namespace dlprep::cli
