#include "cli/common.h"

#include <fnmatch.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <optional>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/progress.h"
#include "core/text.h"
#include "core/units.h"
#include "exec/error_sink.h"
#include "exec/grouped.h"
#include "io/glob.h"

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

// Whether `name` is a TFRecord file by TensorFlow's usual names: x.tfrecord, x.tfrecords,
// x.tfrec, x.tfr, the sharded x.tfrecord-00000-of-00008 (any of those extensions), each
// optionally compressed (.gz, .gzip, .zz, .zlib). Compression itself is detected from
// the bytes, not the name.
bool IsTfRecordName(std::string name) {
  for (const char* ext : {".gz", ".gzip", ".zz", ".zlib"}) {
    if (EndsWith(name, ext)) {
      name.resize(name.size() - std::strlen(ext));
      break;
    }
  }
  // A shard suffix "-NNNNN-of-NNNNN".
  static const std::regex kShard("-[0-9]+-of-[0-9]+$");
  std::smatch m;
  if (std::regex_search(name, m, kShard)) name.resize(name.size() - m.length(0));
  for (const char* ext : {".tfrecord", ".tfrecords", ".tfrec", ".tfr"}) {
    if (EndsWith(name, ext)) return true;
  }
  return false;
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
  if (IsTfRecordName(name)) return "tfrecord";
  return "";
}

arrow::Result<TfRecordCompression> ParseCompression(const std::string& text,
                                                    const char* option) {
  if (auto c = TfRecordCompressionFromName(text)) return *c;
  return arrow::Status::Invalid("option ", option, ": '", text,
                                "' is not a compression; expected none, gzip or zlib");
}

arrow::Result<RecordType> ParseRecordType(const std::string& text, const char* option) {
  if (auto r = RecordTypeFromName(text)) return *r;
  return arrow::Status::Invalid("option ", option, ": '", text,
                                "' is not a record type; expected example or "
                                "sequence_example");
}

std::string ToLower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
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

std::vector<std::string> FlattenCommaLists(const std::vector<std::string>& values) {
  std::vector<std::string> out;
  for (const auto& v : values) {
    for (auto& item : SplitCommaList(v)) out.push_back(std::move(item));
  }
  return out;
}

CLI::Validator OneOf(const std::vector<std::string>& accepted) {
  std::string list;
  for (const auto& a : accepted) list += (list.empty() ? "" : "|") + a;
  return CLI::Validator(
      [accepted](std::string& value) -> std::string {
        for (const auto& a : accepted) {
          if (EqualsIgnoreCase(value, a)) {
            value = a;
            return "";
          }
        }
        std::string names;
        for (size_t i = 0; i < accepted.size(); ++i) {
          names += (i == 0 ? "" : (i + 1 == accepted.size() ? " or " : ", ")) + accepted[i];
        }
        return "'" + value + "' is not accepted; expected " + names;
      },
      list);
}

CLI::Validator DurationSeconds(const std::string& option) {
  return CLI::Validator(
      [option](std::string& value) -> std::string {
        auto seconds = ParseDuration(value, option);
        if (!seconds.ok()) {
          std::string message = seconds.status().message();
          std::string prefix = "option " + option + ": ";
          if (message.rfind(prefix, 0) == 0) message = message.substr(prefix.size());
          return message;
        }
        char buf[40];
        std::snprintf(buf, sizeof(buf), "%.17g", *seconds);
        value = buf;
        return "";
      },
      "DURATION");
}

void WarnDeprecated(const std::string& command, const std::string& old_name,
                    const std::string& new_name) {
  std::fprintf(stderr, "dlprep %s: warning: %s is deprecated; use %s\n", command.c_str(),
               old_name.c_str(), new_name.c_str());
}

