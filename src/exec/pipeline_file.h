#pragma once
// Pipeline files: the YAML form of a pipeline that `dlprep run` executes.
//
//     source: {format: parquet, paths: [events/], columns: [id, path, x]}
//     steps:
//       - filter: {expr: "x > 3 and kind == 'a'"}
//       - regex_extract: {column: path, pattern: '([^/]+)/[^/]+$', output: label}
//       - split: {key: id, fractions: {train: 0.8, test: 0.2}, seed: 1}
//     sink: {format: tfrecord, path: out/tfr, compression: gzip, shards: 4}
//
// Relative paths (source paths, sink path, a join's side-table paths) are resolved
// against the folder of the pipeline file. Every key is checked: an unknown or
// misplaced key is an error naming the file, line and column, the key, and the keys
// that are accepted there.
//
// Steps come from a registry that maps a step name to a StepFactory. The built-in
// operators (select, rename, cast, filter, regex_extract, split, join) are always
// registered. Another module adds its own steps by calling RegisterStep() once before
// any pipeline file is loaded, e.g. from the CLI's main() or from the module's own
// `RegisterXyzSteps()` function that the CLI calls (no self-registering static objects:
// the linker drops them from static libraries):
//
//     dlprep::exec::RegisterStep("mel_spectrogram", [](ConfigNode* o)
//         -> arrow::Result<PipelineStep> {
//       ARROW_ASSIGN_OR_RAISE(std::string column, o->GetString("column"));
//       ARROW_ASSIGN_OR_RAISE(int64_t n_mels, o->GetInt("n_mels", 64));
//       ... build the operator, return it as a PipelineStep ...
//     });
//
// A factory reads its options only through ConfigNode's getters: each getter marks the
// key as known and records its value (with defaults filled in) for the normalized
// pipeline that `--dry-run` prints, so a factory needs no list of its keys.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>

#include "dlprep/pipeline.h"
#include "dlprep/sink.h"
#include "dlprep/source.h"

namespace dlprep::exec {

/// One mapping of a pipeline file (a step's options, a source, a sink), read through
/// typed getters. Errors from the getters name the file, line and column, the context
/// ("step 2 (split)") and the option, and say what was expected. A getter without a
/// default fails when the key is absent; one with a default returns it.
///
/// Move-only; not thread-safe (used by one thread while a file is loaded). Does not
/// own the file text beyond its own copy of the parsed node.
class ConfigNode {
 public:
  ConfigNode(ConfigNode&&) noexcept;
  ConfigNode& operator=(ConfigNode&&) noexcept;
  ~ConfigNode();

  /// "step 2 (split)", "source", "sink", "step 3 (join): source".
  const std::string& context() const;
  /// Whether the mapping has `key` (does not mark it known).
  bool Has(const std::string& key) const;

  arrow::Result<std::string> GetString(const std::string& key);
  arrow::Result<std::string> GetString(const std::string& key, const std::string& def);
  arrow::Result<int64_t> GetInt(const std::string& key);
  arrow::Result<int64_t> GetInt(const std::string& key, int64_t def);
  arrow::Result<double> GetDouble(const std::string& key);
  arrow::Result<double> GetDouble(const std::string& key, double def);
  arrow::Result<bool> GetBool(const std::string& key, bool def);
  /// A byte count: a number, or text such as "64MB" (see ParseByteSize).
  arrow::Result<int64_t> GetByteSize(const std::string& key, int64_t def);
  /// A duration in seconds: a number of seconds, or text such as "500ms", "1.5h", "2w"
  /// (see ParseDuration).
  arrow::Result<double> GetDuration(const std::string& key);
  arrow::Result<double> GetDuration(const std::string& key, double def);
  /// GetDuration() for options counted in whole seconds (see ParseWholeSeconds).
  arrow::Result<int64_t> GetWholeSeconds(const std::string& key);
  arrow::Result<int64_t> GetWholeSeconds(const std::string& key, int64_t def);
  /// One of `accepted` (lower case), matched case-insensitively and returned as written
  /// in `accepted`; an error names the option and lists the accepted values.
  arrow::Result<std::string> GetEnum(const std::string& key,
                                     const std::vector<std::string>& accepted);
  arrow::Result<std::string> GetEnum(const std::string& key,
                                     const std::vector<std::string>& accepted,
                                     const std::string& def);
  /// A sequence of strings; a single string is accepted as a list of one. An absent
  /// key fails (first form) or gives `def`.
  arrow::Result<std::vector<std::string>> GetStringList(const std::string& key);
  arrow::Result<std::vector<std::string>> GetStringList(const std::string& key,
                                                        std::vector<std::string> def);
  /// A mapping of strings to strings / numbers, in file order.
  arrow::Result<std::vector<std::pair<std::string, std::string>>> GetStringMap(
      const std::string& key);
  arrow::Result<std::vector<std::pair<std::string, double>>> GetNumberMap(
      const std::string& key);
  /// A nested mapping (a join's side-table source). Call Finish() on it too.
  arrow::Result<ConfigNode> GetMap(const std::string& key);

