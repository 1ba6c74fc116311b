// Chooses the FFT library of dlprep audio: the packaged candidates, KissFFT (BSD-3) and
// FFTW3 single precision (a plan per size, FFTW_ESTIMATE and FFTW_MEASURE; GPL-2+), on
// real transforms (kiss_fftr, r2c) of the sizes speech features use, on two real frames
// per complex transform (what dlprep does; items are frames), on a whole log-mel
// spectrogram of 1 s at 16 kHz (window, r2c FFT, power, mel, dB) with each, and on
// dlprep's own LogMelExtractor as built. Prints FFTW/KissFFT CPU time ratios at the end.
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <kiss_fft.h>
#include <kiss_fftr.h>
#include <fftw3.h>

#include "features/audio/dsp.h"

namespace {

std::vector<float> Noise(int n) {
  std::mt19937 rng(1);
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// One transform backend behind a tiny interface, so the spectrogram loop is shared.
struct Kiss {
  explicit Kiss(int n) : n(n), in(n), out(n / 2 + 1) { cfg = kiss_fftr_alloc(n, 0, nullptr, nullptr); }
  ~Kiss() { kiss_fftr_free(cfg); }
  float* input() { return in.data(); }
  void Power(float* p) {
    kiss_fftr(cfg, in.data(), out.data());
    for (int k = 0; k <= n / 2; ++k) p[k] = out[k].r * out[k].r + out[k].i * out[k].i;
  }
  int n;
  kiss_fftr_cfg cfg;
  std::vector<float> in;
  std::vector<kiss_fft_cpx> out;
};

template <unsigned kFlags>
struct Fftw {
  explicit Fftw(int n) : n(n) {
    in = fftwf_alloc_real(n);
    out = fftwf_alloc_complex(n / 2 + 1);
    plan = fftwf_plan_dft_r2c_1d(n, in, out, kFlags);
    for (int i = 0; i < n; ++i) in[i] = 0;
  }
  ~Fftw() {
    fftwf_destroy_plan(plan);
    fftwf_free(in);
    fftwf_free(out);
  }
  float* input() { return in; }
  void Power(float* p) {
    fftwf_execute(plan);
    for (int k = 0; k <= n / 2; ++k) p[k] = out[k][0] * out[k][0] + out[k][1] * out[k][1];
  }
  int n;
  float* in;
  fftwf_complex* out;
  fftwf_plan plan;
};
using FftwEstimate = Fftw<FFTW_ESTIMATE>;
using FftwMeasure = Fftw<FFTW_MEASURE>;

// Two real frames per complex transform (what dlprep does): z = a + i*b, then
// A[k] = (Z[k] + conj Z[n-k]) / 2, B[k] = (Z[k] - conj Z[n-k]) / 2i.
template <class C>
void SplitPair(const C& z, int n, float* pa, float* pb) {
  for (int k = 0; k <= n / 2; ++k) {
    const int m = k == 0 ? 0 : n - k;
    const float xr = z.re(k), xi = z.im(k), yr = z.re(m), yi = z.im(m);
    const float ar = xr + yr, ai = xi - yi, br = xr - yr, bi = xi + yi;
    pa[k] = 0.25f * (ar * ar + ai * ai);
    pb[k] = 0.25f * (br * br + bi * bi);
  }
}

struct KissPair {
  explicit KissPair(int n) : n(n), in(n), out(n) { cfg = kiss_fft_alloc(n, 0, nullptr, nullptr); }
  ~KissPair() { kiss_fft_free(cfg); }
  float* input() { return reinterpret_cast<float*>(in.data()); }
  float re(int k) const { return out[k].r; }
  float im(int k) const { return out[k].i; }
  void Power2(float* pa, float* pb) {
    kiss_fft(cfg, in.data(), out.data());
    SplitPair(*this, n, pa, pb);
  }
  int n;
  kiss_fft_cfg cfg;
  std::vector<kiss_fft_cpx> in, out;
};

struct FftwPair {
  explicit FftwPair(int n) : n(n) {
    in = fftwf_alloc_complex(n);
    out = fftwf_alloc_complex(n);
    plan = fftwf_plan_dft_1d(n, in, out, FFTW_FORWARD, FFTW_ESTIMATE);
    for (int i = 0; i < n; ++i) in[i][0] = in[i][1] = 0;
  }
  ~FftwPair() {
    fftwf_destroy_plan(plan);
    fftwf_free(in);
    fftwf_free(out);
  }
  float* input() { return reinterpret_cast<float*>(in); }
  float re(int k) const { return out[k][0]; }
  float im(int k) const { return out[k][1]; }
  void Power2(float* pa, float* pb) {
    fftwf_execute(plan);
    SplitPair(*this, n, pa, pb);
  }
  int n;
  fftwf_complex* in;
  fftwf_complex* out;
  fftwf_plan plan;
};

// Per frame: half of one paired transform.
template <class F>
void BM_PairFft(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  F fft(n);
  std::vector<float> x = Noise(2 * n), pa(n / 2 + 1), pb(n / 2 + 1);
  for (auto _ : state) {
    std::copy(x.begin(), x.end(), fft.input());
    fft.Power2(pa.data(), pb.data());
    benchmark::DoNotOptimize(pa.data());
    benchmark::DoNotOptimize(pb.data());
  }
  state.SetItemsProcessed(2 * state.iterations());
}

template <class F>
void BM_RealFft(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  F fft(n);
  std::vector<float> x = Noise(n), p(n / 2 + 1);
  for (auto _ : state) {
    std::copy(x.begin(), x.end(), fft.input());
    fft.Power(p.data());
    benchmark::DoNotOptimize(p.data());
  }
  state.SetItemsProcessed(state.iterations());
}

// A whole 1 s, 16 kHz log-mel spectrogram with dlprep's defaults (101 frames).
template <class F>
void BM_LogMel1s(benchmark::State& state) {
  const int n_fft = 512, win = 400, hop = 160, n_mels = 64, rate = 16000;
  F fft(n_fft);
  dlprep::audio::MelFilterbank mel(rate, n_fft, n_mels, 0, rate / 2);
  std::vector<float> w = dlprep::audio::PaddedHannWindow(n_fft, win);
  std::vector<float> x(rate + n_fft, 0.0f), sig = Noise(rate);
  std::copy(sig.begin(), sig.end(), x.begin() + n_fft / 2);
  constexpr int kBlock = dlprep::audio::MelFilterbank::kBlock;
  const int bins = n_fft / 2 + 1;
  std::vector<float> p(bins), block(static_cast<size_t>(bins) * kBlock, 0.0f),
      out(101 * n_mels);
  const int b = (n_fft - win) / 2;
  for (auto _ : state) {
    for (int f = 0; f < 101; ++f) {
      float* in = fft.input();
      const float* s = x.data() + f * hop;
      for (int i = b; i < b + win; ++i) in[i] = s[i] * w[i];
      fft.Power(p.data());
      const int lane = f % kBlock;
      for (int k = 0; k < bins; ++k) block[k * kBlock + lane] = p[k];
      if (lane == kBlock - 1 || f == 100) {
        mel.Apply(block.data(), lane + 1, out.data() + (f - lane) * n_mels, n_mels);
      }
    }
    dlprep::audio::PowerToDb(out.data(), static_cast<int64_t>(out.size()));
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
}

// dlprep's own LogMelExtractor (two frames per complex FFT, the backend it was built
// with), 1 s at 16 kHz with the defaults.
void BM_DlprepLogMel1s(benchmark::State& state) {
  auto tables = std::make_shared<const dlprep::audio::SpectrogramTables>(
      dlprep::audio::SpectrogramOptions());
  dlprep::audio::LogMelExtractor ex(tables);
  std::vector<float> x = Noise(16000), out(101 * 64);
  for (auto _ : state) {
    ex.Compute(x.data(), 16000, out.data(), nullptr);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(dlprep::audio::RealFftPair::backend());
}
BENCHMARK(BM_DlprepLogMel1s)->Name("logmel_1s_dlprep");

BENCHMARK(BM_RealFft<Kiss>)->Name("fft/kissfft")->Arg(256)->Arg(512)->Arg(1024)->Arg(2048);
BENCHMARK(BM_LogMel1s<Kiss>)->Name("logmel_1s/kissfft");
BENCHMARK(BM_PairFft<KissPair>)->Name("fft_pair/kissfft")->Arg(256)->Arg(512)->Arg(1024)->Arg(2048);
BENCHMARK(BM_PairFft<FftwPair>)->Name("fft_pair/fftw_estimate")->Arg(256)->Arg(512)->Arg(1024)->Arg(2048);
BENCHMARK(BM_RealFft<FftwEstimate>)->Name("fft/fftw_estimate")->Arg(256)->Arg(512)->Arg(1024)->Arg(2048);
BENCHMARK(BM_RealFft<FftwMeasure>)->Name("fft/fftw_measure")->Arg(256)->Arg(512)->Arg(1024)->Arg(2048);
BENCHMARK(BM_LogMel1s<FftwEstimate>)->Name("logmel_1s/fftw_estimate");
BENCHMARK(BM_LogMel1s<FftwMeasure>)->Name("logmel_1s/fftw_measure");

// Console output plus, at the end, each FFTW variant's median time as a ratio of
// KissFFT's for the same case.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& r : runs) {
      if (r.run_type == Run::RT_Aggregate && r.aggregate_name != "median") continue;
      std::string name = r.run_name.str();
      times_[name] = r.GetAdjustedCPUTime();
    }
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf("\nFFTW CPU time / KissFFT CPU time, medians (below 1: FFTW faster):\n");
    for (const auto& [name, t] : times_) {
      size_t slash = name.find('/');
      std::string lib = name.substr(slash + 1);
      size_t arg = lib.find('/');
      std::string suffix = arg == std::string::npos ? "" : lib.substr(arg);
      lib = lib.substr(0, arg);
      if (lib == "kissfft") continue;
      auto k = times_.find(name.substr(0, slash) + "/kissfft" + suffix);
      if (k == times_.end()) continue;
      std::printf("  %-32s %.2fx\n", name.c_str(), t / k->second);
    }
  }

 private:
  std::map<std::string, double> times_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
