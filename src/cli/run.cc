// `dlprep run PIPELINE.yaml`: runs a pipeline file (source, steps, sink) through
// dlprep::Pipeline with the commit protocol.
#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/progress.h"
#include "core/text.h"
#include "core/units.h"
#include "exec/error_sink.h"
#include "exec/pipeline_file.h"
#include "features/steps.h"
#include "infer/http/steps.h"
#include "infer/plugin/score_step.h"

namespace dlprep::cli {

namespace {

struct PipelineFileFlags {
  std::string pipeline;
  bool dry_run = false;
  bool fail_on_error = false;
  std::string errors_path;
  RunFlags run;
  CommonFlags common;
};

arrow::Status RunPipelineFile(const PipelineFileFlags& f) {
  nlohmann::json stats = {{"command", "run"}, {"pipeline", f.pipeline}};
  Progress* progress_ptr = nullptr;
  auto finish = [&](const arrow::Status& st) {
    if (progress_ptr != nullptr) progress_ptr->Finish();
    stats["status"] = st.ok() ? "ok" : (st.IsCancelled() ? "interrupted" : "error");
    if (!st.ok()) stats["error"] = st.message();
    arrow::Status ws = WriteStats(f.common.stats_path, DumpJson(stats, 2));
    return st.ok() ? ws : st;
  };
  arrow::Status registered = features::RegisterFeatureSteps();
  if (!registered.ok() && !registered.IsAlreadyExists()) return finish(registered);
  registered = http::RegisterHttpSteps();
  if (!registered.ok() && !registered.IsAlreadyExists()) return finish(registered);
  registered = infer::RegisterScoreStep();
  if (!registered.ok() && !registered.IsAlreadyExists()) return finish(registered);
  auto loaded = exec::LoadPipelineFile(f.pipeline);
  if (!loaded.ok()) return finish(loaded.status());
  exec::PipelineFile file = *std::move(loaded);
  Pipeline pipeline = file.ToPipeline();
  if (f.dry_run) {
    // Validate the chain against the source schema too, so a dry run catches what a
    // run would refuse before reading data.
    auto schema = pipeline.OutputSchema();
    if (!schema.ok()) return finish(schema.status());
    std::fputs(file.normalized_yaml.c_str(), stdout);
    stats["dry_run"] = true;
    return finish(arrow::Status::OK());
  }
  WarnAboutLeftoverAttempts(file.write.output_dir);
  Progress progress("run", file.source->num_partitions(), !f.common.quiet);
  progress_ptr = &progress;
  std::unique_ptr<exec::JsonLinesErrorSink> errors;
  auto options_r =
      MakeJobRunOptions(f.run, f.fail_on_error, f.errors_path, &progress, &errors);
  if (!options_r.ok()) return finish(options_r.status());
  RunOptions options = *options_r;
  auto run = pipeline.Run(options);
  progress.Finish();
  arrow::Status done =
      CompleteJob(run, file.write.output_dir, errors.get(), f.errors_path, &stats);
  if (!done.ok()) return finish(done);
  if (!f.common.quiet) {
    std::fprintf(stderr,
                 "dlprep run: %lld rows read, %lld written -> %lld file(s), %s in '%s' "
                 "(%.2f s, %d workers)%s\n",
                 static_cast<long long>(run->rows_read),
                 static_cast<long long>(run->rows_written),
                 static_cast<long long>(run->files_written),
                 FormatBytes(static_cast<double>(run->bytes_written)).c_str(),
                 file.write.output_dir.c_str(), run->wall_seconds, run->workers,
                 run->row_errors > 0
                     ? (", " + std::to_string(run->row_errors) + " row error(s)").c_str()
                     : "");
    PrintRowErrorSamples(*run);
  }
  return finish(arrow::Status::OK());
}

}  // namespace

void AddRunCommand(CLI::App* root, std::vector<Command>* commands) {
  auto flags = std::make_shared<PipelineFileFlags>();
  CLI::App* app = root->add_subcommand(
      "run", "Run a pipeline file: a source, a list of steps (operators) and a sink");
  app->add_option("pipeline", flags->pipeline, "The pipeline file (YAML)")->required();
  app->add_flag("--dry-run", flags->dry_run,
                "Check the pipeline (opens the inputs, reads no data) and print it "
                "normalized, with defaults filled in, as YAML");
  AddRunFlags(app, &flags->run);
  app->add_flag("--fail-on-error", flags->fail_on_error,
                "Fail on the first row an operator reports failed");
  app->add_option("--errors", flags->errors_path,
                  "Keep the rows operators reported failed, with their messages, in this "
                  "JSON-lines file (written when the job succeeds)");
  AddCommonFlags(app, &flags->common);
  app->footer(
      "A pipeline file:\n"
      "  source: {format: parquet, paths: [images.parquet]}\n"
      "  steps:\n"
      "    - regex_extract: {column: path, pattern: '([^/]+)/[^/]+$', output: label}\n"
      "    - filter: {expr: \"is_valid(label) and length > 0\"}\n"
      "    - split: {key: path, fractions: {train: 0.8, validation: 0.1, test: 0.1}}\n"
      "    - join: {source: {format: csv, paths: [labels.csv]}, on: [label]}\n"
      "  sink: {format: tfrecord, path: out/tfr, compression: gzip, shards: 4}\n"
      "Steps: select {columns}, rename {columns: {old: new}}, cast {columns: {x: float32}},\n"
      "filter {expr}, regex_extract {column, pattern, output, on_mismatch: null|error},\n"
      "split {key, fractions, seed, output}, join {source, on, max_bytes}.\n"
      "filter expressions: comparisons, is_null(c), is_valid(c), and, or, not,\n"
      "parentheses; and/or chains of any length, but parentheses and 'not' nested at\n"
      "most 256 levels deep.\n"
      "Featurizers: windows {key, time, ...}, audio {sample_rate, clip_seconds, n_mels,\n"
      "mfcc, label_regex, noise, copies, snr_db, seed, ...} (docs/commands/audio.md).\n"
      "Inference: score {model, columns, shapes, batch_size, argmax, softmax,\n"
      "output_names, keep, device, threads_per_worker}, score_http {url, protocol,\n"
      "columns, outputs, batch_size, concurrency, ...} (dlprep score-http --dry-run).\n"
      "Relative paths are relative to the pipeline file's folder.\n\n"
      "Examples:\n"
      "  dlprep run examples/pipelines/labels.yaml --workers 4 --stats stats.json\n"
      "  dlprep run pipeline.yaml --dry-run");
  commands->push_back({app, [flags]() { return RunPipelineFile(*flags); }});
}

}  // namespace dlprep::cli
