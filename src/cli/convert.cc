#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/progress.h"
#include "core/text.h"
#include "core/units.h"
#include "dlprep/pipeline.h"

namespace dlprep::cli {

namespace {

struct ConvertFlags {
  InputFlags input;
  OutputFlags output;
  CommonFlags common;
  RunFlags run;
  bool dry_run = false;
};

std::string Absolute(const std::string& path) {
  return std::filesystem::absolute(path).lexically_normal().string();
}

// The pipeline file (for `dlprep run`) that this convert command runs. JSON is YAML,
// so nlohmann builds it; paths are absolute so the file runs from any folder.
arrow::Result<std::string> PipelineFileText(const ConvertFlags& f) {
  ARROW_ASSIGN_OR_RAISE(std::string format, DetectInputFormat(f.input));
  nlohmann::ordered_json source = {{"format", format}};
  std::vector<std::string> paths;
  for (const auto& p : f.input.paths) paths.push_back(Absolute(p));
  source["paths"] = paths;
  auto columns = SplitCommaList(f.input.columns);
  if (!columns.empty()) source["columns"] = columns;
  if (format == "tfrecord") {
    source["compression"] = f.input.compression;
    source["record_type"] = f.input.record_type;
    source["skip_corrupt"] = f.input.skip_corrupt;
  } else if (format == "binary") {
    source["name_filter"] = f.input.name_filter;
    source["recursive"] = f.input.recursive;
    source["read_content"] = !f.input.no_content;
    if (!f.input.max_file_size.empty()) source["max_file_size"] = f.input.max_file_size;
    source["files_per_partition"] = f.input.files_per_partition;
  }
  nlohmann::ordered_json sink = {{"format", f.output.format},
                                 {"path", Absolute(f.output.output_dir)}};
  if (f.output.format == "tfrecord") {
    sink["compression"] = f.output.compression;
    sink["record_type"] = f.output.record_type;
  }
  sink["shards"] = f.output.shards;
  sink["max_rows_per_file"] = f.output.max_rows_per_file;
  if (!f.output.max_bytes_per_file.empty()) {
    sink["max_bytes_per_file"] = f.output.max_bytes_per_file;
  }
  sink["overwrite"] = f.output.overwrite;
  nlohmann::ordered_json doc = {
      {"source", source}, {"steps", nlohmann::json::array()}, {"sink", sink}};
  return "# dlprep convert as a pipeline file (JSON is YAML): dlprep run FILE\n" +
         DumpJson(doc, 2) + "\n";
}

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
  if (f.dry_run) {
    ARROW_ASSIGN_OR_RAISE(std::string text, PipelineFileText(f));
    std::fputs(text.c_str(), stdout);
    return arrow::Status::OK();
  }
  nlohmann::json stats = {{"command", "convert"}};
  auto finish = [&](const arrow::Status& st) {
    return FinishStats(st, f.common.stats_path, &stats);
  };
  arrow::Status outside = CheckOutputOutsideInputs(f.input.paths, f.output.output_dir);
  if (!outside.ok()) return finish(outside);
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
  run.progress = &progress;
  auto result = Pipeline::Read(source).Write(*wopts).Run(run);
  progress.Finish();
  stats["input"] = {{"paths", f.input.paths}, {"partitions", source->num_partitions()}};
  ReportSkipped(*source, f.common.quiet, &stats);
  arrow::Status done = CompleteJob(result, RunStats{}, f.output.output_dir,
                                   /*errors=*/nullptr, /*errors_path=*/"", &stats);
  if (!done.ok()) return finish(done);
  stats["output"]["format"] = f.output.format;
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
  app->add_flag("--dry-run", flags->dry_run,
                "Print the pipeline file this command runs (for `dlprep run`) and exit");
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
