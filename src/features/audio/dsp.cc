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

// Four floats in one SIMD register (GCC/Clang vector extension: SSE on x86-64, NEON on
// arm64), for the loops the auto-vectorizer gets wrong. Only +, -, *: every lane
// computes exactly what the scalar code would.
typedef float Vec4 __attribute__((vector_size(16)));
inline Vec4 Load4(const float* p) {
  Vec4 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
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
    weights_[m] = std::move(w);
  }
}

void MelFilterbank::Apply(const float* power, int spectra, float* out,
                          int out_stride) const {
  // One spectrum per lane: the inner loop over the block's spectra vectorizes, and
  // every sum runs over its filter's bins in order (no partial sums to add up across
  // lanes, which cost more than the products for these short filters).
  // kBlock floats as two GCC/Clang vectors of four (SSE registers; the auto-vectorizer
  // would rather vectorize over k here, and a vector of eight without AVX is kept in
  // memory).
  static_assert(kBlock == 8, "two vectors of four");
  const int n = n_mels();
  for (int m = 0; m < n; ++m) {
    const float* p = power + static_cast<size_t>(start_[m]) * kBlock;
    const float* w = weights_[m].data();
    const size_t len = weights_[m].size();
    Vec4 lo = {}, hi = {};
    for (size_t k = 0; k < len; ++k) {
      lo += w[k] * Load4(p + k * kBlock);
      hi += w[k] * Load4(p + k * kBlock + 4);
    }
    for (int j = 0; j < spectra; ++j) {
      out[static_cast<size_t>(j) * out_stride + m] = j < 4 ? lo[j] : hi[j - 4];
    }
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

struct RealFftPair::Impl {
  float* buf = nullptr;  // 4n floats: input re, input im, output re, output im
  fftwf_plan plan = nullptr;
};

RealFftPair::RealFftPair(int n) : n_(n), impl_(std::make_unique<Impl>()) {
  std::lock_guard<std::mutex> lock(PlanMutex());  // the FFTW planner is not thread-safe
  impl_->buf = fftwf_alloc_real(4 * static_cast<size_t>(n));
  float* b = impl_->buf;
  // Split arrays (FFTW's guru interface): the frames go in as the real and imaginary
  // parts, contiguous, and Z[n-k] is read backwards from contiguous arrays; both loops
  // vectorize. FFTW_ESTIMATE: the same plan every time, so results never depend on
  // timing.
  fftw_iodim dim{n, 1, 1};
  impl_->plan = fftwf_plan_guru_split_dft(1, &dim, 0, nullptr, b, b + n, b + 2 * n, b + 3 * n,
                                          FFTW_ESTIMATE);
  input_a_ = b;
  input_b_ = b + n;
  std::memset(b, 0, sizeof(float) * 4 * n);
}

RealFftPair::~RealFftPair() {
  std::lock_guard<std::mutex> lock(PlanMutex());
  fftwf_destroy_plan(impl_->plan);
  fftwf_free(impl_->buf);
}

const char* RealFftPair::backend() { return "fftw3f"; }

#else

// KissFFT's real transform is faster than its complex one of the same size, so the
// KissFFT build runs kiss_fftr on each frame instead of pairing them.
struct RealFftPair::Impl {
  kiss_fftr_cfg cfg = nullptr;
  std::vector<float> in;
  std::vector<kiss_fft_cpx> out;
};

RealFftPair::RealFftPair(int n) : n_(n), impl_(std::make_unique<Impl>()) {
  impl_->cfg = kiss_fftr_alloc(n, 0, nullptr, nullptr);
  impl_->in.assign(2 * static_cast<size_t>(n), 0.0f);
  impl_->out.resize(n / 2 + 1);
  input_a_ = impl_->in.data();
  input_b_ = impl_->in.data() + n;
}

RealFftPair::~RealFftPair() { kiss_fftr_free(impl_->cfg); }

const char* RealFftPair::backend() { return "kissfft"; }

void RealFftPair::PowerSpectra(float* power, int stride) {
  for (int which = 0; which < 2; ++which) {
    kiss_fftr(impl_->cfg, which == 0 ? input_a_ : input_b_, impl_->out.data());
    float* p = power + which;
    const kiss_fft_cpx* o = impl_->out.data();
    for (int k = 0; k <= n_ / 2; ++k) {
      p[static_cast<size_t>(k) * stride] = o[k].r * o[k].r + o[k].i * o[k].i;
    }
  }
}
#endif

#ifdef DLPREP_AUDIO_FFTW
void RealFftPair::PowerSpectra(float* power, int stride) {
  fftwf_execute(impl_->plan);
  const float* __restrict re = impl_->buf + 2 * n_;
  const float* __restrict im = impl_->buf + 3 * n_;
  const int half = n_ / 2;
  auto put = [&](int k, float a, float b) {
    float* p = power + static_cast<size_t>(k) * stride;
    p[0] = a;
    p[1] = b;
  };
  // k = 0 and k = n/2: Z[n-k] is Z[k] itself, so A = Re Z and B = Im Z.
  for (int k : {0, half}) put(k, re[k] * re[k], im[k] * im[k]);
  // Four bins at a time, Z[n-k] read backwards; each (A[k], B[k]) pair is stored as
  // one 8-byte move. The same operations as the scalar tail, lane by lane.
  int k = 1;
  for (; k + 4 <= half; k += 4) {
    const Vec4 xr = Load4(re + k), xi = Load4(im + k);
    const Vec4 yr = __builtin_shufflevector(Load4(re + n_ - k - 3), Load4(re), 3, 2, 1, 0);
    const Vec4 yi = __builtin_shufflevector(Load4(im + n_ - k - 3), Load4(im), 3, 2, 1, 0);
    const Vec4 ar = xr + yr, ai = xi - yi, br = xr - yr, bi = xi + yi;
    const Vec4 a = 0.25f * (ar * ar + ai * ai), b = 0.25f * (br * br + bi * bi);
    const Vec4 ab01 = __builtin_shufflevector(a, b, 0, 4, 1, 5);
    const Vec4 ab23 = __builtin_shufflevector(a, b, 2, 6, 3, 7);
    std::memcpy(power + static_cast<size_t>(k) * stride, &ab01, 2 * sizeof(float));
    std::memcpy(power + static_cast<size_t>(k + 1) * stride,
                reinterpret_cast<const float*>(&ab01) + 2, 2 * sizeof(float));
    std::memcpy(power + static_cast<size_t>(k + 2) * stride, &ab23, 2 * sizeof(float));
    std::memcpy(power + static_cast<size_t>(k + 3) * stride,
                reinterpret_cast<const float*>(&ab23) + 2, 2 * sizeof(float));
  }
  for (; k < half; ++k) {
    const float xr = re[k], xi = im[k], yr = re[n_ - k], yi = im[n_ - k];
    const float ar = xr + yr, ai = xi - yi, br = xr - yr, bi = xi + yi;
    put(k, 0.25f * (ar * ar + ai * ai), 0.25f * (br * br + bi * bi));
  }
}
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
  // A separate loop, so the one above vectorizes, with kMaxLanes running maxima: a
  // single one is a chain of dependent scalar max instructions (the compiler may not
  // reorder a float reduction), which took half of this function's time. The values
  // are finite, so the order of the max does not change the result.
  constexpr int kMaxLanes = 16;
  float lane_max[kMaxLanes];
  std::fill(lane_max, lane_max + kMaxLanes, -std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + kMaxLanes <= n; i += kMaxLanes) {
    for (int j = 0; j < kMaxLanes; ++j) {
      lane_max[j] = values[i + j] > lane_max[j] ? values[i + j] : lane_max[j];
    }
  }
  float max_db = -std::numeric_limits<float>::infinity();
  for (; i < n; ++i) max_db = values[i] > max_db ? values[i] : max_db;
  for (int j = 0; j < kMaxLanes; ++j) max_db = lane_max[j] > max_db ? lane_max[j] : max_db;
  return max_db;
}

LogMelExtractor::LogMelExtractor(std::shared_ptr<const SpectrogramTables> tables)
    : tables_(std::move(tables)), fft_(tables_->options.n_fft) {
  power_.assign(static_cast<size_t>(tables_->mel.n_bins()) * MelFilterbank::kBlock, 0.0f);
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

  // Frames go through the FFT two at a time (the second of an odd last pair is zeros,
  // and its spectrum unused), and the filterbank kBlock spectra at a time. Outside
  // [window_begin, window_end) the FFT's input stays zero.
  constexpr int kBlock = MelFilterbank::kBlock;
  static_assert(kBlock % 2 == 0, "spectra come in pairs");
  float* ina = fft_.input_a();
  float* inb = fft_.input_b();
  const float* w = t.window.data();
  const int wb = t.window_begin, we = t.window_end;
  for (int64_t f0 = 0; f0 < frames; f0 += kBlock) {
    const int spectra = static_cast<int>(std::min<int64_t>(kBlock, frames - f0));
    for (int j = 0; j < spectra; j += 2) {
      const float* xa = padded_.data() + (f0 + j) * hop;
      for (int i = wb; i < we; ++i) ina[i] = xa[i] * w[i];
      if (j + 1 < spectra) {
        const float* xb = xa + hop;
        for (int i = wb; i < we; ++i) inb[i] = xb[i] * w[i];
      } else {
        std::fill(inb + wb, inb + we, 0.0f);
      }
      fft_.PowerSpectra(power_.data() + j, kBlock);
    }
    t.mel.Apply(power_.data(), spectra, log_mel + f0 * nm, nm);
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
