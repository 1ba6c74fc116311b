#include "features/audio/audio_operator.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <arrow/api.h>
#include <gtest/gtest.h>

namespace dlprep::audio {
namespace {

std::string Wav16(int rate, const std::vector<int16_t>& samples) {
  auto u32 = [](std::string* s, uint32_t v) { s->append(reinterpret_cast<char*>(&v), 4); };
  auto u16 = [](std::string* s, uint16_t v) { s->append(reinterpret_cast<char*>(&v), 2); };
  const uint32_t bytes = static_cast<uint32_t>(samples.size() * 2);
  std::string s = "RIFF";
  u32(&s, 36 + bytes);
  s += "WAVEfmt ";
  u32(&s, 16);
  u16(&s, 1);
  u16(&s, 1);
  u32(&s, static_cast<uint32_t>(rate));
  u32(&s, static_cast<uint32_t>(rate * 2));
  u16(&s, 2);
  u16(&s, 16);
  s += "data";
  u32(&s, bytes);
  s.append(reinterpret_cast<const char*>(samples.data()), bytes);
  return s;
}

std::vector<int16_t> Tone(int rate, int n, double hz) {
  std::vector<int16_t> v(n);
  for (int i = 0; i < n; ++i) v[i] = static_cast<int16_t>(10000 * std::sin(2 * M_PI * hz * i / rate));
  return v;
}

std::shared_ptr<arrow::RecordBatch> Files(const std::vector<std::string>& paths,
                                          const std::vector<std::string>& contents) {
  arrow::StringBuilder p;
  arrow::BinaryBuilder c;
  for (size_t i = 0; i < paths.size(); ++i) {
    EXPECT_TRUE(p.Append(paths[i]).ok());
    EXPECT_TRUE(c.Append(contents[i]).ok());
  }
  auto schema = arrow::schema({arrow::field("path", arrow::utf8()),
                               arrow::field("content", arrow::binary())});
  return arrow::RecordBatch::Make(schema, static_cast<int64_t>(paths.size()),
                                  {p.Finish().ValueOrDie(), c.Finish().ValueOrDie()});
}

TEST(DrawNoise, DeterministicPerSeedPathAndCopy) {
  std::vector<int64_t> lens = {1000, 5000, 300};
  NoiseDraw a = DrawNoise(42, "a/x.wav", 1, 3, lens, 5, 20);
  NoiseDraw b = DrawNoise(42, "a/x.wav", 1, 3, lens, 5, 20);
  EXPECT_EQ(a.noise_index, b.noise_index);
  EXPECT_EQ(a.offset, b.offset);
  EXPECT_EQ(a.snr_db, b.snr_db);
  int differ = 0;
  std::vector<int> used(3, 0);
  double lo = 1e9, hi = -1e9;
  for (int c = 1; c <= 300; ++c) {
    NoiseDraw d = DrawNoise(42, "a/x.wav", c, 3, lens, 5, 20);
    ASSERT_GE(d.noise_index, 0);
    ASSERT_LT(d.noise_index, 3);
    ASSERT_GE(d.offset, 0);
    ASSERT_LT(d.offset, lens[d.noise_index]);
    ASSERT_GE(d.snr_db, 5);
    ASSERT_LT(d.snr_db, 20);
    used[d.noise_index]++;
    lo = std::min(lo, d.snr_db);
    hi = std::max(hi, d.snr_db);
    NoiseDraw e = DrawNoise(43, "a/x.wav", c, 3, lens, 5, 20);
    NoiseDraw f = DrawNoise(42, "a/y.wav", c, 3, lens, 5, 20);
    differ += (e.snr_db != d.snr_db) + (f.snr_db != d.snr_db);
  }
  EXPECT_EQ(differ, 600);  // another seed or path: other draws
  for (int u : used) EXPECT_GT(u, 60);  // all files used, about evenly
  EXPECT_LT(lo, 6);
  EXPECT_GT(hi, 19);
}

TEST(MixAtSnr, MeasuredSnrIsTheRequestedOneAndNoiseLoops) {
  std::mt19937 rng(1);
  std::normal_distribution<float> g;
  std::vector<float> x(5000), noise(700), out(5000);
  for (auto& v : x) v = 0.3f * g(rng);
  for (auto& v : noise) v = g(rng);
  for (double snr : {-5.0, 0.0, 12.5, 30.0}) {
    MixAtSnr(x.data(), 5000, noise, 650, snr, out.data());
    double px = 0, pn = 0;
    for (int i = 0; i < 5000; ++i) {
      px += x[i] * x[i];
      pn += (out[i] - x[i]) * (out[i] - x[i]);
    }
    EXPECT_NEAR(10 * std::log10(px / pn), snr, 1e-3);
    // The added noise is a scaled copy of noise[(650 + i) % 700].
    const double gain = (out[0] - x[0]) / noise[650];
    for (int i : {1, 49, 50, 51, 749, 4999}) {
      EXPECT_NEAR(out[i] - x[i], gain * noise[(650 + i) % 700], 1e-4) << i;
    }
  }
  std::vector<float> silent(100, 0.0f), mixed(100, 1.0f);
  MixAtSnr(silent.data(), 100, noise, 0, 10, mixed.data());
  for (float v : mixed) EXPECT_EQ(v, 0.0f);  // a silent clip stays silent
}

TEST(AudioFeaturizer, OptionErrors) {
  AudioOptions o;
  o.copies = 2;
  auto r = AudioFeaturizer::Make(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("--copies 2 needs --noise"), std::string::npos);
  o = AudioOptions();
  o.spectrogram.n_mfcc = 100;
  EXPECT_NE(AudioFeaturizer::Make(o).status().message().find("--mfcc"), std::string::npos);
  o = AudioOptions();
  o.label_regex = "no groups";
  EXPECT_NE(AudioFeaturizer::Make(o).status().message().find("--label-regex"),
            std::string::npos);
  o = AudioOptions();
  o.noise_dir = "/nonexistent/noise";
  o.copies = 1;
  EXPECT_NE(AudioFeaturizer::Make(o).status().message().find("is not a folder"),
            std::string::npos);
  o = AudioOptions();
  o.spectrogram.sample_rate = 16000.5;
  EXPECT_NE(AudioFeaturizer::Make(o).status().message().find("whole number"),
            std::string::npos);
  double lo, hi;
  EXPECT_TRUE(ParseSnrRange("5:20", "--snr-db", &lo, &hi).ok());
  EXPECT_EQ(lo, 5);
  EXPECT_EQ(hi, 20);
  EXPECT_TRUE(ParseSnrRange("-3.5:-3.5", "--snr-db", &lo, &hi).ok());
  for (const char* bad : {"5", "20:5", "a:b", ":3", "3:", "nan:1"}) {
    EXPECT_TRUE(ParseSnrRange(bad, "--snr-db", &lo, &hi).IsInvalid()) << bad;
  }
}

TEST(AudioFeaturizer, SchemaShapesAndTypeErrors) {
  AudioOptions o;
  o.clip_seconds = 1;
  o.spectrogram.n_mfcc = 13;
  o.label_regex = "([^/]+)/[^/]+$";
  auto f = AudioFeaturizer::Make(o).ValueOrDie();
  auto in = Files({}, {})->schema();
  auto s = f->OutputSchema(*in).ValueOrDie();
  EXPECT_EQ(s->field_names(),
            (std::vector<std::string>{"path", "label", "augment", "snr_db", "sample_rate",
                                      "num_samples", "log_mel", "mfcc"}));
  EXPECT_EQ(s->GetFieldByName("log_mel")->metadata()->Get("dlprep.shape").ValueOrDie(),
            "[101,64]");
  EXPECT_EQ(s->GetFieldByName("mfcc")->metadata()->Get("dlprep.shape").ValueOrDie(),
            "[101,13]");
  o.clip_seconds = 0;
  auto g = AudioFeaturizer::Make(o).ValueOrDie();
  EXPECT_EQ(g->OutputSchema(*in).ValueOrDie()->GetFieldByName("log_mel")->metadata()->Get(
                "dlprep.shape").ValueOrDie(),
            "[-1,64]");
  auto wrong = arrow::schema({arrow::field("path", arrow::int64()),
                              arrow::field("content", arrow::binary())});
  EXPECT_TRUE(f->OutputSchema(*wrong).status().IsTypeError());
  auto no_content = arrow::schema({arrow::field("path", arrow::utf8())});
  auto st = f->OutputSchema(*no_content).status();
  EXPECT_TRUE(st.IsTypeError());
  EXPECT_NE(st.message().find("'content'"), std::string::npos);
}

TEST(AudioOperator, ProcessReportsBadRowsAndKeepsGoodOnes) {
  AudioOptions o;
  o.clip_seconds = 0.5;
  o.label_regex = "([^/]+)/[^/]+$";
  auto f = AudioFeaturizer::Make(o).ValueOrDie();
  auto op = f->factory()().ValueOrDie();
  ASSERT_TRUE(op->Open(OperatorContext()).ok());
  auto batch = Files({"d/yes/a.wav", "d/yes/b.wav", "nolabel", "d/no/c.wav", "d/no/e.wav"},
                     {Wav16(16000, Tone(16000, 12000, 440)), "garbage bytes here",
                      Wav16(16000, Tone(16000, 100, 440)), Wav16(8000, Tone(8000, 2000, 300)),
                      ""});
  RowErrors errors;
  auto out = op->Process(batch, &errors).ValueOrDie();
  ASSERT_EQ(errors.rows, (std::vector<int64_t>{1, 2, 4}));
  EXPECT_NE(errors.messages[0].find("'d/yes/b.wav'"), std::string::npos);
  EXPECT_NE(errors.messages[0].find("not a readable audio file"), std::string::npos);
  EXPECT_NE(errors.messages[1].find("--label-regex"), std::string::npos);
  EXPECT_NE(errors.messages[2].find("empty file"), std::string::npos);
  ASSERT_EQ(out->num_rows(), 2);
  auto label = std::static_pointer_cast<arrow::StringArray>(out->GetColumnByName("label"));
  EXPECT_EQ(label->GetString(0), "yes");
  EXPECT_EQ(label->GetString(1), "no");
  auto n = std::static_pointer_cast<arrow::Int64Array>(out->GetColumnByName("num_samples"));
  EXPECT_EQ(n->Value(0), 8000);  // cut to 0.5 s
  EXPECT_EQ(n->Value(1), 8000);  // 8 kHz resampled to 4000 samples, padded to 0.5 s
  auto mel = std::static_pointer_cast<arrow::ListArray>(out->GetColumnByName("log_mel"));
  EXPECT_EQ(mel->value_length(0), 51 * 64);
  EXPECT_EQ(mel->value_length(1), 51 * 64);
  EXPECT_TRUE(out->GetColumnByName("snr_db")->IsNull(0));
  ASSERT_TRUE(op->Close().ok());
}

}  // namespace
}  // namespace dlprep::audio
