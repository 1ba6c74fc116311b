#include "features/audio/audio_operator.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>

#include <arrow/api.h>

#include "exec/builtin_ops.h"
#include "exec/pipeline_file.h"
#include "features/audio/decode.h"

namespace dlprep::audio {

namespace {

uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

// Uniform in [0, 1) with 53 random bits.
double Unit(uint64_t* state) { return (SplitMix64(state) >> 11) * 0x1.0p-53; }

arrow::Result<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return arrow::Status::IOError("cannot open '", path, "'");
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return arrow::Status::IOError("cannot read '", path, "'");
  return data;
}

bool IsBinary(const arrow::DataType& t) {
  return t.id() == arrow::Type::BINARY || t.id() == arrow::Type::LARGE_BINARY;
}
bool IsString(const arrow::DataType& t) {
  return t.id() == arrow::Type::STRING || t.id() == arrow::Type::LARGE_STRING;
}

std::string_view StringAt(const arrow::Array& a, int64_t i) {
  if (a.type_id() == arrow::Type::LARGE_STRING) {
    return static_cast<const arrow::LargeStringArray&>(a).GetView(i);
  }
  return static_cast<const arrow::StringArray&>(a).GetView(i);
}

std::string_view BinaryAt(const arrow::Array& a, int64_t i) {
  if (a.type_id() == arrow::Type::LARGE_BINARY) {
    return static_cast<const arrow::LargeBinaryArray&>(a).GetView(i);
  }
  return static_cast<const arrow::BinaryArray&>(a).GetView(i);
}

std::shared_ptr<arrow::KeyValueMetadata> ShapeMeta(int64_t frames, int64_t width) {
  return arrow::key_value_metadata({"dlprep.shape"}, {"[" + std::to_string(frames) + "," +
                                                      std::to_string(width) + "]"});
}

// A list<float32> column built in place: features are computed straight into
// `values`, which becomes the Arrow buffer without a copy.
struct FloatLists {
  std::vector<int32_t> offsets{0};
  std::vector<float> values;

  // Room for one more row of n values; returns where to write them.
  arrow::Result<float*> Add(int64_t n) {
    const int64_t end = static_cast<int64_t>(values.size()) + n;
    if (end > std::numeric_limits<int32_t>::max()) {
      return arrow::Status::CapacityError(
          "audio: more than 2^31 feature values in one output batch; lower --max-seconds "
          "or the number of files per batch");
    }
    values.resize(end);
    offsets.push_back(static_cast<int32_t>(end));
    return values.data() + end - n;
  }

  std::shared_ptr<arrow::Array> Finish() {
    const int64_t rows = static_cast<int64_t>(offsets.size()) - 1;
    const int64_t n = static_cast<int64_t>(values.size());
    auto items = std::make_shared<arrow::FloatArray>(n, arrow::Buffer::FromVector(std::move(values)));
    return std::make_shared<arrow::ListArray>(arrow::list(arrow::float32()), rows,
                                              arrow::Buffer::FromVector(std::move(offsets)),
                                              items);
  }
};

class AudioOperator : public StatefulOperator {
 public:
  explicit AudioOperator(std::shared_ptr<const AudioFeaturizer> f) : f_(std::move(f)) {}

  std::string name() const override { return "audio"; }

  arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(
      const arrow::Schema& input) const override {
    return f_->OutputSchema(input);
  }

  arrow::Status Open(const OperatorContext&) override {
    extractor_ = std::make_unique<LogMelExtractor>(f_->tables());
    resampler_ = std::make_unique<Resampler>(
        static_cast<int>(f_->options().spectrogram.sample_rate));
    if (f_->label_step()) {
      ARROW_ASSIGN_OR_RAISE(label_op_, f_->label_step()());
      OperatorContext ctx;
      ARROW_RETURN_NOT_OK(label_op_->Open(ctx));
    }
    return arrow::Status::OK();
  }

  arrow::Status Close() override {
    if (label_op_ != nullptr) return label_op_->Close();
    return arrow::Status::OK();
  }

  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Process(
      const std::shared_ptr<arrow::RecordBatch>& input, RowErrors* row_errors) override;

