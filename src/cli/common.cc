#include "cli/common.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/progress.h"
#include "core/units.h"
#include "exec/error_sink.h"
#include "exec/grouped.h"

namespace fs = std::filesystem;

namespace dlprep::cli {

namespace {

std::atomic<bool> g_cancel{false};

void OnSignal(int sig) {
  if (g_cancel.exchange(true)) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Format implied by a file name, or "" when the extension says nothing.
std::string FormatOfName(const std::string& name) {
  for (const char* ext : {".parquet", ".pq"}) {
    if (EndsWith(name, ext)) return "parquet";
  }
  if (EndsWith(name, ".csv")) return "csv";
  for (const char* ext : {".json", ".jsonl", ".ndjson"}) {
    if (EndsWith(name, ext)) return "json";
  }
  for (const char* ext : {".tfrecord", ".tfrecords", ".tfrecord.gz", ".tfrecord.zz",
                          ".tfrecords.gz", ".tfr"}) {
    if (EndsWith(name, ext)) return "tfrecord";
  }
  return "";
}

arrow::Result<TfRecordCompression> ParseCompression(const std::string& text,
                                                    const char* option) {
  if (auto c = TfRecordCompressionFromName(text)) return *c;
  return arrow::Status::Invalid("option ", option, ": '", text,
                                "' is not a compression; expected none, gzip or zlib");
}

arrow::Result<RecordType> ParseRecordType(const std::string& text) {
  if (auto r = RecordTypeFromName(text)) return *r;
  return arrow::Status::Invalid("option --record-type: '", text,
                                "' is not a record type; expected example or "
                                "sequence_example");
}

}  // namespace

std::vector<std::string> SplitCommaList(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

void AddInputFlags(CLI::App* app, InputFlags* f, bool binary_options) {
  app->add_option("-i,--input", f->paths,
                  "Input files, folders or glob patterns (** for any depth); repeatable")
      ->required();
  app->add_option("--input-format", f->format,
                  "auto (from _manifest.json or extensions), parquet, csv, json (JSON "
                  "lines), tfrecord or binary (Spark's binaryFile table of the files)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "parquet", "csv", "json", "tfrecord", "binary"}));
  app->add_option("--columns", f->columns, "Read only these columns, in this order (a,b,c)");
  app->add_flag("--skip-corrupt", f->skip_corrupt,
                "TFRecord input: count, report and skip corrupt records instead of failing");
  app->add_option("--input-compression", f->compression,
                  "TFRecord input compression: auto (detected per file), none, gzip, zlib")
      ->capture_default_str();
  app->add_option("--input-record-type", f->record_type,
                  "TFRecord input messages: example or sequence_example")
      ->capture_default_str();
  if (binary_options) {
    app->add_option("--name-filter", f->name_filter,
                    "binary: keep files whose name matches this glob (e.g. '*.wav')");
    app->add_flag("--recursive", f->recursive, "binary: list folders recursively");
    app->add_flag("--no-content", f->no_content,
                  "binary: leave the content column null (list files without reading them)");
    app->add_option("--max-file-size", f->max_file_size,
                    "binary: refuse files larger than this (e.g. 64MB; default 2 GiB - 1)");
    app->add_option("--files-per-partition", f->files_per_partition,
                    "binary: files per partition (one output file each by default)")
        ->capture_default_str();
  }
}

void AddOutputFlags(CLI::App* app, OutputFlags* f, const std::string& default_format) {
  f->format = default_format;
  app->add_option("-o,--output", f->output_dir,
                  "Output folder; must be absent or empty unless --overwrite")
      ->required();
  app->add_option("--format", f->format, "Output format: tfrecord, parquet or csv")
      ->capture_default_str()
      ->check(CLI::IsMember({"tfrecord", "parquet", "csv"}));
  app->add_option("--compression", f->compression, "TFRecord compression: none, gzip, zlib")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "gzip", "zlib"}));
  app->add_option("--record-type", f->record_type,
                  "TFRecord messages: example, or sequence_example (list<list<...>> "
                  "columns become feature lists)")
      ->capture_default_str()
      ->check(CLI::IsMember({"example", "sequence_example"}));
  app->add_option("--shards", f->shards,
                  "Write exactly N files (batches dealt round-robin); default: one file "
                  "per input partition");
  app->add_option("--max-rows-per-file", f->max_rows_per_file,
                  "Start a new file after this many rows");
  app->add_option("--max-bytes-per-file", f->max_bytes_per_file,
                  "Start a new file after about this many bytes (e.g. 256MB)");
  app->add_flag("--overwrite", f->overwrite,
                "Replace a non-empty output folder (atomically, when the job succeeds)");
}

void AddRunFlags(CLI::App* app, RunFlags* f) {
  app->add_option("-w,--workers", f->workers,
                  "Worker threads (default: all cores); output is the same whatever N")
      ->check(CLI::NonNegativeNumber);
  app->add_flag("--unordered", f->unordered,
                "Write batches as they finish instead of in input order (faster when "
                "partitions differ in cost; row order then varies between runs)");
  app->add_option("--memory-limit", f->memory_limit,
                  "Memory budget of the job, e.g. 4GB: Arrow data held by readers, "
                  "steps, grouped steps' buckets and the output queue; grouped steps "
                  "spill to --spill-dir to stay under it, and what cannot fit fails with "
                  "an error (default: unlimited)");
  app->add_option("--max-group-bytes", f->max_group_bytes,
                  "Largest group handed whole to a grouped operator; larger ones are "
                  "streamed or refused (default: a quarter of --memory-limit)");
  app->add_option("--spill-dir", f->spill_dir,
                  "Folder for spill files (default: $TMPDIR); removed after the run, and "
                  "those of killed runs by the next run");
}

arrow::Result<RunOptions> MakeRunOptions(const RunFlags& f) {
  RunOptions o;
  if (f.workers < 0) return arrow::Status::Invalid("option --workers: expected N >= 0");
  o.workers = f.workers;
  o.unordered = f.unordered;
  if (!f.memory_limit.empty()) {
    ARROW_ASSIGN_OR_RAISE(o.memory_limit, ParseByteSize(f.memory_limit, "--memory-limit"));
  }
  if (!f.max_group_bytes.empty()) {
    ARROW_ASSIGN_OR_RAISE(o.max_group_bytes,
                          ParseByteSize(f.max_group_bytes, "--max-group-bytes"));
  }
  o.spill_dir = f.spill_dir;
  o.cancel = InstallCancelHandler();
  std::vector<std::string> removed = exec::RemoveStaleSpillFolders(f.spill_dir);
  if (!removed.empty()) {
    std::string list;
    for (const auto& path : removed) list += (list.empty() ? "'" : ", '") + path + "'";
    std::fprintf(stderr,
                 "dlprep: removed %zu spill folder(s) left by runs that were killed "
                 "(their process is gone): %s\n",
                 removed.size(), list.c_str());
  }
  return o;
}

arrow::Result<RunOptions> MakeJobRunOptions(const RunFlags& flags, bool fail_on_error,
                                            const std::string& errors_path,
                                            Progress* progress,
                                            std::unique_ptr<exec::JsonLinesErrorSink>* errors) {
  ARROW_ASSIGN_OR_RAISE(RunOptions o, MakeRunOptions(flags));
  o.fail_on_row_error = fail_on_error;
  if (!errors_path.empty()) {
    *errors = std::make_unique<exec::JsonLinesErrorSink>(errors_path);
    o.error_sink = errors->get();
  }
  o.cancel = InstallCancelHandler();
  o.progress = progress;
  return o;
}

arrow::Status CompleteJob(const arrow::Result<RunStats>& run, const std::string& output_dir,
                          exec::JsonLinesErrorSink* errors, const std::string& errors_path,
                          nlohmann::json* stats) {
  if (!run.ok()) {
    return run.status().WithMessage(run.status().message(), "; nothing was written to '",
                                    output_dir, "'");
  }
  if (errors != nullptr) {
    ARROW_ASSIGN_OR_RAISE(int64_t kept, errors->Commit());
    (*stats)["errors"] = {{"path", errors_path}, {"rows", kept}};
  }
  (*stats)["run"] = nlohmann::json::parse(run->ToJson());
  (*stats)["output"] = {{"dir", output_dir},
                        {"files", run->files_written},
                        {"rows", run->rows_written},
                        {"bytes", run->bytes_written}};
  return arrow::Status::OK();
}

void PrintRowErrorSamples(const RunStats& run) {
  for (size_t i = 0; i < run.row_error_samples.size() && i < 10; ++i) {
    std::fprintf(stderr, "  %s\n", run.row_error_samples[i].c_str());
  }
}

void AddCommonFlags(CLI::App* app, CommonFlags* f) {
  app->add_option("--stats", f->stats_path, "Write a JSON summary of the job to this file");
  app->add_flag("-q,--quiet", f->quiet, "No progress line and no summary");
}

arrow::Result<std::string> DetectInputFormat(const InputFlags& flags) {
  if (flags.format != "auto") return flags.format;
  std::string found;
  for (const auto& p : flags.paths) {
    std::string fmt;
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      fs::path manifest = fs::path(p) / "_manifest.json";
      if (fs::exists(manifest, ec)) {
        std::ifstream in(manifest);
        auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
        if (j.is_object() && j.contains("format") && j["format"].is_string()) {
          fmt = j["format"].get<std::string>();
        }
      }
      if (fmt.empty()) {
        for (auto it = fs::recursive_directory_iterator(p, ec);
             !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
          std::string name = it->path().filename().string();
          if (name.empty() || name[0] == '.' || name[0] == '_') {
            if (it->is_directory(ec)) it.disable_recursion_pending();
            continue;
          }
          if (!it->is_regular_file(ec)) continue;
          fmt = FormatOfName(name);
          if (!fmt.empty()) break;
        }
      }
      if (fmt.empty()) {
        return arrow::Status::Invalid("cannot tell the format of folder '", p,
                                      "' (no _manifest.json and no file with a known "
                                      "extension); pass --input-format "
                                      "parquet|csv|json|tfrecord|binary");
      }
    } else {
      fmt = FormatOfName(p);
      if (fmt.empty()) {
        if (!fs::exists(p, ec) && p.find_first_of("*?[") == std::string::npos) {
          return arrow::Status::IOError("input '", p, "' does not exist");
        }
        return arrow::Status::Invalid("cannot tell the format of '", p,
                                      "' from its extension; pass --input-format "
                                      "parquet|csv|json|tfrecord|binary");
      }
    }
    if (!found.empty() && found != fmt) {
      return arrow::Status::Invalid("inputs mix formats (", found, " and ", fmt,
                                    " at '", p, "'); convert them separately");
    }
    found = fmt;
  }
  if (found.empty()) return arrow::Status::Invalid("no input given (--input)");
  return found;
}

