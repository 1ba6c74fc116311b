// `dlprep audio`: labelled speech clips (binary files) -> log-mel spectrograms (and
// MFCC) equal to librosa's, with seeded noise augmentation -> TFRecord (the speech
// pipeline).
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/progress.h"
#include "core/text.h"
#include "core/units.h"
#include "dlprep/pipeline.h"
#include "exec/error_sink.h"
#include "features/audio/audio_operator.h"

namespace dlprep::cli {

namespace {

struct AudioFlags {
  InputFlags input;
  audio::AudioOptions audio;
  std::string snr_db = "5:20";
  OutputFlags output;
  RunFlags run;
  CommonFlags common;
  std::string errors_path;
  bool fail_on_error = false;
  ErrorLimitFlags limits;
  bool dry_run = false;
};

std::string Absolute(const std::string& path) {
  return std::filesystem::absolute(path).lexically_normal().string();
}

// The pipeline file (JSON, which is YAML) this command runs.
std::string PipelineFileText(const AudioFlags& f) {
  const auto& a = f.audio;
  const auto& s = a.spectrogram;
  std::vector<std::string> paths;
  for (const auto& p : f.input.paths) paths.push_back(Absolute(p));
  nlohmann::ordered_json source = {{"format", "binary"}, {"paths", paths}};
  if (!f.input.name_filter.empty()) source["name_filter"] = f.input.name_filter;
  if (f.input.recursive) source["recursive"] = true;
  source["files_per_partition"] = f.input.files_per_partition;
  nlohmann::ordered_json step = {
      {"sample_rate", s.sample_rate}, {"clip_seconds", a.clip_seconds},
      {"n_fft", s.n_fft},             {"win_length", s.win_length},
      {"hop_length", s.hop_length},   {"n_mels", s.n_mels},
      {"fmin", s.fmin},               {"fmax", s.fmax},
      {"top_db", s.top_db},           {"mfcc", s.n_mfcc},
      {"max_seconds", a.max_seconds}};
  if (!a.label_regex.empty()) step["label_regex"] = a.label_regex;
  if (!a.noise_dir.empty()) {
    step["noise"] = Absolute(a.noise_dir);
    step["copies"] = a.copies;
    step["snr_db"] = f.snr_db;
    step["seed"] = a.seed;
  }
  if (a.waveform) step["waveform"] = true;
  nlohmann::ordered_json sink = {{"format", f.output.format},
                                 {"path", Absolute(f.output.output_dir)}};
  if (f.output.format == "tfrecord") sink["compression"] = f.output.compression;
  sink["shards"] = f.output.shards;
  sink["overwrite"] = f.output.overwrite;
  nlohmann::ordered_json steps = nlohmann::json::array();
  steps.push_back({{"audio", step}});
  nlohmann::ordered_json doc = {{"source", source}, {"steps", steps}, {"sink", sink}};
  return "# dlprep audio as a pipeline file (JSON is YAML): dlprep run FILE\n" +
         DumpJson(doc, 2) + "\n";
}

arrow::Status RunAudioJob(AudioFlags f, nlohmann::json* stats_out) {
  nlohmann::json& stats = *stats_out;
  ARROW_RETURN_NOT_OK(audio::ParseSnrRange(f.snr_db, "option --snr-db",
                                           &f.audio.snr_min_db, &f.audio.snr_max_db));
  if (!f.audio.noise_dir.empty() && f.audio.copies == 0) {
    return arrow::Status::Invalid("option --noise needs --copies K (augmented copies per "
                                  "clip, K >= 1)");
  }
  ARROW_ASSIGN_OR_RAISE(auto featurizer, audio::AudioFeaturizer::Make(f.audio));
  if (f.dry_run) {
    std::fputs(PipelineFileText(f).c_str(), stdout);
    return arrow::Status::OK();
  }
  f.input.format = "binary";
  std::vector<std::string> inputs = f.input.paths;
  if (!f.audio.noise_dir.empty()) inputs.push_back(f.audio.noise_dir);
  ARROW_RETURN_NOT_OK(CheckOutputOutsideInputs(inputs, f.output.output_dir));
  ARROW_ASSIGN_OR_RAISE(auto source, OpenInput(f.input));
  ARROW_RETURN_NOT_OK(featurizer->OutputSchema(*source->schema()).status());
  WarnAboutLeftoverAttempts(f.output.output_dir);
  ARROW_ASSIGN_OR_RAISE(auto wopts, MakeWriteOptions(f.output));
  Pipeline pipeline = Pipeline::Read(source);
  pipeline.MapStateful(featurizer->factory()).Write(wopts);

  Progress progress("audio", source->num_partitions(), !f.common.quiet);
  std::unique_ptr<exec::JsonLinesErrorSink> errors;
  ARROW_ASSIGN_OR_RAISE(RunOptions run,
                        MakeJobRunOptions(f.run, f.fail_on_error, f.limits, f.errors_path,
                                          &progress, &errors));
  RunStats failed_run;
  auto result = pipeline.Run(run, &failed_run);
  progress.Finish();
  ARROW_RETURN_NOT_OK(CompleteJob(result, failed_run, f.output.output_dir, errors.get(),
                                  f.errors_path, &stats));
  stats["clips"] = result->rows_read;
  stats["failed_clips"] = result->row_errors;
  stats["rows"] = result->rows_written;
  stats["fft"] = audio::RealFftPair::backend();
  stats["noise_files"] = featurizer->noise_paths().size();
  // A run with failed clips says so even with -q.
  if (!f.common.quiet || result->row_errors > 0) {
    std::fprintf(stderr,
                 "dlprep audio: %lld clips -> %lld rows (%d augmented copies each) in '%s' "
                 "(%.2f s, %d workers)%s\n",
                 static_cast<long long>(result->rows_read),
                 static_cast<long long>(result->rows_written), f.audio.copies,
                 f.output.output_dir.c_str(), result->wall_seconds, result->workers,
                 result->row_errors > 0
                     ? (", " + std::to_string(result->row_errors) + " failed clip(s)").c_str()
                     : "");
    PrintRowErrorSamples(*result);
  }
  return arrow::Status::OK();
}

arrow::Status RunAudio(const AudioFlags& f) {
  nlohmann::json stats = {{"command", "audio"}};
  arrow::Status st = RunAudioJob(f, &stats);
  if (f.dry_run && st.ok()) return st;
  return FinishStats(st, f.common.stats_path, &stats);
}

}  // namespace

void AddAudioCommand(CLI::App* root, std::vector<Command>* commands) {
  auto f = std::make_shared<AudioFlags>();
  CLI::App* app = root->add_subcommand(
      "audio", "Audio clips -> log-mel spectrograms / MFCC as librosa computes them, with "
               "labels from paths and noise augmentation (speech)");
  auto& a = f->audio;
  auto& s = a.spectrogram;
  app->add_option("-i,--input", f->input.paths,
                  "Audio files, folders or globs (** for any depth); repeatable")
      ->required();
  app->add_option("--name-filter", f->input.name_filter,
                  "Keep files whose name matches this glob (e.g. '*.wav')");
  app->add_flag("--recursive", f->input.recursive, "List folders recursively");
  app->add_option("--max-file-size", f->input.max_file_size,
                  "Refuse (fail the job on) files larger than this (e.g. 64MB)");
  app->add_option("--files-per-partition", f->input.files_per_partition,
                  "Files per partition (one output file each by default)")
      ->capture_default_str();
  app->add_option("--sample-rate", s.sample_rate, "Resample every clip to this rate (soxr HQ)")
      ->capture_default_str();
  app->add_option("--clip-seconds", a.clip_seconds,
                  "Pad with zeros or cut every clip to this length (fixed shape); "
                  "default: keep lengths (seconds, or a duration such as 1500ms)")
      ->transform(DurationSeconds("--clip-seconds"));
  app->add_option("--max-seconds", a.max_seconds,
                  "Longer files are per-row errors (seconds, or a duration such as 10m; "
                  "0: no limit)")
      ->capture_default_str()
      ->transform(DurationSeconds("--max-seconds"));
  app->add_option("--n-fft", s.n_fft, "FFT size")->capture_default_str();
  app->add_option("--win-length", s.win_length, "Hann window length")->capture_default_str();
  app->add_option("--hop-length", s.hop_length, "Samples between frames")->capture_default_str();
  app->add_option("--n-mels", s.n_mels, "Mel bands")->capture_default_str();
  app->add_option("--fmin", s.fmin, "Lowest mel frequency (Hz)")->capture_default_str();
  app->add_option("--fmax", s.fmax, "Highest mel frequency (Hz; default: sample rate / 2)");
  app->add_option("--top-db", s.top_db,
                  "Clip the dB spectrogram to (max - top_db) per clip; negative: no clipping")
      ->capture_default_str();
  app->add_option("--mfcc", s.n_mfcc, "Also output N MFCC per frame (column mfcc)");
  app->add_option("--label-regex", a.label_regex,
                  "RE2 pattern with one capture group applied to the path: the label "
                  "(e.g. '([^/]+)/[^/]+$'); a path that does not match is a row error");
  app->add_option("--noise", a.noise_dir, "Folder of noise files for augmentation");
  app->add_option("--copies", a.copies, "Augmented copies per clip (with --noise)")
      ->capture_default_str();
  app->add_option("--snr-db", f->snr_db, "SNR range A:B in dB, drawn uniformly per copy")
      ->capture_default_str();
  app->add_option("--seed", a.seed, "Seed of the augmentation draws")->capture_default_str();
  app->add_flag("--waveform", a.waveform,
                "Also output the processed samples (mono, resampled, clipped, mixed) as "
                "column audio");
  AddOutputFlags(app, &f->output, "tfrecord");
  AddRunFlags(app, &f->run);
  CLI::Option* fail = app->add_flag("--fail-on-error", f->fail_on_error,
                                    "Fail on the first clip that cannot be decoded or "
                                    "labelled");
  AddErrorLimitFlags(app, &f->limits, fail);
  app->add_option("--errors", f->errors_path,
                  "Keep the failed clips (path and reason) in this JSON-lines file");
  app->add_flag("--dry-run", f->dry_run, "Print the pipeline file this command runs and exit");
  AddCommonFlags(app, &f->common);
  app->footer(
      "Output: path, label (with --label-regex), augment (0 = original), snr_db,\n"
      "sample_rate, num_samples, log_mel ([frames, n_mels], time-major) and mfcc.\n\n"
      "Example:\n"
      "  dlprep audio --input 'data/speech/**/*.wav' --clip-seconds 1 --mfcc 13 \\\n"
      "    --label-regex '([^/]+)/[^/]+$' --noise data/noise --copies 2 --snr-db 5:20 \\\n"
      "    --seed 42 --output out/speech --errors out/speech_errors.jsonl");
  commands->push_back({app, [f]() { return RunAudio(*f); }});
}

}  // namespace dlprep::cli
