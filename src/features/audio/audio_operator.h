#pragma once
// The audio featurizer (issue 5): binary_files rows (path, content) -> log-mel
// spectrograms (and MFCC) equal to librosa's, with labels from the paths and seeded
// noise augmentation.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type_fwd.h>

#include "dlprep/operator.h"
#include "features/audio/dsp.h"

namespace dlprep::audio {

/// Options of the audio operator. `spectrogram.sample_rate` is the rate every clip is
/// resampled to (soxr HQ) before featurization.
struct AudioOptions {
  SpectrogramOptions spectrogram;
  /// > 0: pad with zeros at the end or cut to exactly round(clip_seconds * rate)
  /// samples, so every row has the same shape. <= 0: keep each clip's length.
  double clip_seconds = 0;
  /// Files longer than this (from their header, before decoding) are per-row errors;
  /// <= 0: no limit.
  double max_seconds = 600;
  /// RE2 pattern with exactly one capture group, matched against `path`; its group is
  /// the `label` column. A path that does not match is a per-row error. Empty: no label
  /// column.
  std::string label_regex;
  /// Folder of noise files (searched recursively, sorted by path; any supported audio
  /// format), decoded and resampled once per run. Empty: no augmentation.
  std::string noise_dir;
  /// Augmented copies per clip (requires noise_dir).
  int copies = 0;
  /// SNR range in dB of the augmented copies, drawn uniformly.
  double snr_min_db = 5, snr_max_db = 20;
  uint64_t seed = 0;
  /// Also output the processed samples (mono, resampled, clipped, mixed) as `audio`.
  bool waveform = false;
  std::string path_column = "path";
  std::string content_column = "content";
};

/// The random choices of augmented copy `copy` (>= 1) of the clip at `path`: which noise
/// file, where in it the noise starts, and the SNR. A pure function of
/// (seed, path, copy): a splitmix64 stream seeded from the seed, the FNV-1a hash of the
/// path and the copy index.
struct NoiseDraw {
  int64_t noise_index = 0;
  int64_t offset = 0;
  double snr_db = 0;
};
NoiseDraw DrawNoise(uint64_t seed, std::string_view path, int copy, int64_t num_noise,
                    const std::vector<int64_t>& noise_lengths, double snr_min_db,
                    double snr_max_db);

/// Adds `noise` (looped from `offset` when shorter than `x`) to `x` scaled so that
/// 10*log10(mean(x^2) / mean((g*noise)^2)) = snr_db, into `out` (n values). When the
/// clip or the noise segment is silent (power 0), `out` is a copy of `x`.
void MixAtSnr(const float* x, int64_t n, const std::vector<float>& noise, int64_t offset,
              double snr_db, float* out);

/// Validated options plus everything shared by the workers (window, filterbank, DCT,
/// decoded noise). Immutable after Make(); thread-safe to share.
class AudioFeaturizer {
 public:
  /// Validates the options (Invalid naming the option) and loads the noise files (an
  /// empty folder or a file that does not decode fails the job, naming the file).
  static arrow::Result<std::shared_ptr<const AudioFeaturizer>> Make(AudioOptions options);

  /// The output schema for input of schema `input`: path, [label], augment, snr_db,
  /// sample_rate, num_samples, log_mel [, mfcc] [, audio]. TypeError when `path` is not a
  /// string column or `content` not binary.
  arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(const arrow::Schema& input) const;

  /// Creates one unopened operator per worker.
  StatefulOperatorFactory factory() const;

  const AudioOptions& options() const { return options_; }
  const std::shared_ptr<const SpectrogramTables>& tables() const { return tables_; }
  /// Frames per row when clip_seconds > 0, else -1.
  int64_t fixed_frames() const;
  /// Samples per row when clip_seconds > 0, else -1.
  int64_t clip_samples() const { return clip_samples_; }
  const std::vector<std::vector<float>>& noise() const { return noise_; }
  const std::vector<std::string>& noise_paths() const { return noise_paths_; }
  const std::vector<int64_t>& noise_lengths() const { return noise_lengths_; }
  /// The regex_extract step used for labels (stateful, on_mismatch: error); unset
  /// without a label_regex.
  const StatefulOperatorFactory& label_step() const { return label_step_; }

 private:
  AudioFeaturizer() = default;
  AudioOptions options_;
  std::shared_ptr<const SpectrogramTables> tables_;
  int64_t clip_samples_ = -1;
  std::vector<std::vector<float>> noise_;
  std::vector<std::string> noise_paths_;
  std::vector<int64_t> noise_lengths_;
  StatefulOperatorFactory label_step_;
  std::weak_ptr<const AudioFeaturizer> self_;
};

/// Registers the pipeline-file step `audio` (options as AudioOptions, in snake_case:
/// sample_rate, clip_seconds, n_fft, win_length, hop_length, n_mels, fmin, fmax, top_db,
/// mfcc, max_seconds, label_regex, noise, copies, snr_db "A:B", seed, waveform).
arrow::Status RegisterAudioStep();

/// Parses "A:B" (A <= B, dB) for --snr-db; Invalid naming `option` otherwise.
arrow::Status ParseSnrRange(const std::string& text, const std::string& option, double* lo,
                            double* hi);

}  // namespace dlprep::audio
