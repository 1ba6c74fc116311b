// Engine overhead of `score` over a bare libtorch loop (issue 6, benchmark a).
//
// The same model and the same pre-built batches of `--batch-size` rows:
//   bare:   for each batch: torch::from_blob -> module.forward -> output copied to a
//           std::vector (under InferenceMode), the loop a C++ user would write;
//   engine: dlprep::Pipeline reading the same rows as Arrow batches (list<float32>,
//           in memory) -> score operator (argmax on) -> collected Arrow output.
// Both on one worker with the same intra-op threads. Prints medians and the ratio;
// the goal is engine <= 1.05 x bare.
//
//   score_benchmark [--rows N] [--batch-size B] [--threads T] [--repeats R] [--model M]
// Without --model it builds an MLP over [40, 32] inputs (1280 -> 256 -> 10) in C++.
// Google Benchmark flags (from bench/run_all.sh) are ignored.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <ATen/Parallel.h>
#include <arrow/api.h>
#include <torch/script.h>

#include "dlprep/pipeline.h"
#include "dlprep/source.h"
#include "infer/torchscript/score.h"

namespace {

using Clock = std::chrono::steady_clock;

class MemorySource : public dlprep::Source {
 public:
  MemorySource(std::shared_ptr<arrow::Schema> schema,
               std::vector<std::shared_ptr<arrow::RecordBatch>> batches)
      : schema_(std::move(schema)), batches_(std::move(batches)) {}
  std::shared_ptr<arrow::Schema> schema() const override { return schema_; }
  int64_t num_partitions() const override { return 1; }
  std::string partition_name(int64_t) const override { return "memory"; }
  arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> OpenPartition(
      int64_t) const override {
    return arrow::RecordBatchReader::Make(batches_, schema_);
  }

 private:
  std::shared_ptr<arrow::Schema> schema_;
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches_;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int64_t Arg(int argc, char** argv, const char* name, int64_t def) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return std::atoll(argv[i + 1]);
  }
  return def;
}

std::string StrArg(int argc, char** argv, const char* name, const std::string& def) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  return def;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t rows = Arg(argc, argv, "--rows", 32768);
  const int64_t batch = Arg(argc, argv, "--batch-size", 256);
  const int threads = static_cast<int>(Arg(argc, argv, "--threads", 1));
  const int repeats = static_cast<int>(Arg(argc, argv, "--repeats", 3));
  std::string model_path = StrArg(argc, argv, "--model", "");
  std::vector<int64_t> row_shape = {40, 32};
  if (model_path.empty()) {
    model_path = (std::filesystem::temp_directory_path() / "dlprep_score_bench.pt").string();
    torch::manual_seed(0);
    torch::jit::Module m("mlp");
    m.register_parameter("w1", torch::randn({1280, 256}) * 0.03, false);
    m.register_parameter("b1", torch::zeros({256}), false);
    m.register_parameter("w2", torch::randn({256, 10}) * 0.06, false);
    m.define(R"JIT(
def forward(self, x):
    h = torch.relu(torch.addmm(self.b1, x.flatten(1), self.w1))
    return torch.mm(h, self.w2)
)JIT");
    m.save(model_path);
  }
  const int64_t row_size = row_shape[0] * row_shape[1];

  // The rows, once: a float buffer, and the same values as Arrow batches.
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::vector<float> data(rows * row_size);
  for (auto& v : data) v = normal(rng);
  auto meta = arrow::key_value_metadata({"dlprep.shape"}, {"[40,32]"});
  auto schema = arrow::schema(
      {arrow::field("id", arrow::int64()),
       arrow::field("x", arrow::list(arrow::float32()), true, meta)});
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  for (int64_t first = 0; first < rows; first += batch) {
    const int64_t n = std::min(batch, rows - first);
    std::vector<int64_t> ids(n);
    std::vector<int32_t> offsets(n + 1);
    for (int64_t r = 0; r < n; ++r) ids[r] = first + r;
    for (int64_t r = 0; r <= n; ++r) offsets[r] = static_cast<int32_t>(r * row_size);
    std::vector<float> values(data.begin() + first * row_size,
                              data.begin() + (first + n) * row_size);
    auto value_array = std::make_shared<arrow::FloatArray>(
        n * row_size, arrow::Buffer::FromVector(std::move(values)));
    auto list = std::make_shared<arrow::ListArray>(
        arrow::list(arrow::float32()), n, arrow::Buffer::FromVector(std::move(offsets)),
        value_array);
    auto id_array =
        std::make_shared<arrow::Int64Array>(n, arrow::Buffer::FromVector(std::move(ids)));
    batches.push_back(arrow::RecordBatch::Make(schema, n, {id_array, list}));
  }
  auto source = std::make_shared<MemorySource>(schema, batches);

  // Bare libtorch loop.
  at::set_num_threads(threads);
  torch::jit::Module module = torch::jit::load(model_path);
  module.eval();
  dlprep::infer::ScoreOptions o;
  o.model = model_path;
  o.columns = {"x"};
  o.batch_size = batch;
  o.argmax = true;
  o.threads_per_worker = threads;
  auto factory = dlprep::infer::MakeScoreFactory(o);
  if (!factory.ok()) {
    std::fprintf(stderr, "%s\n", factory.status().ToString().c_str());
    return 1;
  }
  // Bare and engine runs alternate, so load from other processes hits both alike.
  std::vector<double> bare, engine;
  double checksum_engine = 0;
  for (int rep = 0; rep < repeats; ++rep) {
    auto t0 = Clock::now();
    {
      c10::InferenceMode guard;
      for (int64_t first = 0; first < rows; first += batch) {
        const int64_t n = std::min(batch, rows - first);
        auto x = torch::from_blob(data.data() + first * row_size,
                                  {n, row_shape[0], row_shape[1]}, torch::kFloat32);
        auto y = module.forward({x}).toTensor().contiguous();
        std::vector<float> out(y.data_ptr<float>(), y.data_ptr<float>() + y.numel());
        auto pred = y.argmax(1);
        std::vector<int64_t> preds(pred.data_ptr<int64_t>(),
                                   pred.data_ptr<int64_t>() + pred.numel());
      }
    }
    bare.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    // The engine: source -> score -> collected output, one worker.
    t0 = Clock::now();
    auto table = dlprep::Pipeline::Read(source).MapStateful(*factory).Collect({.workers = 1});
    engine.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    if (!table.ok()) {
      std::fprintf(stderr, "%s\n", table.status().ToString().c_str());
      return 1;
    }
    checksum_engine = static_cast<double>((*table)->num_rows());
  }
  const double b = Median(bare), e = Median(engine);
  std::printf("score_benchmark: %lld rows of [40,32], batch %lld, %d thread(s), %d repeats "
              "(model load in the engine's Open() included; %.0f rows checked)\n",
              static_cast<long long>(rows), static_cast<long long>(batch), threads, repeats,
              checksum_engine);
  std::printf("  bare libtorch loop: median %.3f s (%.0f rows/s)\n", b, rows / b);
  std::printf("  dlprep engine:      median %.3f s (%.0f rows/s)\n", e, rows / e);
  std::printf("  engine / bare = %.3f (overhead %.1f%%; goal <= 5%%)\n", e / b,
              100.0 * (e / b - 1.0));
  return 0;
}