arrow::Result<std::shared_ptr<Source>> OpenInput(const InputFlags& flags) {
  ARROW_ASSIGN_OR_RAISE(std::string format, DetectInputFormat(flags));
  std::vector<std::string> columns = SplitCommaList(flags.columns);
  if (format == "binary") {
    BinaryFilesOptions o;
    o.paths = flags.paths;
    o.name_filter = flags.name_filter;
    o.recursive = flags.recursive;
    o.read_content = !flags.no_content;
    if (!flags.max_file_size.empty()) {
      ARROW_ASSIGN_OR_RAISE(o.max_file_size,
                            ParseByteSize(flags.max_file_size, "--max-file-size"));
    }
    if (flags.files_per_partition <= 0) {
      return arrow::Status::Invalid("option --files-per-partition: expected a positive number");
    }
    o.files_per_partition = flags.files_per_partition;
    if (!columns.empty()) {
      return arrow::Status::Invalid("option --columns does not apply to binary input");
    }
    return OpenBinaryFiles(o);
  }
  if (format == "tfrecord") {
    TfRecordSourceOptions o;
    o.paths = flags.paths;
    ARROW_ASSIGN_OR_RAISE(o.compression, ParseCompression(flags.compression, "--input-compression"));
    ARROW_ASSIGN_OR_RAISE(o.record_type, ParseRecordType(flags.record_type));
    o.skip_corrupt = flags.skip_corrupt;
    o.columns = columns;
    return OpenTfRecordSource(o);
  }
  TableSourceOptions o;
  o.paths = flags.paths;
  o.columns = columns;
  auto table_format = TableFormatFromName(format);
  if (!table_format) return arrow::Status::Invalid("unknown input format '", format, "'");
  o.format = *table_format;
  return OpenTableSource(o);
}

