#pragma once
// The signal-processing pieces of the audio featurizer: window, real FFT, Slaney mel
// filterbank, power_to_db and the orthonormal DCT-II, each defined to match librosa
// 0.10 (see docs/commands/audio.md). Everything here is plain C++ on float buffers; no
// Arrow.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace dlprep::audio {

/// Slaney mel scale (librosa `hz_to_mel(htk=False)`): linear below 1 kHz, logarithmic
/// above.
double HzToMel(double hz);
/// Inverse of HzToMel (librosa `mel_to_hz(htk=False)`).
double MelToHz(double mel);

/// librosa `get_window('hann', win_length, fftbins=True)` zero-padded, centered, to
/// `n_fft` (librosa `pad_center`). win_length <= n_fft.
std::vector<float> PaddedHannWindow(int n_fft, int win_length);

/// The Slaney-normalized mel filterbank of librosa `filters.mel(sr, n_fft, n_mels,
/// fmin, fmax, htk=False, norm='slaney')`, computed in double and stored as float,
/// kept sparse: filter m has weights for FFT bins [start[m], start[m] + weights[m].size()).
/// Immutable after construction; thread-safe to share.
class MelFilterbank {
 public:
  MelFilterbank(double sample_rate, int n_fft, int n_mels, double fmin, double fmax);

  /// Spectra per Apply() call: Apply() sums each filter for kBlock spectra at once,
  /// one spectrum per SIMD lane, so no sum is split across lanes.
  static constexpr int kBlock = 8;

  int n_mels() const { return static_cast<int>(start_.size()); }
  int n_bins() const { return n_bins_; }
  /// out[s * out_stride + m] = sum_k weight[m][k] * power[k * kBlock + s] for
  /// m in [0, n_mels) and s in [0, spectra): `power` holds kBlock spectra bin-major
  /// (n_bins() * kBlock values; those of spectra >= `spectra` are read, not used).
  /// Each sum runs over k in order, so a result does not depend on the other spectra
  /// of the block nor on the CPU's vector width.
  void Apply(const float* power, int spectra, float* out, int out_stride) const;
  /// The dense [n_mels, n_bins] matrix (row-major), for tests.
  std::vector<float> Dense() const;

 private:
  int n_bins_;
  std::vector<int> start_;
  std::vector<std::vector<float>> weights_;
};

/// Power spectra of two real frames of n samples at once: one complex FFT of
/// z = a + i*b, from which A[k] = (Z[k] + conj(Z[n-k])) / 2 and
/// B[k] = (Z[k] - conj(Z[n-k])) / 2i. With FFTW's estimated plans a complex transform
/// of n points costs less than two real ones (bench/audio_fft_benchmark.cc); the
/// KissFFT build, whose real transform is the faster, transforms each frame alone.
/// The backend is chosen at build time: FFTW3 single precision by default (GPL), or
/// KissFFT (BSD-3) with -DDLPREP_AUDIO_FFTW=OFF. Not thread-safe: one instance per
/// thread. Creating an FFTW plan is serialized process-wide with a mutex (the FFTW
/// planner is not thread-safe); plans use FFTW_ESTIMATE, so every run computes the same
/// bits.
class RealFftPair {
 public:
  explicit RealFftPair(int n);
  ~RealFftPair();
  RealFftPair(const RealFftPair&) = delete;
  RealFftPair& operator=(const RealFftPair&) = delete;

  int size() const { return n_; }
  /// The two frames, n floats each. Zero after construction; values written stay until
  /// overwritten.
  float* input_a() { return input_a_; }
  float* input_b() { return input_b_; }
  /// |A[k]|^2 and |B[k]|^2 for k in [0, n/2] (n/2 + 1 values each), side by side:
  /// A[k] to power[k * stride], B[k] to power[k * stride + 1] (stride >= 2; the layout
  /// MelFilterbank::Apply reads with stride kBlock).
  void PowerSpectra(float* power, int stride);
  /// Name of the backend ("fftw3f" or "kissfft").
  static const char* backend();

 private:
  struct Impl;
  int n_;
  float* input_a_ = nullptr;
  float* input_b_ = nullptr;
  std::unique_ptr<Impl> impl_;
};

/// Options of the log-mel spectrogram (librosa names).
struct SpectrogramOptions {
  double sample_rate = 16000;
  int n_fft = 512;
  int win_length = 400;
  int hop_length = 160;
  int n_mels = 64;
  double fmin = 0;
  double fmax = -1;  ///< < 0: sample_rate / 2
  double top_db = 80;  ///< < 0: no clipping
  int n_mfcc = 0;      ///< 0: no MFCC
};

/// Checks the options (positive sizes, win_length <= n_fft, 0 <= fmin < fmax <= rate/2,
/// n_mfcc <= n_mels); returns "" when valid, else a message naming the option.
std::string ValidateSpectrogramOptions(const SpectrogramOptions& o);

/// What is shared by every worker: window, filterbank, DCT matrix. Immutable.
struct SpectrogramTables {
  explicit SpectrogramTables(const SpectrogramOptions& o);
  SpectrogramOptions options;
  std::vector<float> window;  ///< n_fft values, zero outside the centered win_length
  int window_begin = 0, window_end = 0;  ///< the non-zero span of `window`
  MelFilterbank mel;
  std::vector<float> dct;  ///< [n_mfcc, n_mels] row-major orthonormal DCT-II
};

/// In place: x -> 10*log10(max(1e-10, x)) (librosa power_to_db with ref=1, amin=1e-10,
/// before top_db clipping), within a few float ulps of std::log10. Returns the largest
/// result (-inf when n == 0).
float PowerToDb(float* values, int64_t n);

/// Frames of a centered STFT of `num_samples` samples: 1 + num_samples / hop_length.
int64_t NumFrames(int64_t num_samples, int hop_length);

/// Computes log-mel spectrograms (and MFCC) of mono signals, as librosa
/// `power_to_db(melspectrogram(y, center=True, pad_mode='constant', power=2), ref=1.0,
/// amin=1e-10, top_db)` and `mfcc(S=that, n_mfcc, dct_type=2, norm='ortho')`, stored
/// time-major ([frames, n_mels] and [frames, n_mfcc]). Keeps its FFT and scratch
/// buffers between calls: one instance per thread.
class LogMelExtractor {
 public:
  explicit LogMelExtractor(std::shared_ptr<const SpectrogramTables> tables);

  /// Writes NumFrames(n) * n_mels values to `log_mel` and, when n_mfcc > 0,
  /// NumFrames(n) * n_mfcc values to `mfcc`. n may be 0 (one frame of silence).
  void Compute(const float* samples, int64_t n, float* log_mel, float* mfcc);

  const SpectrogramTables& tables() const { return *tables_; }

 private:
  std::shared_ptr<const SpectrogramTables> tables_;
  RealFftPair fft_;
  std::vector<float> padded_;
  std::vector<float> power_;  ///< MelFilterbank::kBlock spectra, bin-major
};

}  // namespace dlprep::audio
