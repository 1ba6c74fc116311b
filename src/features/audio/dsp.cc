#include "features/audio/dsp.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>

#ifdef DLPREP_AUDIO_FFTW
#include <fftw3.h>
#else
#include <kiss_fftr.h>
#endif

namespace dlprep::audio {

namespace {
constexpr double kPi = 3.14159265358979323846;
// Slaney mel scale constants (librosa, after Auditory Toolbox).
constexpr double kMelFSp = 200.0 / 3;
constexpr double kMinLogHz = 1000.0;
constexpr double kMinLogMel = kMinLogHz / kMelFSp;
const double kLogStep = std::log(6.4) / 27.0;
}  // namespace

double HzToMel(double hz) {
  if (hz >= kMinLogHz) return kMinLogMel + std::log(hz / kMinLogHz) / kLogStep;
  return hz / kMelFSp;
}

double MelToHz(double mel) {
  if (mel >= kMinLogMel) return kMinLogHz * std::exp(kLogStep * (mel - kMinLogMel));
  return kMelFSp * mel;
}

std::vector<float> PaddedHannWindow(int n_fft, int win_length) {
  std::vector<float> w(n_fft, 0.0f);
  const int lpad = (n_fft - win_length) / 2;
  for (int i = 0; i < win_length; ++i) {
    w[lpad + i] = static_cast<float>(0.5 - 0.5 * std::cos(2 * kPi * i / win_length));
  }
  return w;
}

MelFilterbank::MelFilterbank(double sample_rate, int n_fft, int n_mels, double fmin,
                             double fmax)
    : n_bins_(n_fft / 2 + 1), start_(n_mels, 0), weights_(n_mels) {
  // mel_frequencies(n_mels + 2): numpy linspace over the mel scale, back to Hz.
  const int n_pts = n_mels + 2;
  const double lo = HzToMel(fmin), hi = HzToMel(fmax);
  const double step = (hi - lo) / (n_pts - 1);
  std::vector<double> mel_f(n_pts);
  for (int i = 0; i < n_pts; ++i) mel_f[i] = MelToHz(i == n_pts - 1 ? hi : lo + i * step);
  std::vector<double> freqs(n_bins_);
  for (int k = 0; k < n_bins_; ++k) freqs[k] = k * sample_rate / n_fft;
  for (int m = 0; m < n_mels; ++m) {
    const double fdiff_lo = mel_f[m + 1] - mel_f[m];
    const double fdiff_hi = mel_f[m + 2] - mel_f[m + 1];
    const double enorm = 2.0 / (mel_f[m + 2] - mel_f[m]);
    int first = -1;
    std::vector<float> w;
    for (int k = 0; k < n_bins_; ++k) {
      double lower = (freqs[k] - mel_f[m]) / fdiff_lo;
      double upper = (mel_f[m + 2] - freqs[k]) / fdiff_hi;
      // librosa stores the triangle in float32, then scales by enorm.
      float tri = static_cast<float>(std::max(0.0, std::min(lower, upper)));
      float v = static_cast<float>(static_cast<double>(tri) * enorm);
      if (v != 0.0f) {
        if (first < 0) first = k;
        w.resize(k - first + 1, 0.0f);
        w[k - first] = v;
      }
    }
    start_[m] = first < 0 ? 0 : first;
    w.resize((w.size() + kLanes - 1) / kLanes * kLanes, 0.0f);
    weights_[m] = std::move(w);
  }
}

void MelFilterbank::Apply(const float* power, float* out) const {
  // Each filter's weights are zero-padded to a multiple of kLanes and summed in kLanes
  // partial sums, so the inner loop vectorizes without a remainder; `power` has
  // kLanes readable values past n_bins() (see padded_bins()).
  const int n = n_mels();
  for (int m = 0; m < n; ++m) {
    const float* p = power + start_[m];
    const float* w = weights_[m].data();
    const size_t len = weights_[m].size();
    float acc[kLanes] = {};
    for (size_t k = 0; k < len; k += kLanes) {
      for (int j = 0; j < kLanes; ++j) acc[j] += w[k + j] * p[k + j];
    }
    float sum = 0.0f;
    for (int j = 0; j < kLanes; ++j) sum += acc[j];
    out[m] = sum;
  }
}

std::vector<float> MelFilterbank::Dense() const {
  std::vector<float> d(static_cast<size_t>(n_mels()) * n_bins_, 0.0f);
  for (int m = 0; m < n_mels(); ++m) {
    for (size_t k = 0; k < weights_[m].size() && start_[m] + k < static_cast<size_t>(n_bins_);
         ++k) {
      d[static_cast<size_t>(m) * n_bins_ + start_[m] + k] = weights_[m][k];
    }
  }
  return d;
}

#ifdef DLPREP_AUDIO_FFTW
namespace {
std::mutex& PlanMutex() {
  static std::mutex mu;
  return mu;
}
}  // namespace

struct RealFft::Impl {
  fftwf_complex* out = nullptr;
  fftwf_plan plan = nullptr;
};

RealFft::RealFft(int n) : n_(n), impl_(std::make_unique<Impl>()) {
  std::lock_guard<std::mutex> lock(PlanMutex());  // the FFTW planner is not thread-safe
  input_ = fftwf_alloc_real(n);
  impl_->out = fftwf_alloc_complex(n / 2 + 1);
  std::memset(input_, 0, sizeof(float) * n);
  // FFTW_ESTIMATE: the same plan every time, so results never depend on timing.
  impl_->plan = fftwf_plan_dft_r2c_1d(n, input_, impl_->out, FFTW_ESTIMATE);
}

RealFft::~RealFft() {
  std::lock_guard<std::mutex> lock(PlanMutex());
  fftwf_destroy_plan(impl_->plan);
  fftwf_free(impl_->out);
  fftwf_free(input_);
}

void RealFft::PowerSpectrum(float* power) {
  fftwf_execute(impl_->plan);
  const int nb = n_ / 2 + 1;
  const fftwf_complex* o = impl_->out;
  for (int k = 0; k < nb; ++k) power[k] = o[k][0] * o[k][0] + o[k][1] * o[k][1];
}

const char* RealFft::backend() { return "fftw3f"; }

#else

struct RealFft::Impl {
  kiss_fftr_cfg cfg = nullptr;
  std::vector<kiss_fft_cpx> out;
  std::vector<float> in;
};

RealFft::RealFft(int n) : n_(n), impl_(std::make_unique<Impl>()) {
  impl_->cfg = kiss_fftr_alloc(n, 0, nullptr, nullptr);
  impl_->out.resize(n / 2 + 1);
  impl_->in.assign(n, 0.0f);
  input_ = impl_->in.data();
}

RealFft::~RealFft() { kiss_fftr_free(impl_->cfg); }

void RealFft::PowerSpectrum(float* power) {
  kiss_fftr(impl_->cfg, input_, impl_->out.data());
  const int nb = n_ / 2 + 1;
  const kiss_fft_cpx* o = impl_->out.data();
  for (int k = 0; k < nb; ++k) power[k] = o[k].r * o[k].r + o[k].i * o[k].i;
}

const char* RealFft::backend() { return "kissfft"; }
#endif

std::string ValidateSpectrogramOptions(const SpectrogramOptions& o) {
  auto s = [](double v) { return std::to_string(v); };
  if (!(o.sample_rate > 0)) return "--sample-rate must be positive, got " + s(o.sample_rate);
  if (o.n_fft < 2 || o.n_fft % 2 != 0) {
    return "--n-fft must be an even number >= 2, got " + std::to_string(o.n_fft);
  }
  if (o.n_fft > (1 << 20)) return "--n-fft is too large (at most 1048576)";
  if (o.win_length < 1 || o.win_length > o.n_fft) {
    return "--win-length must be in [1, n_fft=" + std::to_string(o.n_fft) + "], got " +
           std::to_string(o.win_length);
  }
  if (o.hop_length < 1) return "--hop-length must be positive, got " + std::to_string(o.hop_length);
  if (o.n_mels < 1) return "--n-mels must be positive, got " + std::to_string(o.n_mels);
  const double nyquist = o.sample_rate / 2;
  const double fmax = o.fmax < 0 ? nyquist : o.fmax;
  if (o.fmin < 0 || !(o.fmin < fmax)) {
    return "--fmin must be in [0, fmax=" + s(fmax) + "), got " + s(o.fmin);
  }
  if (fmax > nyquist) {
    return "--fmax must be at most half the sample rate (" + s(nyquist) + "), got " + s(fmax);
  }
  if (o.n_mfcc < 0 || o.n_mfcc > o.n_mels) {
    return "--mfcc must be in [0, n_mels=" + std::to_string(o.n_mels) + "], got " +
           std::to_string(o.n_mfcc);
  }
  return "";
}

SpectrogramTables::SpectrogramTables(const SpectrogramOptions& o)
    : options(o),
      window(PaddedHannWindow(o.n_fft, o.win_length)),
      mel(o.sample_rate, o.n_fft, o.n_mels, o.fmin, o.fmax < 0 ? o.sample_rate / 2 : o.fmax) {
  window_begin = (o.n_fft - o.win_length) / 2;
  window_end = window_begin + o.win_length;
  const int nm = o.n_mels;
  dct.resize(static_cast<size_t>(o.n_mfcc) * nm);
  for (int k = 0; k < o.n_mfcc; ++k) {
    const double f = k == 0 ? std::sqrt(1.0 / nm) : std::sqrt(2.0 / nm);
    for (int n = 0; n < nm; ++n) {
      dct[static_cast<size_t>(k) * nm + n] =
          static_cast<float>(f * std::cos(kPi * k * (2 * n + 1) / (2.0 * nm)));
    }
  }
}

int64_t NumFrames(int64_t num_samples, int hop_length) { return 1 + num_samples / hop_length; }

float PowerToDb(float* values, int64_t n) {
  // 10*log10(max(1e-10, x)) without a libm call per value, so the loop vectorizes:
  // x = m * 2^e with m in [sqrt(1/2), sqrt(2)), ln(m) = 2*atanh(t), t = (m-1)/(m+1),
  // |t| <= 0.172, from its series to t^9 (truncation error < 1e-9; the result is
  // within a few float ulps of std::log10).
  constexpr float kDbPerLn = 4.3429448190325182f;  // 10 / ln(10)
  constexpr float kLn2 = 0.69314718055994531f;
  // The clamp to [1e-10, FLT_MAX] works on the bits as signed integers, which order
  // like the floats for x >= 0 (negative values and -0 become 1e-10, NaN FLT_MAX), and
  // vectorizes where std::max on floats does not.
  const int32_t lo_bits = 0x2edbe6ff;  // 1e-10f
  const int32_t hi_bits = 0x7f7fffff;  // FLT_MAX
  for (int64_t i = 0; i < n; ++i) {
    int32_t sbits;
    std::memcpy(&sbits, &values[i], sizeof(sbits));
    sbits = sbits < lo_bits ? lo_bits : (sbits > hi_bits ? hi_bits : sbits);
    const uint32_t bits = static_cast<uint32_t>(sbits);
    const uint32_t off = bits - 0x3f3504f3u;
    const int32_t e = static_cast<int32_t>(off) >> 23;
    const uint32_t mbits = (off & 0x007fffffu) + 0x3f3504f3u;
    float m;
    std::memcpy(&m, &mbits, sizeof(m));
    const float t = (m - 1.0f) / (m + 1.0f);
    const float t2 = t * t;
    const float series =
        t * (2.0f + t2 * (2.0f / 3 + t2 * (2.0f / 5 + t2 * (2.0f / 7 + t2 * (2.0f / 9)))));
    const float db = (static_cast<float>(e) * kLn2 + series) * kDbPerLn;
    values[i] = db;
  }
  // A separate loop, so the one above vectorizes (a float max reduction does not).
  float max_db = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) max_db = values[i] > max_db ? values[i] : max_db;
  return max_db;
}