arrow::Result<WriteOptions> MakeWriteOptions(const OutputFlags& f) {
  WriteOptions o;
  o.output_dir = f.output_dir;
  if (f.format == "tfrecord") {
    o.format = OutputFormat::kTfRecord;
  } else if (f.format == "parquet") {
    o.format = OutputFormat::kParquet;
  } else if (f.format == "csv") {
    o.format = OutputFormat::kCsv;
  } else {
    return arrow::Status::Invalid("option --format: '", f.format,
                                  "' is not a format; expected tfrecord, parquet or csv");
  }
  ARROW_ASSIGN_OR_RAISE(o.compression, ParseCompression(f.compression, "--compression"));
  if (o.compression == TfRecordCompression::kAuto) o.compression = TfRecordCompression::kNone;
  if (o.format != OutputFormat::kTfRecord && o.compression != TfRecordCompression::kNone) {
    return arrow::Status::Invalid("option --compression applies to --format tfrecord only");
  }
  ARROW_ASSIGN_OR_RAISE(o.record_type, ParseRecordType(f.record_type));
  if (f.shards < 0) return arrow::Status::Invalid("option --shards: expected N >= 1");
  if (f.max_rows_per_file < 0) {
    return arrow::Status::Invalid("option --max-rows-per-file: expected N >= 1");
  }
  o.shards = f.shards;
  o.max_rows_per_file = f.max_rows_per_file;
  if (!f.max_bytes_per_file.empty()) {
    ARROW_ASSIGN_OR_RAISE(o.max_bytes_per_file,
                          ParseByteSize(f.max_bytes_per_file, "--max-bytes-per-file"));
  }
  if (o.shards > 0 && (o.max_rows_per_file > 0 || o.max_bytes_per_file > 0)) {
    return arrow::Status::Invalid(
        "option --shards cannot be combined with --max-rows-per-file or "
        "--max-bytes-per-file; choose a file count or a file size");
  }
  o.overwrite = f.overwrite;
  return o;
}

