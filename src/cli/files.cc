#include <cstdio>

#include <arrow/array.h>
#include <arrow/record_batch.h>
#include <arrow/scalar.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/progress.h"
#include "core/text.h"
#include "core/units.h"
#include "dlprep/pipeline.h"

namespace dlprep::cli {

namespace {

struct FilesFlags {
  InputFlags input;
  OutputFlags output;
  CommonFlags common;
  RunFlags run;
};

// Prints the listing as tab-separated lines: length, modification time, path.
arrow::Status PrintListing(const Source& source, const std::atomic<bool>* cancel,
                           const CommonFlags& common) {
  int64_t files = 0, bytes = 0;
  for (int64_t p = 0; p < source.num_partitions(); ++p) {
    ARROW_ASSIGN_OR_RAISE(auto reader, source.OpenPartition(p));
    while (true) {
      if (cancel->load()) return arrow::Status::Cancelled("interrupted");
      std::shared_ptr<arrow::RecordBatch> batch;
      ARROW_RETURN_NOT_OK(reader->ReadNext(&batch));
      if (batch == nullptr) break;
      auto path = std::static_pointer_cast<arrow::StringArray>(batch->GetColumnByName("path"));
      auto length = std::static_pointer_cast<arrow::Int64Array>(batch->GetColumnByName("length"));
      auto mtime = batch->GetColumnByName("modificationTime");
      for (int64_t r = 0; r < batch->num_rows(); ++r) {
        ARROW_ASSIGN_OR_RAISE(auto t, mtime->GetScalar(r));
        std::printf("%12lld  %s  %s\n", static_cast<long long>(length->Value(r)),
                    t->ToString().c_str(), std::string(path->GetView(r)).c_str());
        bytes += length->Value(r);
        ++files;
      }
    }
  }
  if (!common.quiet) {
    std::fprintf(stderr, "dlprep files: %lld file(s), %s\n", static_cast<long long>(files),
                 FormatBytes(static_cast<double>(bytes)).c_str());
  }
  nlohmann::json stats = {{"command", "files"}, {"status", "ok"}, {"files", files},
                          {"bytes", bytes}};
  return WriteStats(common.stats_path, DumpJson(stats, 2));
}

arrow::Status RunFiles(FilesFlags f) {
  f.input.format = "binary";
  const std::atomic<bool>* cancel = InstallCancelHandler();
  if (f.output.output_dir.empty()) {
    f.input.no_content = true;
    ARROW_ASSIGN_OR_RAISE(auto source, OpenInput(f.input));
    return PrintListing(*source, cancel, f.common);
  }
  WarnAboutLeftoverAttempts(f.output.output_dir);
  ARROW_ASSIGN_OR_RAISE(auto source, OpenInput(f.input));
  ARROW_ASSIGN_OR_RAISE(auto wopts, MakeWriteOptions(f.output));
  Progress progress("files", source->num_partitions(), !f.common.quiet);
  auto run_r = MakeRunOptions(f.run);
  if (!run_r.ok()) return run_r.status();
  RunOptions run = *run_r;
  run.cancel = cancel;
  run.progress = &progress;
  auto result = Pipeline::Read(source).Write(wopts).Run(run);
  progress.Finish();
  ARROW_RETURN_NOT_OK(result.status());
  if (!f.common.quiet) {
    std::fprintf(stderr, "dlprep files: %lld file(s) -> '%s' (%s)\n",
                 static_cast<long long>(result->rows_written), f.output.output_dir.c_str(),
                 FormatBytes(static_cast<double>(result->bytes_written)).c_str());
  }
  nlohmann::json stats = {{"command", "files"},
                          {"status", "ok"},
                          {"rows", result->rows_written},
                          {"bytes", result->bytes_written},
                          {"seconds", progress.elapsed_seconds()}};
  return WriteStats(f.common.stats_path, DumpJson(stats, 2));
}

}  // namespace

void AddFilesCommand(CLI::App* root, std::vector<Command>* commands) {
  auto flags = std::make_shared<FilesFlags>();
  CLI::App* app = root->add_subcommand(
      "files", "List files as Spark's binaryFile table (path, modificationTime, length, "
               "content), or write that table with --output");
  app->add_option("patterns", flags->input.paths,
                  "Files, folders or globs; ** matches any number of folders")
      ->required();
  app->add_option("--name-filter", flags->input.name_filter,
                  "Keep files whose name matches this glob (e.g. '*.wav')");
  app->add_flag("--recursive", flags->input.recursive, "List folders recursively");
  app->add_flag("--no-content", flags->input.no_content,
                "With --output: leave content null (do not read the files)");
  app->add_option("--max-file-size", flags->input.max_file_size,
                  "Refuse files larger than this")
      ->capture_default_str();
  app->add_option("--files-per-partition", flags->input.files_per_partition,
                  "Files per partition (one output file each)")
      ->capture_default_str();
  AddOutputFlags(app, &flags->output, "tfrecord");
  app->get_option("--output")->required(false);
  AddRunFlags(app, &flags->run);
  AddCommonFlags(app, &flags->common);
  app->footer(
      "Without --output, prints one line per file: length, modification time, path.\n\n"
      "Examples:\n"
      "  dlprep files 'speech/**/*.wav'\n"
      "  dlprep files speech --recursive --name-filter '*.flac'\n"
      "  dlprep files 'speech/**/*.wav' --output out/wav_table --format parquet");
  commands->push_back({app, [flags]() { return RunFiles(*flags); }});
}

}  // namespace dlprep::cli