 private:
  struct Builders;
  // Features of `samples` into the builders as one output row.
  arrow::Status EmitRow(Builders* b, std::string_view path, const std::string* label,
                        int augment, double snr_db, const std::vector<float>& samples);

  std::shared_ptr<const AudioFeaturizer> f_;
  std::unique_ptr<LogMelExtractor> extractor_;
  std::unique_ptr<Resampler> resampler_;
  std::unique_ptr<StatefulOperator> label_op_;
  // Per-worker scratch, reused across rows and batches.
  std::vector<float> decoded_, interleaved_, resampled_, mixed_;
};

struct AudioOperator::Builders {
  arrow::StringBuilder path, label;
  arrow::Int32Builder augment, sample_rate;
  arrow::FloatBuilder snr_db;
  arrow::Int64Builder num_samples;
  FloatLists mel, mfcc, audio;
};

arrow::Status AudioOperator::EmitRow(Builders* b, std::string_view path,
                                     const std::string* label, int augment, double snr_db,
                                     const std::vector<float>& samples) {
  const SpectrogramOptions& so = f_->options().spectrogram;
  const int64_t n = static_cast<int64_t>(samples.size());
  const int64_t frames = NumFrames(n, so.hop_length);
  ARROW_ASSIGN_OR_RAISE(float* mel, b->mel.Add(frames * so.n_mels));
  float* mfcc = nullptr;
  if (so.n_mfcc > 0) {
    ARROW_ASSIGN_OR_RAISE(mfcc, b->mfcc.Add(frames * so.n_mfcc));
  }
  extractor_->Compute(samples.data(), n, mel, mfcc);
  if (f_->options().waveform) {
    ARROW_ASSIGN_OR_RAISE(float* audio, b->audio.Add(n));
    std::copy(samples.begin(), samples.end(), audio);
  }
  ARROW_RETURN_NOT_OK(b->path.Append(path.data(), static_cast<int32_t>(path.size())));
  if (!f_->options().label_regex.empty()) {
    ARROW_RETURN_NOT_OK(label != nullptr ? b->label.Append(*label) : b->label.AppendNull());
  }
  ARROW_RETURN_NOT_OK(b->augment.Append(augment));
  ARROW_RETURN_NOT_OK(augment == 0 ? b->snr_db.AppendNull()
                                   : b->snr_db.Append(static_cast<float>(snr_db)));
  ARROW_RETURN_NOT_OK(b->sample_rate.Append(static_cast<int32_t>(so.sample_rate)));
  return b->num_samples.Append(n);
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> AudioOperator::Process(
    const std::shared_ptr<arrow::RecordBatch>& input, RowErrors* sorted_errors) {
  const AudioOptions& o = f_->options();
  // Label and decoding errors are collected apart, then handed over by ascending row.
  RowErrors errors;
  RowErrors* row_errors = &errors;
  ARROW_ASSIGN_OR_RAISE(auto schema, f_->OutputSchema(*input->schema()));
  // Labels first: the regex step drops (and reports) the rows whose path does not match;
  // `kept` maps its output rows back to rows of `input`.
  std::shared_ptr<arrow::RecordBatch> batch = input;
  std::vector<int64_t> kept;
  std::shared_ptr<arrow::Array> labels;
  if (label_op_ != nullptr) {
    RowErrors label_errors;
    ARROW_ASSIGN_OR_RAISE(batch, label_op_->Process(input, &label_errors));
    labels = batch->GetColumnByName("label");
    size_t e = 0;
    for (int64_t r = 0; r < input->num_rows(); ++r) {
      if (e < label_errors.rows.size() && label_errors.rows[e] == r) {
        row_errors->Add(r, "audio: --label-regex: " + label_errors.messages[e]);
        ++e;
      } else {
        kept.push_back(r);
      }
    }
  }
  const auto& paths = *batch->GetColumnByName(o.path_column);
  const auto& contents = *batch->GetColumnByName(o.content_column);
  const int out_rate = static_cast<int>(o.spectrogram.sample_rate);
  Builders b;
  const int64_t expected_rows = batch->num_rows() * (1 + o.copies);
  ARROW_RETURN_NOT_OK(b.path.Reserve(expected_rows));
  if (f_->clip_samples() > 0) {
    b.mel.values.reserve(expected_rows * f_->fixed_frames() * o.spectrogram.n_mels);
    b.mfcc.values.reserve(expected_rows * f_->fixed_frames() * o.spectrogram.n_mfcc);
  }
  std::string label_value;
  for (int64_t i = 0; i < batch->num_rows(); ++i) {
    const int64_t row = label_op_ != nullptr ? kept[i] : i;
    std::string_view path = paths.IsNull(i) ? std::string_view() : StringAt(paths, i);
    auto fail = [&](const std::string& why) {
      row_errors->Add(row, "audio: '" + std::string(path) + "': " + why);
    };
    if (paths.IsNull(i)) {
      fail("the path is null");
      continue;
    }
    if (contents.IsNull(i)) {
      fail("content is null (read the files with their content)");
      continue;
    }
    std::string_view bytes = BinaryAt(contents, i);
    AudioInfo info;
    arrow::Status st = DecodeMono(reinterpret_cast<const uint8_t*>(bytes.data()),
                                  static_cast<int64_t>(bytes.size()), o.max_seconds,
                                  &decoded_, &interleaved_, &info);
    if (!st.ok()) {
      fail(st.message());
      continue;
    }
    std::vector<float>* samples = &decoded_;
    if (info.sample_rate != out_rate) {
      st = resampler_->Resample(decoded_.data(), static_cast<int64_t>(decoded_.size()),
                                info.sample_rate, &resampled_);
      if (!st.ok()) {
        fail(st.message());
        continue;
      }
      samples = &resampled_;
    }
    if (f_->clip_samples() > 0) samples->resize(f_->clip_samples(), 0.0f);
    const std::string* label = nullptr;
    if (labels != nullptr && labels->IsValid(i)) {
      label_value = std::string(StringAt(*labels, i));
      label = &label_value;
    }
    ARROW_RETURN_NOT_OK(EmitRow(&b, path, label, 0, 0, *samples));
    for (int c = 1; c <= o.copies; ++c) {
      NoiseDraw d = DrawNoise(o.seed, path, c, static_cast<int64_t>(f_->noise().size()),
                              f_->noise_lengths(), o.snr_min_db, o.snr_max_db);
      mixed_.resize(samples->size());
      MixAtSnr(samples->data(), static_cast<int64_t>(samples->size()),
               f_->noise()[d.noise_index], d.offset, d.snr_db, mixed_.data());
      ARROW_RETURN_NOT_OK(EmitRow(&b, path, label, c, d.snr_db, mixed_));
    }
  }
  std::vector<std::shared_ptr<arrow::Array>> cols;
  auto finish = [&](arrow::ArrayBuilder* builder) -> arrow::Status {
    std::shared_ptr<arrow::Array> a;
    ARROW_RETURN_NOT_OK(builder->Finish(&a));
    cols.push_back(std::move(a));
    return arrow::Status::OK();
  };
  ARROW_RETURN_NOT_OK(finish(&b.path));
  if (!o.label_regex.empty()) ARROW_RETURN_NOT_OK(finish(&b.label));
  ARROW_RETURN_NOT_OK(finish(&b.augment));
  ARROW_RETURN_NOT_OK(finish(&b.snr_db));
  ARROW_RETURN_NOT_OK(finish(&b.sample_rate));
  ARROW_RETURN_NOT_OK(finish(&b.num_samples));
  cols.push_back(b.mel.Finish());
  if (o.spectrogram.n_mfcc > 0) cols.push_back(b.mfcc.Finish());
  if (o.waveform) cols.push_back(b.audio.Finish());
  std::vector<size_t> order(errors.rows.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return errors.rows[a] < errors.rows[b]; });
  for (size_t i : order) sorted_errors->Add(errors.rows[i], std::move(errors.messages[i]));
  const int64_t rows = cols.front()->length();
  return arrow::RecordBatch::Make(schema, rows, std::move(cols));
}

}  // namespace

