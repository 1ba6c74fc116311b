#include "features/audio/dsp.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace dlprep::audio {
namespace {

constexpr double kPi = 3.14159265358979323846;

TEST(MelScale, SlaneyValues) {
  // librosa.hz_to_mel(..., htk=False): linear 3/200 mel per Hz below 1 kHz.
  EXPECT_DOUBLE_EQ(HzToMel(0), 0);
  EXPECT_NEAR(HzToMel(440), 6.6, 1e-12);
  EXPECT_NEAR(HzToMel(1000), 15.0, 1e-12);
  EXPECT_NEAR(HzToMel(8000), 15.0 + 27.0 * std::log(8.0) / std::log(6.4), 1e-12);
  for (double hz : {10.0, 300.0, 999.0, 1000.0, 1234.5, 7999.0, 20000.0}) {
    EXPECT_NEAR(MelToHz(HzToMel(hz)), hz, 1e-9 * hz);
  }
}

TEST(Window, PeriodicHannCenteredInNfft) {
  std::vector<float> w = PaddedHannWindow(512, 400);
  ASSERT_EQ(w.size(), 512u);
  for (int i = 0; i < 56; ++i) EXPECT_EQ(w[i], 0.0f) << i;
  for (int i = 456; i < 512; ++i) EXPECT_EQ(w[i], 0.0f) << i;
  EXPECT_EQ(w[56], 0.0f);               // periodic: starts at 0 ...
  EXPECT_FLOAT_EQ(w[56 + 200], 1.0f);   // ... peaks at win/2 ...
  EXPECT_GT(w[455], 0.0f);              // ... and does not end at 0
  for (int i = 1; i < 200; ++i) EXPECT_FLOAT_EQ(w[56 + i], w[56 + 400 - i]) << i;
  EXPECT_NEAR(w[56 + 100], 0.5f, 1e-6);
}

TEST(MelFilterbank, SlaneyNormGivesUnitAreaTriangles) {
  // With a fine frequency grid each filter's area (sum of weights x bin width) is 1.
  const double sr = 16000;
  const int n_fft = 1 << 15;
  MelFilterbank mel(sr, n_fft, 40, 0, sr / 2);
  std::vector<float> d = mel.Dense();
  const double df = sr / n_fft;
  for (int m = 0; m < 40; ++m) {
    double area = 0;
    int peak = 0;
    for (int k = 0; k < mel.n_bins(); ++k) {
      area += d[m * mel.n_bins() + k] * df;
      if (d[m * mel.n_bins() + k] > d[m * mel.n_bins() + peak]) peak = k;
    }
    EXPECT_NEAR(area, 1.0, 2e-3) << "filter " << m;
    // The peak sits at the filter's center frequency on the mel scale.
    const double lo = HzToMel(0), hi = HzToMel(sr / 2);
    const double center = MelToHz(lo + (m + 1) * (hi - lo) / 41);
    EXPECT_NEAR(peak * df, center, df) << "filter " << m;
  }
}

TEST(MelFilterbank, ApplyIsTheDenseProduct) {
  MelFilterbank mel(22050, 512, 64, 30, 8000);
  std::vector<float> d = mel.Dense();
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(0, 10);
  constexpr int kBlock = MelFilterbank::kBlock;
  const int bins = mel.n_bins();
  // A block of kBlock different spectra, bin-major; only the first `spectra` are
  // written out, each to its own row of `out`, whatever the other lanes hold.
  std::vector<float> p(static_cast<size_t>(bins) * kBlock);
  for (auto& v : p) v = u(rng);
  for (int spectra : {kBlock, 3, 1}) {
    const int stride = 70;  // rows wider than n_mels: nothing past n_mels is written
    std::vector<float> out(static_cast<size_t>(kBlock) * stride, -1.0f);
    mel.Apply(p.data(), spectra, out.data(), stride);
    for (int s = 0; s < kBlock; ++s) {
      for (int m = 0; m < stride; ++m) {
        const float got = out[s * stride + m];
        if (s >= spectra || m >= 64) {
          EXPECT_EQ(got, -1.0f) << "spectrum " << s << ", filter " << m;
          continue;
        }
        double ref = 0;
        for (int k = 0; k < bins; ++k) ref += d[m * bins + k] * p[k * kBlock + s];
        EXPECT_NEAR(got, ref, 1e-5 * (1 + std::abs(ref))) << "spectrum " << s << ", " << m;
      }
    }
  }
  // Nothing below fmin or above fmax.
  for (int k = 0; k < mel.n_bins(); ++k) {
    const double hz = k * 22050.0 / 512;
    if (hz < 30 || hz > 8000) {
      for (int m = 0; m < 64; ++m) EXPECT_EQ(d[m * mel.n_bins() + k], 0.0f) << m << "," << k;
    }
  }
}

TEST(RealFftPair, CosinesAtBinsAndParsevalForBothFrames) {
  const int n = 512;
  RealFftPair fft(n);
  float* a = fft.input_a();
  float* b = fft.input_b();
  for (int i = 0; i < n; ++i) {
    a[i] = static_cast<float>(std::cos(2 * kPi * 5 * i / n));
    b[i] = static_cast<float>(0.5 * std::sin(2 * kPi * 40 * i / n));
  }
  std::vector<float> pa(n / 2 + 1), pb(n / 2 + 1);
  // A[k], B[k] side by side every `stride` floats; nothing else is written.
  auto spectra = [&](int stride) {
    std::vector<float> out(static_cast<size_t>(stride) * (n / 2 + 1), -1.0f);
    fft.PowerSpectra(out.data(), stride);
    for (int k = 0; k <= n / 2; ++k) {
      pa[k] = out[k * stride];
      pb[k] = out[k * stride + 1];
      for (int j = 2; j < stride; ++j) ASSERT_EQ(out[k * stride + j], -1.0f) << k;
    }
  };
  spectra(8);
  const std::vector<float> pa8 = pa, pb8 = pb;
  spectra(2);
  EXPECT_EQ(pa, pa8);
  EXPECT_EQ(pb, pb8);
  EXPECT_NEAR(pa[5], (n / 2.0) * (n / 2.0), 1e-2 * n);
  EXPECT_NEAR(pb[40], (n / 4.0) * (n / 4.0), 1e-2 * n);
  for (int k = 0; k <= n / 2; ++k) {
    if (k != 5) {
      EXPECT_LT(pa[k], 1e-6 * n * n) << k;  // nothing of b leaks into a ...
    }
    if (k != 40) {
      EXPECT_LT(pb[k], 1e-6 * n * n) << k;  // ... nor of a into b
    }
  }
  // Parseval for two random real frames: sum x^2 = (P0 + 2 sum Pk + P_{n/2}) / n.
  std::mt19937 rng(7);
  std::normal_distribution<float> g;
  double ea = 0, eb = 0;
  for (int i = 0; i < n; ++i) {
    a[i] = g(rng);
    b[i] = 3 * g(rng);
    ea += a[i] * a[i];
    eb += b[i] * b[i];
  }
  spectra(3);
  double sa = pa[0] + pa[n / 2], sb = pb[0] + pb[n / 2];
  for (int k = 1; k < n / 2; ++k) {
    sa += 2 * pa[k];
    sb += 2 * pb[k];
  }
  EXPECT_NEAR(sa / n, ea, 1e-4 * ea);
  EXPECT_NEAR(sb / n, eb, 1e-4 * eb);
  EXPECT_TRUE(std::string(RealFftPair::backend()) == "fftw3f" ||
              std::string(RealFftPair::backend()) == "kissfft");
}

TEST(LogMelExtractor, OddAndEvenFrameCountsAgree) {
  // Frame f's features do not depend on which frame shares its FFT: the first 10
  // frames of a 10-frame and an 11-frame clip are equal within float rounding.
  SpectrogramOptions o;
  o.top_db = -1;
  auto tables = std::make_shared<const SpectrogramTables>(o);
  LogMelExtractor ex(tables);
  std::mt19937 rng(5);
  std::normal_distribution<float> g;
  std::vector<float> x(1760);
  for (auto& v : x) v = 0.1f * g(rng);
  std::vector<float> m10(NumFrames(1440, 160) * 64), m11(NumFrames(1600, 160) * 64);
  ASSERT_EQ(NumFrames(1440, 160), 10);
  ASSERT_EQ(NumFrames(1600, 160), 11);
  ex.Compute(x.data(), 1600, m11.data(), nullptr);
  // The same samples up to 1440, then zeros, give the same first 7 frames (frames 7+
  // see the cut).
  std::vector<float> y(x.begin(), x.begin() + 1440);
  ex.Compute(y.data(), 1440, m10.data(), nullptr);
  for (int i = 0; i < 7 * 64; ++i) EXPECT_NEAR(m10[i], m11[i], 1e-3) << i;
}

TEST(PowerToDb, MatchesLog10AndClampsAtAmin) {
  std::vector<float> x, ref;
  for (double e = -14; e <= 30; e += 0.013) x.push_back(static_cast<float>(std::pow(10.0, e)));
  x.push_back(0.0f);
  x.push_back(-1.0f);
  x.push_back(1.0f);
  for (float v : x) ref.push_back(10.0f * std::log10(std::max(1e-10f, v)));
  std::vector<float> y = x;
  float mx = PowerToDb(y.data(), static_cast<int64_t>(y.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_NEAR(y[i], ref[i], 2e-5 + 4e-7 * std::abs(ref[i])) << "x=" << x[i];  // a few ulps
  }
  EXPECT_NEAR(mx, *std::max_element(ref.begin(), ref.end()), 1e-4);
  EXPECT_FLOAT_EQ(y[y.size() - 2], -100.0f);  // negative -> amin
  EXPECT_EQ(PowerToDb(y.data(), 0), -std::numeric_limits<float>::infinity());
}

SpectrogramOptions Defaults() { return SpectrogramOptions(); }

TEST(LogMelExtractor, FramesSilenceAndTopDb) {
  auto opts = Defaults();
  opts.n_mfcc = 13;
  auto tables = std::make_shared<const SpectrogramTables>(opts);
  LogMelExtractor ex(tables);
  EXPECT_EQ(NumFrames(16000, 160), 101);
  EXPECT_EQ(NumFrames(100, 160), 1);  // shorter than a hop (and than a frame)
  for (int64_t n : {1, 100, 511, 16000}) {
    std::vector<float> zeros(n, 0.0f), mel(NumFrames(n, 160) * 64), mfcc(NumFrames(n, 160) * 13);
    ex.Compute(zeros.data(), n, mel.data(), mfcc.data());
    for (float v : mel) ASSERT_FLOAT_EQ(v, -100.0f);
    // A constant dB frame has only c0 = sqrt(n_mels) * v.
    EXPECT_NEAR(mfcc[0], -100.0f * 8.0f, 1e-3);
    for (int k = 1; k < 13; ++k) EXPECT_NEAR(mfcc[k], 0.0f, 1e-3) << k;
  }
  // A loud tone: every value is within top_db of the maximum.
  std::vector<float> tone(8000);
  for (size_t i = 0; i < tone.size(); ++i) tone[i] = std::sin(2 * kPi * 1000 * i / 16000.0);
  std::vector<float> mel(NumFrames(8000, 160) * 64);
  ex.Compute(tone.data(), 8000, mel.data(), nullptr);
  float mx = *std::max_element(mel.begin(), mel.end());
  float mn = *std::min_element(mel.begin(), mel.end());
  EXPECT_GT(mx, 20.0f);
  EXPECT_FLOAT_EQ(mn, mx - 80.0f);
  // The strongest band of a middle frame holds 1 kHz.
  const float* row = mel.data() + 25 * 64;
  int best = static_cast<int>(std::max_element(row, row + 64) - row);
  const double lo = HzToMel(0), hi = HzToMel(8000);
  EXPECT_NEAR(MelToHz(lo + (best + 1) * (hi - lo) / 65), 1000.0, 80.0);
}

TEST(LogMelExtractor, DctIsOrthonormal) {
  auto opts = Defaults();
  opts.n_mels = 20;
  opts.n_mfcc = 20;
  SpectrogramTables t(opts);
  for (int a = 0; a < 20; ++a) {
    for (int b = 0; b < 20; ++b) {
      double dot = 0;
      for (int m = 0; m < 20; ++m) dot += t.dct[a * 20 + m] * t.dct[b * 20 + m];
      EXPECT_NEAR(dot, a == b ? 1.0 : 0.0, 1e-6) << a << "," << b;
    }
  }
}

TEST(SpectrogramOptions, Validation) {
  auto ok = Defaults();
  EXPECT_EQ(ValidateSpectrogramOptions(ok), "");
  auto o = ok;
  o.win_length = 600;
  EXPECT_NE(ValidateSpectrogramOptions(o).find("--win-length"), std::string::npos);
  o = ok;
  o.n_fft = 511;
  EXPECT_NE(ValidateSpectrogramOptions(o).find("--n-fft must be an even"), std::string::npos);
  o = ok;
  o.fmax = 9000;
  EXPECT_NE(ValidateSpectrogramOptions(o).find("--fmax"), std::string::npos);
  o = ok;
  o.fmin = 8000;
  EXPECT_NE(ValidateSpectrogramOptions(o).find("--fmin"), std::string::npos);
  o = ok;
  o.n_mfcc = 65;
  EXPECT_NE(ValidateSpectrogramOptions(o).find("--mfcc"), std::string::npos);
  o = ok;
  o.hop_length = 0;
  EXPECT_NE(ValidateSpectrogramOptions(o).find("--hop-length"), std::string::npos);
  o = ok;
  o.n_mels = 0;
  EXPECT_NE(ValidateSpectrogramOptions(o).find("--n-mels"), std::string::npos);
  o = ok;
  o.sample_rate = 0;
  EXPECT_NE(ValidateSpectrogramOptions(o).find("--sample-rate"), std::string::npos);
}

}  // namespace
}  // namespace dlprep::audio