void AddInputFlags(CLI::App* app, InputFlags* f, bool binary_options) {
  app->add_option("-i,--input", f->paths,
                  "Input files, folders or glob patterns (** for any depth); repeatable")
      ->required();
  app->add_option("--input-format", f->format,
                  "auto (from _manifest.json or extensions), parquet, csv, json (JSON "
                  "lines), tfrecord or binary (Spark's binaryFile table of the files)")
      ->capture_default_str()
      ->transform(OneOf({"auto", "parquet", "csv", "json", "tfrecord", "binary"}));
  app->add_option("--columns", f->columns, "Read only these columns, in this order (a,b,c)");
  auto tfrecord = [f](CLI::Option* o) { f->format_specific.emplace_back(o, "tfrecord"); };
  auto binary = [f](CLI::Option* o) { f->format_specific.emplace_back(o, "binary"); };
  tfrecord(app->add_flag(
      "--skip-corrupt", f->skip_corrupt,
      "TFRecord input: count, report and skip corrupt records instead of failing"));
  tfrecord(app->add_option("--input-compression", f->compression,
                           "TFRecord input compression: auto (detected per file), none, "
                           "gzip, zlib")
               ->capture_default_str()
               ->transform(OneOf({"auto", "none", "gzip", "zlib"})));
  tfrecord(app->add_option("--input-record-type", f->record_type,
                           "TFRecord input messages: example or sequence_example")
               ->capture_default_str()
               ->transform(OneOf({"example", "sequence_example"})));
  if (binary_options) {
    binary(app->add_option("--name-filter", f->name_filter,
                           "binary: keep files whose name matches this glob (e.g. '*.wav')"));
    binary(app->add_flag("--recursive", f->recursive, "binary: list folders recursively"));
    binary(app->add_flag(
        "--no-content", f->no_content,
        "binary: leave the content column null (list files without reading them)"));
    binary(app->add_option(
        "--max-file-size", f->max_file_size,
        "binary: refuse files larger than this (e.g. 64MB; default 2 GiB - 1)"));
    binary(app->add_option("--files-per-partition", f->files_per_partition,
                           "binary: files per partition (one output file each by default)")
               ->capture_default_str());
  }
}

void AddOutputFlags(CLI::App* app, OutputFlags* f, const std::string& default_format) {
  f->format = default_format;
  app->add_option("-o,--output", f->output_dir,
                  "Output folder; must be absent or empty unless --overwrite")
      ->required();
  app->add_option("--format", f->format, "Output format: tfrecord, parquet or csv")
      ->capture_default_str()
      ->transform(OneOf({"tfrecord", "parquet", "csv"}));
  f->tfrecord_only.push_back(
      app->add_option("--compression", f->compression,
                      "TFRecord compression: none, gzip, zlib")
          ->capture_default_str()
          ->transform(OneOf({"none", "gzip", "zlib"})));
  f->tfrecord_only.push_back(
      app->add_option("--record-type", f->record_type,
                      "TFRecord messages: example, or sequence_example (list<list<...>> "
                      "columns become feature lists)")
          ->capture_default_str()
          ->transform(OneOf({"example", "sequence_example"})));
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

namespace {

// A whole number >= 0 (CLI11's NonNegativeNumber names its range "0 to 1.8e308").
CLI::Validator Count() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        int64_t n = 0;
        if (!CLI::detail::lexical_cast(text, n) || n < 0) {
          return "'" + text + "' is not a count; expected a whole number >= 0";
        }
        return "";
      },
      "N>=0");
}

// A number from 0 to 1.
CLI::Validator Fraction() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        double x = 0;
        if (!CLI::detail::lexical_cast(text, x) || !(x >= 0 && x <= 1)) {
          return "'" + text + "' is not a fraction; expected a number from 0 to 1 "
                 "(e.g. 0.05 for 5%)";
        }
        return "";
      },
      "0..1");
}

}  // namespace