NoiseDraw DrawNoise(uint64_t seed, std::string_view path, int copy, int64_t num_noise,
                    const std::vector<int64_t>& noise_lengths, double snr_min_db,
                    double snr_max_db) {
  uint64_t state = seed;
  state ^= SplitMix64(&state) ^ Fnv1a(path);
  state ^= SplitMix64(&state) ^ static_cast<uint64_t>(copy);
  SplitMix64(&state);
  NoiseDraw d;
  d.noise_index = std::min<int64_t>(num_noise - 1,
                                    static_cast<int64_t>(Unit(&state) * num_noise));
  const int64_t len = noise_lengths[d.noise_index];
  d.offset = std::min<int64_t>(len - 1, static_cast<int64_t>(Unit(&state) * len));
  d.snr_db = snr_min_db + (snr_max_db - snr_min_db) * Unit(&state);
  return d;
}

void MixAtSnr(const float* x, int64_t n, const std::vector<float>& noise, int64_t offset,
              double snr_db, float* out) {
  const int64_t len = static_cast<int64_t>(noise.size());
  double px = 0, pn = 0;
  for (int64_t i = 0; i < n; ++i) px += static_cast<double>(x[i]) * x[i];
  int64_t j = offset;
  for (int64_t i = 0; i < n; ++i) {
    pn += static_cast<double>(noise[j]) * noise[j];
    if (++j == len) j = 0;
  }
  if (px <= 0 || pn <= 0 || len == 0) {
    std::copy(x, x + n, out);
    return;
  }
  const float g = static_cast<float>(std::sqrt(px / (pn * std::pow(10.0, snr_db / 10.0))));
  j = offset;
  for (int64_t i = 0; i < n; ++i) {
    out[i] = x[i] + g * noise[j];
    if (++j == len) j = 0;
  }
}