void WarnAboutLeftoverAttempts(const std::string& output_dir) {
  fs::path out = fs::absolute(fs::path(output_dir)).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();
  std::string prefix = "." + out.filename().string() + ".dlprep-attempt-";
  std::error_code ec;
  for (auto it = fs::directory_iterator(out.parent_path(), ec);
       !ec && it != fs::directory_iterator(); it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.rfind(prefix, 0) == 0) {
      std::fprintf(stderr,
                   "dlprep: note: '%s' was left by a job that was killed before it could "
                   "clean up; readers ignore it. Remove it with: rm -rf '%s'\n",
                   it->path().c_str(), it->path().c_str());
    }
  }
}

const std::atomic<bool>* InstallCancelHandler() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  return &g_cancel;
}

arrow::Status CheckInterrupted() {
  if (g_cancel.load()) return arrow::Status::Cancelled("interrupted");
  return arrow::Status::OK();
}

arrow::Status WriteStats(const std::string& path, const std::string& json) {
  if (path.empty()) return arrow::Status::OK();
  std::ofstream out(path, std::ios::trunc);
  out << json << "\n";
  out.close();
  if (!out) return arrow::Status::IOError("--stats: cannot write '", path, "'");
  return arrow::Status::OK();
}

}  // namespace dlprep::cli