void AddRunFlags(CLI::App* app, RunFlags* f) {
  app->add_option("-w,--workers", f->workers,
                  "Worker threads (default: all cores); output is the same whatever N")
      ->check(Count());
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

void AddErrorLimitFlags(CLI::App* app, ErrorLimitFlags* f, CLI::Option* fail_on_error) {
  f->rate_option =
      app->add_option("--max-error-rate", f->max_error_rate,
                      "Fail the job (exit 1, nothing written) when more than this fraction "
                      "of the input rows failed, 0 to 1")
          ->capture_default_str()
          ->check(Fraction());
  f->count_option =
      app->add_option("--max-errors", f->max_errors,
                      "Fail the job (exit 1, nothing written) when more than N rows failed "
                      "(default: no limit by count)")
          ->check(Count());
  if (fail_on_error != nullptr) {
    fail_on_error->excludes(f->rate_option);
    fail_on_error->excludes(f->count_option);
  }
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
                                            const ErrorLimitFlags& limits,
                                            const std::string& errors_path,
                                            Progress* progress,
                                            std::unique_ptr<exec::JsonLinesErrorSink>* errors) {
  ARROW_ASSIGN_OR_RAISE(RunOptions o, MakeRunOptions(flags));
  o.fail_on_row_error = fail_on_error;
  o.max_error_rate = fail_on_error ? 0.0 : limits.max_error_rate;
  o.max_errors = limits.max_errors;
  if (!errors_path.empty()) {
    *errors = std::make_unique<exec::JsonLinesErrorSink>(errors_path);
    o.error_sink = errors->get();
  }
  o.cancel = InstallCancelHandler();
  o.progress = progress;
  return o;
}

arrow::Status CompleteJob(const arrow::Result<RunStats>& run, const RunStats& failed_run,
                          const std::string& output_dir, exec::JsonLinesErrorSink* errors,
                          const std::string& errors_path, nlohmann::json* stats) {
  if (!run.ok()) {
    if (failed_run.row_errors > 0) {
      (*stats)["status"] = "failed";
      (*stats)["rows_read"] = failed_run.rows_read;
      (*stats)["rows_failed"] = failed_run.row_errors;
      (*stats)["first_error"] = failed_run.row_error_samples.empty()
                                    ? std::string()
                                    : failed_run.row_error_samples.front();
      (*stats)["run"] = nlohmann::json::parse(failed_run.ToJson());
      // The failed rows are what the user needs to see now: keep them.
      if (errors != nullptr) {
        auto kept = errors->Commit();
        if (kept.ok()) {
          (*stats)["errors"] = {{"path", errors_path}, {"rows", *kept}};
          return run.status().WithMessage(run.status().message(),
                                          "; nothing was written to '", output_dir,
                                          "'; the failed rows are in '", errors_path, "'");
        }
      }
    }
    return run.status().WithMessage(run.status().message(), "; nothing was written to '",
                                    output_dir, "'");
  }
  (*stats)["rows_read"] = run->rows_read;
  (*stats)["rows_failed"] = run->row_errors;
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

arrow::Status FinishStats(const arrow::Status& st, const std::string& stats_path,
                          nlohmann::json* stats) {
  if (st.ok()) {
    (*stats)["status"] = "ok";
  } else {
    if (st.IsCancelled() || !CheckInterrupted().ok()) {
      (*stats)["status"] = "interrupted";
    } else if (stats->value("status", "") != "failed") {
      (*stats)["status"] = "error";
    }
    (*stats)["error"] = st.message();
  }
  arrow::Status written = WriteStats(stats_path, DumpJson(*stats, 2));
  return st.ok() ? written : st;
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
  if (!EqualsIgnoreCase(flags.format, "auto")) return ToLower(flags.format);
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
  for (const auto& [option, applies_to] : flags.format_specific) {
    if (option->count() > 0 && applies_to != format) {
      return arrow::Status::Invalid("option ", option->get_name(), " applies to ",
                                    applies_to, " input only, and the input is ", format,
                                    "; remove the option");
    }
  }
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
    ARROW_ASSIGN_OR_RAISE(o.compression, ParseCompression(ToLower(flags.compression),
                                                          "--input-compression"));
    ARROW_ASSIGN_OR_RAISE(o.record_type, ParseRecordType(ToLower(flags.record_type),
                                                         "--input-record-type"));
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
  for (const CLI::Option* option : f.tfrecord_only) {
    if (option->count() > 0 && f.format != "tfrecord") {
      return arrow::Status::Invalid("option ", option->get_name(),
                                    " applies to --format tfrecord only, and the format is ",
                                    f.format, "; remove the option");
    }
  }
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
  ARROW_ASSIGN_OR_RAISE(o.record_type, ParseRecordType(f.record_type, "--record-type"));
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