int64_t AudioFeaturizer::fixed_frames() const {
  return clip_samples_ > 0 ? NumFrames(clip_samples_, options_.spectrogram.hop_length) : -1;
}

arrow::Result<std::shared_ptr<const AudioFeaturizer>> AudioFeaturizer::Make(
    AudioOptions options) {
  std::string bad = ValidateSpectrogramOptions(options.spectrogram);
  if (!bad.empty()) return arrow::Status::Invalid("audio: ", bad);
  const double rate = options.spectrogram.sample_rate;
  if (rate != std::floor(rate) || rate > 1e7) {
    return arrow::Status::Invalid("audio: --sample-rate must be a whole number of Hz up to "
                                  "10000000, got ", rate);
  }
  if (options.copies < 0) {
    return arrow::Status::Invalid("audio: --copies must be >= 0, got ", options.copies);
  }
  if (options.copies > 0 && options.noise_dir.empty()) {
    return arrow::Status::Invalid("audio: --copies ", options.copies,
                                  " needs --noise DIR (the noise files to mix in)");
  }
  if (!(options.snr_min_db <= options.snr_max_db) || !std::isfinite(options.snr_min_db) ||
      !std::isfinite(options.snr_max_db)) {
    return arrow::Status::Invalid("audio: --snr-db: expected A:B with A <= B, got ",
                                  options.snr_min_db, ":", options.snr_max_db);
  }
  if (options.path_column.empty() || options.content_column.empty()) {
    return arrow::Status::Invalid("audio: the path and content column names must be set");
  }
  std::shared_ptr<AudioFeaturizer> f(new AudioFeaturizer());
  if (options.clip_seconds > 0) {
    f->clip_samples_ = std::llround(options.clip_seconds * rate);
    if (f->clip_samples_ < 1) {
      return arrow::Status::Invalid("audio: --clip-seconds ", options.clip_seconds,
                                    " is less than one sample at ", rate, " Hz");
    }
  }
  if (!options.label_regex.empty()) {
    exec::RegexExtractOptions r;
    r.column = options.path_column;
    r.pattern = options.label_regex;
    r.output = "label";
    r.on_mismatch = exec::OnMismatch::kError;
    auto step = exec::MakeRegexExtract(r);
    if (!step.ok()) {
      return arrow::Status::Invalid("audio: --label-regex: ", step.status().message());
    }
    f->label_step_ = step->stateful;
  }
  f->tables_ = std::make_shared<const SpectrogramTables>(options.spectrogram);
  if (!options.noise_dir.empty()) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::is_directory(options.noise_dir, ec)) {
      return arrow::Status::Invalid("audio: --noise: '", options.noise_dir,
                                    "' is not a folder");
    }
    std::vector<std::string> files;
    for (auto it = fs::recursive_directory_iterator(options.noise_dir, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      std::string name = it->path().filename().string();
      if (name.empty() || name[0] == '.' || name[0] == '_') {
        if (it->is_directory(ec)) it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file(ec)) files.push_back(it->path().string());
    }
    if (ec) {
      return arrow::Status::IOError("audio: --noise: cannot list '", options.noise_dir,
                                    "': ", ec.message());
    }
    if (files.empty()) {
      return arrow::Status::Invalid("audio: --noise: folder '", options.noise_dir,
                                    "' has no files");
    }
    std::sort(files.begin(), files.end());
    Resampler resampler(static_cast<int>(rate));
    std::vector<float> mono, scratch, out;
    for (const auto& path : files) {
      ARROW_ASSIGN_OR_RAISE(std::string data, ReadWholeFile(path));
      AudioInfo info;
      arrow::Status st = DecodeMono(reinterpret_cast<const uint8_t*>(data.data()),
                                    static_cast<int64_t>(data.size()), 0, &mono, &scratch,
                                    &info);
      if (!st.ok()) {
        return arrow::Status::Invalid("audio: --noise file '", path, "': ", st.message());
      }
      if (info.sample_rate != static_cast<int>(rate)) {
        ARROW_RETURN_NOT_OK(resampler.Resample(mono.data(), static_cast<int64_t>(mono.size()),
                                               info.sample_rate, &out));
        f->noise_.push_back(out);
      } else {
        f->noise_.push_back(mono);
      }
      f->noise_lengths_.push_back(static_cast<int64_t>(f->noise_.back().size()));
      f->noise_paths_.push_back(path);
    }
  }
  f->options_ = std::move(options);
  f->self_ = f;
  return std::shared_ptr<const AudioFeaturizer>(f);
}