LogMelExtractor::LogMelExtractor(std::shared_ptr<const SpectrogramTables> tables)
    : tables_(std::move(tables)), fft_(tables_->options.n_fft) {
  power_.assign(tables_->mel.padded_bins(), 0.0f);
}

void LogMelExtractor::Compute(const float* samples, int64_t n, float* log_mel, float* mfcc) {
  const SpectrogramTables& t = *tables_;
  const int n_fft = t.options.n_fft, hop = t.options.hop_length, nm = t.options.n_mels;
  const int pad = n_fft / 2;
  const int64_t frames = NumFrames(n, hop);
  // Zero padding on both sides (center=True, pad_mode='constant'); the buffer only
  // grows, so steady state allocates nothing.
  const size_t padded_len = static_cast<size_t>(n) + 2 * pad;
  if (padded_.size() < padded_len) padded_.resize(padded_len);
  std::fill(padded_.begin(), padded_.begin() + pad, 0.0f);
  if (n > 0) std::memcpy(padded_.data() + pad, samples, sizeof(float) * n);
  std::fill(padded_.begin() + pad + n, padded_.begin() + padded_len, 0.0f);

  float* in = fft_.input();  // outside [window_begin, window_end) it stays zero
  const float* w = t.window.data();
  const int wb = t.window_begin, we = t.window_end;
  for (int64_t f = 0; f < frames; ++f) {
    const float* x = padded_.data() + f * hop;
    for (int i = wb; i < we; ++i) in[i] = x[i] * w[i];
    fft_.PowerSpectrum(power_.data());
    t.mel.Apply(power_.data(), log_mel + f * nm);
  }
  const float max_db = PowerToDb(log_mel, frames * nm);
  if (t.options.top_db >= 0) {
    const float floor_db = max_db - static_cast<float>(t.options.top_db);
    const int64_t total = frames * nm;
    for (int64_t i = 0; i < total; ++i) log_mel[i] = std::max(log_mel[i], floor_db);
  }
  const int nc = t.options.n_mfcc;
  if (nc > 0 && mfcc != nullptr) {
    for (int64_t f = 0; f < frames; ++f) {
      const float* row = log_mel + f * nm;
      float* out = mfcc + f * nc;
      for (int k = 0; k < nc; ++k) {
        const float* d = t.dct.data() + static_cast<size_t>(k) * nm;
        float acc = 0.0f;
        for (int m = 0; m < nm; ++m) acc += d[m] * row[m];
        out[k] = acc;
      }
    }
  }
}

}  // namespace dlprep::audio
