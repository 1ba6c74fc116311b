#include <cstdio>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/progress.h"
#include "core/units.h"
#include "dlprep/pipeline.h"

namespace dlprep::cli {

namespace {

struct ConvertFlags {
  InputFlags input;
  OutputFlags output;
  CommonFlags common;
  RunFlags run;
};

// Adds the skipped-record report of `source` to `stats` and prints it.
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
  auto finish = [&](const arrow::Status& st) {
    stats["status"] = st.ok() ? "ok" : (st.IsCancelled() ? "interrupted" : "error");
    if (!st.ok()) stats["error"] = st.message();
    arrow::Status ws = WriteStats(f.common.stats_path, stats.dump(2));
    return st.ok() ? ws : st;
  };
  WarnAboutLeftoverAttempts(f.output.output_dir);
  auto source_r = OpenInput(f.input);
  if (!source_r.ok()) return finish(source_r.status());
  auto source = *source_r;
  auto wopts = MakeWriteOptions(f.output);
  if (!wopts.ok()) return finish(wopts.status());

  Progress progress("convert", source->num_partitions(), !f.common.quiet);
  auto run_r = MakeRunOptions(f.run);
  if (!run_r.ok()) return finish(run_r.status());
  RunOptions run = *run_r;
  run.cancel = InstallCancelHandler();
  run.progress = &progress;
  auto result = Pipeline::Read(source).Write(*wopts).Run(run);
  progress.Finish();
  stats["input"] = {{"paths", f.input.paths}, {"partitions", source->num_partitions()}};
  ReportSkipped(*source, f.common.quiet, &stats);
  if (!result.ok()) {
    return finish(result.status().WithMessage(result.status().message(),
                                              "; nothing was written to '",
                                              f.output.output_dir, "'"));
  }
  stats["run"] = nlohmann::json::parse(result->ToJson());
  stats["output"] = {{"dir", f.output.output_dir},
                     {"format", f.output.format},
                     {"files", result->files_written},
                     {"rows", result->rows_written},
                     {"bytes", result->bytes_written}};
  if (!f.common.quiet) {
    double secs = result->wall_seconds;
    std::fprintf(stderr,
                 "dlprep convert: %lld rows -> %lld file(s), %s in '%s' (%.2f s, %.0f "
                 "rows/s, %d workers)\n",
                 static_cast<long long>(result->rows_written),
                 static_cast<long long>(result->files_written),
                 FormatBytes(static_cast<double>(result->bytes_written)).c_str(),
                 f.output.output_dir.c_str(), secs,
                 secs > 0 ? static_cast<double>(result->rows_written) / secs : 0.0,
                 result->workers);
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
  AddRunFlags(app, &flags->run);
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