arrow::Result<std::shared_ptr<arrow::Schema>> AudioFeaturizer::OutputSchema(
    const arrow::Schema& input) const {
  const auto& o = options_;
  auto p = input.GetFieldByName(o.path_column);
  auto c = input.GetFieldByName(o.content_column);
  if (p == nullptr || !IsString(*p->type())) {
    return arrow::Status::TypeError("audio: expected a string column '", o.path_column,
                                    "' (the binary_files source's schema), got ",
                                    input.ToString());
  }
  if (c == nullptr || !IsBinary(*c->type())) {
    return arrow::Status::TypeError("audio: expected a binary column '", o.content_column,
                                    "' holding the file bytes (the binary_files source's "
                                    "schema), got ",
                                    input.ToString());
  }
  const int64_t frames = fixed_frames();
  std::vector<std::shared_ptr<arrow::Field>> fields = {arrow::field("path", arrow::utf8())};
  if (!o.label_regex.empty()) fields.push_back(arrow::field("label", arrow::utf8()));
  fields.push_back(arrow::field("augment", arrow::int32(), false));
  fields.push_back(arrow::field("snr_db", arrow::float32()));
  fields.push_back(arrow::field("sample_rate", arrow::int32(), false));
  fields.push_back(arrow::field("num_samples", arrow::int64(), false));
  fields.push_back(arrow::field("log_mel", arrow::list(arrow::float32()), false,
                                ShapeMeta(frames, o.spectrogram.n_mels)));
  if (o.spectrogram.n_mfcc > 0) {
    fields.push_back(arrow::field("mfcc", arrow::list(arrow::float32()), false,
                                  ShapeMeta(frames, o.spectrogram.n_mfcc)));
  }
  if (o.waveform) {
    fields.push_back(arrow::field(
        "audio", arrow::list(arrow::float32()), false,
        arrow::key_value_metadata({"dlprep.shape"},
                                  {"[" + std::to_string(clip_samples_) + "]"})));
  }
  return arrow::schema(fields);
}

StatefulOperatorFactory AudioFeaturizer::factory() const {
  std::shared_ptr<const AudioFeaturizer> self = self_.lock();
  return [self]() -> arrow::Result<std::unique_ptr<StatefulOperator>> {
    return std::make_unique<AudioOperator>(self);
  };
}

