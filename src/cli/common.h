#pragma once
// Flags and helpers shared by the dlprep subcommands. The CLI stays thin: it parses
// flags into the library's option structs, runs, and turns a Status into one line.

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <arrow/result.h>
#include <arrow/status.h>
#include <nlohmann/json_fwd.hpp>

#include "dlprep/pipeline.h"
#include "io/glob.h"
#include "dlprep/sink.h"
#include "dlprep/source.h"

namespace dlprep {
class Progress;
namespace exec {
class JsonLinesErrorSink;
}  // namespace exec
}  // namespace dlprep

namespace dlprep::cli {

/// Flags that choose and configure an input.
struct InputFlags {
  std::vector<std::string> paths;
  std::string format = "auto";  // auto|parquet|csv|json|tfrecord|binary
  std::string columns;          // comma-separated projection
  bool skip_corrupt = false;
  std::string compression = "auto";
  std::string record_type = "example";
  // binary_files
  std::string name_filter;
  bool recursive = false;
  bool no_content = false;
  std::string max_file_size;  // empty: the library default (2 GiB - 1, as Spark)
  int64_t files_per_partition = 1000;
  /// Options that apply to one input format only, with that format ("tfrecord",
  /// "binary"), as AddInputFlags added them: OpenInput refuses one that was given for
  /// an input of another format.
  std::vector<std::pair<const CLI::Option*, std::string>> format_specific;
};

/// Flags that configure a sink.
struct OutputFlags {
  std::string output_dir;
  std::string format = "tfrecord";
  std::string compression = "none";
  std::string record_type = "example";
  int64_t shards = 0;
  int64_t max_rows_per_file = 0;
  std::string max_bytes_per_file;
  bool overwrite = false;
  /// Options that apply to --format tfrecord only (--compression, --record-type), as
  /// AddOutputFlags added them: MakeWriteOptions refuses one given for another format.
  std::vector<const CLI::Option*> tfrecord_only;
};

/// Flags every command has.
struct CommonFlags {
  std::string stats_path;
  bool quiet = false;
};

/// Flags of commands that run a Pipeline (workers, memory budget, grouped steps).
struct RunFlags {
  int workers = 0;
  bool unordered = false;
  std::string memory_limit;     // "4GB"; empty: unlimited
  std::string max_group_bytes;  // empty: no limit of its own
  std::string spill_dir;        // empty: $TMPDIR
};

/// --max-error-rate and --max-errors of commands whose rows can fail.
struct ErrorLimitFlags {
  double max_error_rate = kDefaultMaxErrorRate;
  int64_t max_errors = -1;
  CLI::Option* rate_option = nullptr;   // set by AddErrorLimitFlags
  CLI::Option* count_option = nullptr;  // set by AddErrorLimitFlags
};

/// Adds --max-error-rate and --max-errors; both exclude `fail_on_error` (the
/// --fail-on-error flag, which means rate 0 and stops at the first failed row).
void AddErrorLimitFlags(CLI::App* app, ErrorLimitFlags* flags, CLI::Option* fail_on_error);

void AddRunFlags(CLI::App* app, RunFlags* flags);
/// RunOptions from the flags, with Ctrl-C handling; Invalid naming the flag on a bad
/// size. Also removes the spill folders that runs killed outright left in the spill
/// folder, saying so in one line on stderr.
arrow::Result<RunOptions> MakeRunOptions(const RunFlags& flags);

/// The RunOptions of a job that reports per-row errors: MakeRunOptions(flags) plus
/// --fail-on-error (which also sets the error rate to 0), --max-error-rate and
/// --max-errors, the --errors JSON-lines sink when `errors_path` is set (created in
/// `*errors`, which must outlive the run), Ctrl-C handling and `progress`.
arrow::Result<RunOptions> MakeJobRunOptions(const RunFlags& flags, bool fail_on_error,
                                            const ErrorLimitFlags& limits,
                                            const std::string& errors_path,
                                            Progress* progress,
                                            std::unique_ptr<exec::JsonLinesErrorSink>* errors);

/// What a job command does once Pipeline::Run returned. A failed run: its status, adding
/// that nothing was written to `output_dir` (the commit protocol); when it failed for
/// its failed rows (`failed_run.row_errors` > 0, as Pipeline::Run fills it), also
/// (*stats)["status"] = "failed", "rows_read", "rows_failed", "first_error" and "run",
/// and the --errors file is committed (so the failed rows can be looked at).
/// A successful one: commits the --errors file when `errors` is set and fills
/// (*stats)["run"], (*stats)["output"] (dir, files, rows, bytes), "rows_read",
/// "rows_failed" and (*stats)["errors"].
arrow::Status CompleteJob(const arrow::Result<RunStats>& run, const RunStats& failed_run,
                          const std::string& output_dir, exec::JsonLinesErrorSink* errors,
                          const std::string& errors_path, nlohmann::json* stats);

/// Ends a command's --stats document: "status" ("ok", "interrupted", "failed" when
/// CompleteJob set it, else "error") and "error" (the message) from `st`, then writes
/// it to `stats_path` (when set). Returns `st`, or the write's error when `st` is OK.
arrow::Status FinishStats(const arrow::Status& st, const std::string& stats_path,
                          nlohmann::json* stats);

/// Prints the row errors a run sampled (at most 10), under a command's summary line.
void PrintRowErrorSamples(const RunStats& run);

void AddInputFlags(CLI::App* app, InputFlags* flags, bool binary_options);
void AddOutputFlags(CLI::App* app, OutputFlags* flags, const std::string& default_format);
void AddCommonFlags(CLI::App* app, CommonFlags* flags);
void AddRunFlags(CLI::App* app, RunFlags* flags);

/// Resolves "auto" to a concrete input format from the paths (_manifest.json of a
/// dlprep folder, else file extensions). Invalid with advice when it cannot tell.
arrow::Result<std::string> DetectInputFormat(const InputFlags& flags);

arrow::Result<std::shared_ptr<Source>> OpenInput(const InputFlags& flags);
arrow::Result<WriteOptions> MakeWriteOptions(const OutputFlags& flags);

using io::CheckOutputOutsideInputs;

/// Prints a note for leftover attempt folders of jobs that were killed before they
/// could clean up, with the command that removes them.
void WarnAboutLeftoverAttempts(const std::string& output_dir);

/// Set by SIGINT/SIGTERM; a second signal kills the process the default way. main()
/// installs it before anything else, so that a signal at any time is an orderly exit
/// 130; commands call it again (harmlessly) for the flag.
const std::atomic<bool>* InstallCancelHandler();

/// Cancelled("interrupted") once SIGINT/SIGTERM arrived; commands check it between
/// steps that come before Pipeline::Run (which checks it itself).
arrow::Status CheckInterrupted();

/// Writes the --stats JSON (when a path was given). `json` is a serialized object.
arrow::Status WriteStats(const std::string& path, const std::string& json);

std::vector<std::string> SplitCommaList(const std::string& text);

/// Splits every value of a repeatable option at commas ("--x a,b --x c" -> a, b, c).
std::vector<std::string> FlattenCommaLists(const std::vector<std::string>& values);

/// A CLI11 transform for enumerations: accepts `accepted` in any letter case and
/// stores the spelling of `accepted`; a wrong value names the option and lists them.
CLI::Validator OneOf(const std::vector<std::string>& accepted);

/// A CLI11 transform for durations (see ParseDuration: "500ms", "30s", "1.5h", "2w", or
/// a bare number of seconds): stores the number of seconds, so the option can be a
/// double; a wrong value names `option` and says what was expected.
CLI::Validator DurationSeconds(const std::string& option);

/// Prints that `old_name` is a deprecated spelling of `new_name` (one line on stderr).
void WarnDeprecated(const std::string& command, const std::string& old_name,
                    const std::string& new_name);

}  // namespace dlprep::cli