  /// `path` resolved against the pipeline file's folder (absolute paths unchanged).
  std::string ResolvePath(const std::string& path) const;

  /// Fails, naming the first key that no getter asked for (file, line, column) and
  /// listing the keys that were asked for, i.e. the ones accepted here.
  arrow::Status Finish() const;

  /// An error about option `key` of this mapping, prefixed with its location.
  arrow::Status OptionError(const std::string& key, const std::string& message) const;

  struct Impl;

 private:
  explicit ConfigNode(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  friend struct ConfigNodeAccess;
};

/// Makes one step from its options. Thread-safety: called from the loading thread.
using StepFactory = std::function<arrow::Result<PipelineStep>(ConfigNode* options)>;

/// Registers step `name` (process-wide). AlreadyExists when the name is taken.
/// Thread-safe.
arrow::Status RegisterStep(const std::string& name, StepFactory factory);

/// Names of the registered steps, sorted. Thread-safe.
std::vector<std::string> RegisteredSteps();

/// Opens the source a mapping describes: `format` (parquet, csv, json, tfrecord,
/// binary; required), `paths` (required) and the format's options (table: columns,
/// hive_partitioning, batch_rows; tfrecord: columns, compression, record_type,
/// skip_corrupt, batch_rows; binary: name_filter, recursive, read_content,
/// max_file_size, files_per_partition, batch_rows). Does not call Finish().
arrow::Result<std::shared_ptr<Source>> OpenSourceFromConfig(ConfigNode* node);

/// Reads a sink mapping: `path` (required), `format` (tfrecord, parquet, csv; default
/// tfrecord), `compression` (none, gzip, zlib; TFRecord only), `record_type`,
/// `shards`, `max_rows_per_file`, `max_bytes_per_file`, `overwrite`. Does not call
/// Finish().
arrow::Result<WriteOptions> WriteOptionsFromConfig(ConfigNode* node);

/// A loaded pipeline file: sources opened, steps made, nothing run yet.
struct PipelineFile {
  std::shared_ptr<Source> source;
  std::vector<PipelineStep> steps;
  WriteOptions write;
  /// Top-level `max_error_rate` and `max_errors` (RunOptions' fields of those names).
  double max_error_rate = kDefaultMaxErrorRate;
  int64_t max_errors = -1;
  /// The paths the source and the steps' own sources (a join's side table) read, as
  /// given (globs unexpanded), resolved against the file's folder.
  std::vector<std::string> input_paths;
  /// The pipeline as read, with defaults filled in and paths resolved, as YAML.
  std::string normalized_yaml;

  /// The pipeline: Read(source), the steps in order, Write(write).
  Pipeline ToPipeline() const;
};

/// Which parts a pipeline text must have. The Python package builds pipelines whose
/// source (an Arrow stream) or sink (batches handed back to Python) is not a file; it
/// parses the rest with `source` / `sink` false, and a part that is absent is then left
/// empty (`source` null, `write.output_dir` empty) instead of being an error.
struct PipelineParts {
  bool source = true;
  bool sink = true;
};

/// Parses pipeline YAML. `name` is used in messages ("labels.yaml"); relative paths
/// are resolved against `base_dir`. Opens the sources (so missing inputs fail here)
/// but reads no data. Errors name the file, line and column.
arrow::Result<PipelineFile> ParsePipelineYaml(const std::string& text,
                                              const std::string& name,
                                              const std::string& base_dir,
                                              const PipelineParts& parts = {});

/// Reads and parses the pipeline file at `path` (IOError when it cannot be read).
arrow::Result<PipelineFile> LoadPipelineFile(const std::string& path);

}  // namespace dlprep::exec