arrow::Status ParseSnrRange(const std::string& text, const std::string& option, double* lo,
                            double* hi) {
  auto bad = [&]() {
    return arrow::Status::Invalid(option, ": '", text,
                                  "' is not a range; expected A:B in dB with A <= B, e.g. 5:20");
  };
  size_t colon = text.find(':');
  if (colon == std::string::npos) return bad();
  std::string a = text.substr(0, colon), b = text.substr(colon + 1);
  char* end = nullptr;
  *lo = std::strtod(a.c_str(), &end);
  if (a.empty() || *end != '\0') return bad();
  *hi = std::strtod(b.c_str(), &end);
  if (b.empty() || *end != '\0' || !(*lo <= *hi) || !std::isfinite(*lo) || !std::isfinite(*hi)) {
    return bad();
  }
  return arrow::Status::OK();
}

arrow::Status RegisterAudioStep() {
  // audio: the speech featurizer over the binary_files source (a stateful step).
  return exec::RegisterStep("audio", [](exec::ConfigNode* c) -> arrow::Result<PipelineStep> {
    AudioOptions o;
    SpectrogramOptions& s = o.spectrogram;
    ARROW_ASSIGN_OR_RAISE(s.sample_rate, c->GetDouble("sample_rate", 16000));
    ARROW_ASSIGN_OR_RAISE(o.clip_seconds, c->GetDuration("clip_seconds", 0));
    ARROW_ASSIGN_OR_RAISE(int64_t n_fft, c->GetInt("n_fft", 512));
    ARROW_ASSIGN_OR_RAISE(int64_t win, c->GetInt("win_length", 400));
    ARROW_ASSIGN_OR_RAISE(int64_t hop, c->GetInt("hop_length", 160));
    ARROW_ASSIGN_OR_RAISE(int64_t n_mels, c->GetInt("n_mels", 64));
    ARROW_ASSIGN_OR_RAISE(int64_t mfcc, c->GetInt("mfcc", 0));
    ARROW_ASSIGN_OR_RAISE(s.fmin, c->GetDouble("fmin", 0));
    ARROW_ASSIGN_OR_RAISE(s.fmax, c->GetDouble("fmax", -1));
    ARROW_ASSIGN_OR_RAISE(s.top_db, c->GetDouble("top_db", 80));
    ARROW_ASSIGN_OR_RAISE(o.max_seconds, c->GetDuration("max_seconds", 600));
    ARROW_ASSIGN_OR_RAISE(o.label_regex, c->GetString("label_regex", ""));
    ARROW_ASSIGN_OR_RAISE(std::string noise, c->GetString("noise", ""));
    ARROW_ASSIGN_OR_RAISE(int64_t copies, c->GetInt("copies", 0));
    ARROW_ASSIGN_OR_RAISE(std::string snr, c->GetString("snr_db", "5:20"));
    ARROW_ASSIGN_OR_RAISE(int64_t seed, c->GetInt("seed", 0));
    ARROW_ASSIGN_OR_RAISE(o.waveform, c->GetBool("waveform", false));
    for (const auto& [key, v] : {std::pair<const char*, int64_t>{"n_fft", n_fft},
                                 {"win_length", win}, {"hop_length", hop},
                                 {"n_mels", n_mels}, {"mfcc", mfcc}, {"copies", copies}}) {
      if (v < 0 || v > (int64_t{1} << 24)) return c->OptionError(key, "out of range");
    }
    s.n_fft = static_cast<int>(n_fft);
    s.win_length = static_cast<int>(win);
    s.hop_length = static_cast<int>(hop);
    s.n_mels = static_cast<int>(n_mels);
    s.n_mfcc = static_cast<int>(mfcc);
    o.copies = static_cast<int>(copies);
    o.seed = static_cast<uint64_t>(seed);
    if (!noise.empty()) o.noise_dir = c->ResolvePath(noise);
    arrow::Status st = ParseSnrRange(snr, "snr_db", &o.snr_min_db, &o.snr_max_db);
    if (!st.ok()) return c->OptionError("snr_db", st.message());
    auto f = AudioFeaturizer::Make(o);
    if (!f.ok()) return c->OptionError("audio", f.status().message());
    PipelineStep step;
    step.kind = PipelineStep::Kind::kStateful;
    step.stateful = (*f)->factory();
    return step;
  });
}

}  // namespace dlprep::audio
