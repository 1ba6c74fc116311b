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
  std::vector<float> p(mel.padded_bins(), 0.0f);
  for (int k = 0; k < mel.n_bins(); ++k) p[k] = u(rng);
  std::vector<float> out(64);
  mel.Apply(p.data(), out.data());
  for (int m = 0; m < 64; ++m) {
    double ref = 0;
    for (int k = 0; k < mel.n_bins(); ++k) ref += d[m * mel.n_bins() + k] * p[k];
    EXPECT_NEAR(out[m], ref, 1e-5 * (1 + std::abs(ref))) << m;
  }
  // Nothing below fmin or above fmax.
  for (int k = 0; k < mel.n_bins(); ++k) {
    const double hz = k * 22050.0 / 512;
    if (hz < 30 || hz > 8000) {
      for (int m = 0; m < 64; ++m) EXPECT_EQ(d[m * mel.n_bins() + k], 0.0f) << m << "," << k;
    }
  }
}

TEST(RealFft, CosineAtABinAndParseval) {
  const int n = 512;
  RealFft fft(n);
  for (int i = 0; i < n; ++i) fft.input()[i] = static_cast<float>(std::cos(2 * kPi * 5 * i / n));
  std::vector<float> p(n / 2 + 1);
  fft.PowerSpectrum(p.data());
  EXPECT_NEAR(p[5], (n / 2.0) * (n / 2.0), 1e-2 * n);
  for (int k = 0; k <= n / 2; ++k) {
    if (k != 5) {
      EXPECT_LT(p[k], 1e-6 * n * n) << k;
    }
  }
  // Parseval for a random real signal: sum x^2 = (|X0|^2 + 2 sum |Xk|^2 + |X_{n/2}|^2) / n.
  std::mt19937 rng(7);
  std::normal_distribution<float> g;
  double energy = 0;
  for (int i = 0; i < n; ++i) {
    fft.input()[i] = g(rng);
    energy += fft.input()[i] * fft.input()[i];
  }
  fft.PowerSpectrum(p.data());
  double spec = p[0] + p[n / 2];
  for (int k = 1; k < n / 2; ++k) spec += 2 * p[k];
  EXPECT_NEAR(spec / n, energy, 1e-4 * energy);
  EXPECT_TRUE(std::string(RealFft::backend()) == "fftw3f" ||
              std::string(RealFft::backend()) == "kissfft");
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
