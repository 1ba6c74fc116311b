// `dlprep score`: batch inference with a TorchScript model (issue 6). The backend is a
// plugin, libdlprep_torch.so, loaded on first use (see infer::TorchBackendApi), built
// when CMake found libtorch (DLPREP_HAVE_TORCH); without it the command and the `score`
// pipeline step exist and say that this build has no libtorch.
#include <dlfcn.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/progress.h"
#include "core/text.h"
#include "core/units.h"
#include "exec/error_sink.h"
#include "exec/pipeline_file.h"
#include "infer/plugin/score_step.h"
#include "infer/torchscript/score.h"

namespace dlprep::cli {

namespace {

struct ScoreFlags {
  InputFlags input;
  OutputFlags output;
  RunFlags run;
  CommonFlags common;
  std::string model;
  std::vector<std::string> columns;  // --model-input, comma lists split
  std::vector<std::string> deprecated_columns;  // --column, the former spelling
  std::vector<std::string> shapes;
  int64_t batch_size = 256;
  bool argmax = false;
  bool softmax = false;
  std::string output_names;
  std::string keep = "*";
  std::string device = "cpu";
  int threads_per_worker = 0;
  bool dry_run = false;
  bool fail_on_error = false;
  ErrorLimitFlags limits;
  std::string errors_path;
};

std::string Absolute(const std::string& path) {
  return std::filesystem::absolute(path).lexically_normal().string();
}

arrow::Result<infer::ScoreOptions> MakeScoreOptions(const ScoreFlags& f,
                                                    const infer::TorchBackendApi& api) {
  infer::ScoreOptions o;
  o.model = f.model;
  o.columns = f.columns;
  for (const auto& s : f.shapes) {
    ARROW_ASSIGN_OR_RAISE(auto shape, api.parse_shape(s, "--shape"));
    o.shapes.push_back(shape);
  }
  o.batch_size = f.batch_size;
  o.argmax = f.argmax;
  o.softmax = f.softmax;
  o.output_names = SplitCommaList(f.output_names);
  if (f.keep != "*") {
    o.keep_all = false;
    if (f.keep != "none") o.keep = SplitCommaList(f.keep);
  }
  o.device = f.device;
  o.threads_per_worker = f.threads_per_worker;
  return o;
}

// The pipeline file (JSON, which is YAML) this command runs.
arrow::Result<std::string> PipelineFileText(const ScoreFlags& f,
                                            const infer::ScoreOptions& o) {
  ARROW_ASSIGN_OR_RAISE(std::string format, DetectInputFormat(f.input));
  std::vector<std::string> paths;
  for (const auto& p : f.input.paths) paths.push_back(Absolute(p));
  nlohmann::ordered_json source = {{"format", format}, {"paths", paths}};
  if (!f.input.columns.empty()) source["columns"] = SplitCommaList(f.input.columns);
  nlohmann::ordered_json s = {{"model", Absolute(o.model)}, {"columns", o.columns}};
  if (!f.shapes.empty()) s["shapes"] = f.shapes;
  s["batch_size"] = o.batch_size;
  s["argmax"] = o.argmax;
  s["softmax"] = o.softmax;
  if (!o.output_names.empty()) s["output_names"] = o.output_names;
  if (!o.keep_all) s["keep"] = o.keep;
  s["device"] = o.device;
  s["threads_per_worker"] = o.threads_per_worker;
  nlohmann::ordered_json sink = {{"format", f.output.format},
                                 {"path", Absolute(f.output.output_dir)}};
  if (f.output.format == "tfrecord") sink["compression"] = f.output.compression;
  sink["shards"] = f.output.shards;
  sink["overwrite"] = f.output.overwrite;
  nlohmann::ordered_json doc = {{"source", source},
                                {"steps", {{{"score", s}}}},
                                {"sink", sink}};
  return "# dlprep score as a pipeline file (JSON is YAML): dlprep run FILE\n" +
         DumpJson(doc, 2) + "\n";
}

arrow::Status RunScoreJob(const ScoreFlags& f, nlohmann::json* stats_out) {
  nlohmann::json& stats = *stats_out;
  ARROW_ASSIGN_OR_RAISE(const infer::TorchBackendApi* api, infer::LoadTorchBackend());
  ARROW_ASSIGN_OR_RAISE(infer::ScoreOptions o, MakeScoreOptions(f, *api));
  ARROW_ASSIGN_OR_RAISE(auto source, OpenInput(f.input));
  ARROW_ASSIGN_OR_RAISE(auto factory, api->make_score_factory(o));
  ARROW_ASSIGN_OR_RAISE(auto wopts, MakeWriteOptions(f.output));
  Pipeline pipeline = Pipeline::Read(source);
  pipeline.MapStateful(factory).Write(wopts);
  // Checks the columns and shapes and runs the model once on a dummy batch, so a model
  // that does not fit fails here, before any output exists.
  ARROW_RETURN_NOT_OK(pipeline.OutputSchema().status());
  if (f.dry_run) {
    ARROW_ASSIGN_OR_RAISE(std::string text, PipelineFileText(f, o));
    std::fputs(text.c_str(), stdout);
    return arrow::Status::OK();
  }
  ARROW_RETURN_NOT_OK(CheckOutputOutsideInputs(f.input.paths, f.output.output_dir));
  WarnAboutLeftoverAttempts(f.output.output_dir);
  Progress progress("score", source->num_partitions(), !f.common.quiet);
  std::unique_ptr<exec::JsonLinesErrorSink> errors;
  ARROW_ASSIGN_OR_RAISE(RunOptions run,
                        MakeJobRunOptions(f.run, f.fail_on_error, f.limits, f.errors_path,
                                          &progress, &errors));
  RunStats failed_run;
  auto result = pipeline.Run(run, &failed_run);
  progress.Finish();
  ARROW_RETURN_NOT_OK(CompleteJob(result, failed_run, f.output.output_dir, errors.get(),
                                  f.errors_path, &stats));
  int workers = result->workers;
  int threads = o.threads_per_worker > 0
                    ? o.threads_per_worker
                    : std::max(1, static_cast<int>(std::thread::hardware_concurrency()) /
                                      std::max(1, workers));
  stats["backend"] = api->description();
  stats["threads_per_worker"] = threads;
  stats["rows_scored"] = result->rows_written;
  stats["row_errors"] = result->row_errors;
  // A run with failed rows says so even with -q.
  if (!f.common.quiet || result->row_errors > 0) {
    std::fprintf(stderr,
                 "dlprep score: %lld rows scored -> '%s' (%.2f s, %.0f rows/s, %d workers "
                 "x %d threads, %s)%s\n",
                 static_cast<long long>(result->rows_written), f.output.output_dir.c_str(),
                 result->wall_seconds,
                 result->wall_seconds > 0 ? result->rows_written / result->wall_seconds : 0.0,
                 workers, threads, api->description().c_str(),
                 result->row_errors > 0
                     ? (", " + std::to_string(result->row_errors) + " row error(s)").c_str()
                     : "");
    PrintRowErrorSamples(*result);
  }
  return arrow::Status::OK();
}

arrow::Status RunScore(const ScoreFlags& f) {
  nlohmann::json stats = {{"command", "score"}, {"model", f.model}};
  arrow::Status st = RunScoreJob(f, &stats);
  if (f.dry_run && st.ok()) return st;
  return FinishStats(st, f.common.stats_path, &stats);
}

}  // namespace

void AddScoreCommand(CLI::App* root, std::vector<Command>* commands) {
  auto f = std::make_shared<ScoreFlags>();
  CLI::App* app = root->add_subcommand(
      "score", "Batch inference with a TorchScript model, loaded once per worker");
  AddInputFlags(app, &f->input, /*binary_options=*/false);
  app->add_option("--model", f->model,
                  "TorchScript file (torch.jit.script(m).save(path) or torch.jit.trace)")
      ->required();
  app->add_option("--model-input", f->columns,
                  "Tensor input column (list<float32>, one tensor per row) passed to the "
                  "model; several inputs in forward()'s argument order: repeat it or "
                  "write a,b (required; formerly --column)");
  // The former spelling, which differed from --columns (read only these) by one letter.
  app->add_option("--column", f->deprecated_columns)->group("");
  app->callback([f]() {
    if (!f->deprecated_columns.empty()) {
      WarnDeprecated("score", "--column", "--model-input");
      f->columns.insert(f->columns.end(), f->deprecated_columns.begin(),
                        f->deprecated_columns.end());
    }
    f->columns = FlattenCommaLists(f->columns);
    if (f->columns.empty()) throw CLI::RequiredError("--model-input");
  });
  app->add_option("--shape", f->shapes,
                  "Per-row shape of a --model-input, e.g. 101,64 (default: the column's "
                  "dlprep.shape metadata); one per --model-input, in order");
  app->add_option("--batch-size", f->batch_size,
                  "Rows per forward() call; smaller input batches are gathered")
      ->capture_default_str();
  app->add_flag("--argmax", f->argmax,
                "Add `prediction` (int64): the index of the largest value of the first "
                "output");
  app->add_flag("--softmax", f->softmax,
                "Apply softmax over the last dimension of every output first");
  app->add_option("--output-names", f->output_names,
                  "Names of the output columns, comma-separated, one per model output "
                  "(default: scores; a dict's keys; scores_0,scores_1,... for a tuple)");
  app->add_option("--keep", f->keep,
                  "Input columns to pass through, comma-separated; 'none' for none "
                  "(default: every column except the tensor columns)");
  app->add_option("--device", f->device, "cpu, cuda or cuda:N (any letter case)")
      ->capture_default_str()
      ->transform([](std::string value) {
        for (char& c : value) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return value;
      });
  app->add_option("--threads-per-worker", f->threads_per_worker,
                  "Intra-op threads of each worker's model (default: cores / workers)");
  AddOutputFlags(app, &f->output, "tfrecord");
  AddRunFlags(app, &f->run);
  CLI::Option* fail =
      app->add_flag("--fail-on-error", f->fail_on_error,
                    "Fail on the first row that cannot be scored (wrong tensor size, null)");
  AddErrorLimitFlags(app, &f->limits, fail);
  app->add_option("--errors", f->errors_path,
                  "Keep the rows that could not be scored, with their messages, in this "
                  "JSON-lines file (written when the job succeeds or fails for its failed rows)");
  app->add_flag("--dry-run", f->dry_run,
                "Check the model against the input (one dummy batch) and print the "
                "pipeline file this command runs");
  AddCommonFlags(app, &f->common);
  app->footer(
      "Examples:\n"
      "  dlprep score --model m.pt --input features/ --model-input log_mel \\\n"
      "    --batch-size 256 --argmax --output out/scores --format parquet\n"
      "  dlprep score --model two_inputs.pt -i data.parquet --model-input a,b \\\n"
      "    --shape 101,64 --shape 8 --softmax -o out/scores --workers 2\n"
      "Pipeline-file step: score: {model, columns, shapes, batch_size, argmax, softmax,\n"
      "output_names, keep, device, threads_per_worker}"
#ifndef DLPREP_HAVE_TORCH
      "\n\nThis build has no TorchScript backend (libtorch not found at build time)."
#endif
  );
  commands->push_back({app, [f]() { return RunScore(*f); }});
}

}  // namespace dlprep::cli
