#include "infer/torchscript/score.h"

#include <filesystem>
#include <thread>

#include <arrow/api.h>
#include <gtest/gtest.h>
#include <ATen/Parallel.h>
#include <torch/script.h>

#include "dlprep/pipeline.h"
#include "exec/exec_test_util.h"

namespace dlprep::infer {
namespace {

namespace fs = std::filesystem;

// Saves a TorchScript module whose forward() is `body` (TorchScript source), built in
// C++ so these tests need no Python.
std::string SaveModel(const std::string& name, const std::string& body) {
  fs::path dir = fs::path(DLPREP_TEST_TMPDIR) / "score_test";
  fs::create_directories(dir);
  torch::jit::Module m("m");
  m.define(body);
  std::string path = (dir / name).string();
  m.save(path);
  return path;
}

// forward(x [B, 2, 2]) -> [B, 2]: (rows in this forward() call, sum of the row).
std::string BatchRowsModel() {
  return SaveModel("batch_rows.pt", R"JIT(
def forward(self, x):
    n = x.flatten(1).sum(1, keepdim=True) * 0.0 + float(x.size(0))
    return torch.cat([n, x.flatten(1).sum(1, keepdim=True)], 1)
)JIT");
}

std::shared_ptr<arrow::Schema> InputSchema() {
  auto meta = arrow::key_value_metadata({"dlprep.shape"}, {"[2,2]"});
  return arrow::schema({arrow::field("id", arrow::int64()),
                        arrow::field("x", arrow::list(arrow::float32()), true, meta)});
}

// Rows id = first .. first + n - 1 with x = 4 values, each equal to id.
std::shared_ptr<arrow::RecordBatch> Rows(int64_t first, int64_t n) {
  arrow::Int64Builder ids;
  arrow::ListBuilder xs(arrow::default_memory_pool(), std::make_shared<arrow::FloatBuilder>());
  auto* values = static_cast<arrow::FloatBuilder*>(xs.value_builder());
  for (int64_t i = first; i < first + n; ++i) {
    EXPECT_TRUE(ids.Append(i).ok());
    EXPECT_TRUE(xs.Append().ok());
    for (int k = 0; k < 4; ++k) EXPECT_TRUE(values->Append(static_cast<float>(i)).ok());
  }
  return arrow::RecordBatch::Make(InputSchema(), n, {*ids.Finish(), *xs.Finish()});
}

const float* Scores(const arrow::RecordBatch& b) {
  auto list = std::static_pointer_cast<arrow::ListArray>(b.GetColumnByName("scores"));
  return std::static_pointer_cast<arrow::FloatArray>(list->values())->raw_values() +
         list->value_offset(0);
}

TEST(ScoreTest, DirectCallsGatherRowsAndFlushTheRest) {
  ScoreOptions o;
  o.model = BatchRowsModel();
  o.columns = {"x"};
  o.batch_size = 8;
  ASSERT_OK_AND_ASSIGN(auto factory, MakeScoreFactory(o));
  ASSERT_OK_AND_ASSIGN(auto op, factory());
  ASSERT_OK_AND_ASSIGN(auto schema, op->OutputSchema(*InputSchema()));
  EXPECT_EQ(schema->ToString(false), "id: int64\nscores: list<item: float>");
  ASSERT_OK(op->Open(OperatorContext{}));
  RowErrors errors;
  // 5 rows: held back (fewer than a batch).
  ASSERT_OK_AND_ASSIGN(auto out, op->Process(Rows(0, 5), &errors));
  EXPECT_EQ(out->num_rows(), 0);
  // 5 more: one forward() of 8 rows; 2 held.
  ASSERT_OK_AND_ASSIGN(out, op->Process(Rows(5, 5), &errors));
  ASSERT_EQ(out->num_rows(), 8);
  const float* s = Scores(*out);
  auto ids = std::static_pointer_cast<arrow::Int64Array>(out->GetColumnByName("id"));
  for (int64_t r = 0; r < 8; ++r) {
    EXPECT_EQ(ids->Value(r), r);
    EXPECT_EQ(s[2 * r], 8.0f);
    EXPECT_EQ(s[2 * r + 1], 4.0f * r);
  }
  ASSERT_OK_AND_ASSIGN(out, op->Flush());
  ASSERT_NE(out, nullptr);
  ASSERT_EQ(out->num_rows(), 2);
  s = Scores(*out);
  EXPECT_EQ(s[0], 2.0f);
  EXPECT_EQ(s[1], 32.0f);
  EXPECT_EQ(s[3], 36.0f);
  EXPECT_TRUE(errors.empty());
  ASSERT_OK_AND_ASSIGN(out, op->Flush());
  EXPECT_EQ(out, nullptr);
  ASSERT_OK(op->Close());
}

TEST(ScoreTest, OpenCountIsWorkersNotBatchesAndOrderIsKept) {
  ScoreOptions o;
  o.model = BatchRowsModel();
  o.columns = {"x"};
  o.batch_size = 16;
  ASSERT_OK_AND_ASSIGN(auto factory, MakeScoreFactory(o));
  // 6 partitions of 5 batches of 7 rows.
  std::vector<std::vector<std::shared_ptr<arrow::RecordBatch>>> parts(6);
  int64_t next = 0;
  for (auto& p : parts) {
    for (int b = 0; b < 5; ++b, next += 7) p.push_back(Rows(next, 7));
  }
  auto source = std::make_shared<exec::testing::BatchesSource>(InputSchema(), parts);
  for (int workers : {1, 2}) {
    RunStats stats;
    ASSERT_OK_AND_ASSIGN(auto table, Pipeline::Read(source).MapStateful(factory).Collect(
                                         {.workers = workers}, &stats));
    ASSERT_EQ(table->num_rows(), next);
    EXPECT_EQ(stats.stages[1].batches_in, 30);
    EXPECT_GE(stats.stages[1].opens, 1);
    EXPECT_LE(stats.stages[1].opens, workers);
    ASSERT_OK(table->ValidateFull());
    ASSERT_OK_AND_ASSIGN(auto b, table->CombineChunksToBatch());
    auto ids = std::static_pointer_cast<arrow::Int64Array>(b->GetColumnByName("id"));
    const float* s = Scores(*b);
    for (int64_t r = 0; r < next; ++r) {
      ASSERT_EQ(ids->Value(r), r);
      // 35 rows per partition: calls of 16, 16, then 3 at the partition's end.
      EXPECT_EQ(s[2 * r], (r % 35) < 32 ? 16.0f : 3.0f) << r;
    }
  }
}

TEST(ScoreTest, OpenSetsTheWorkersIntraOpThreads) {
  ScoreOptions o;
  o.model = BatchRowsModel();
  o.columns = {"x"};
  ASSERT_OK_AND_ASSIGN(auto factory, MakeScoreFactory(o));
  OperatorContext two_workers;
  two_workers.num_workers = 2;
  // Default: hardware threads / workers (at least 1), on the thread that calls Open().
  ASSERT_OK_AND_ASSIGN(auto op, factory());
  ASSERT_OK(op->Open(two_workers));
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  EXPECT_EQ(at::get_num_threads(), std::max(1, cores / 2));
  ASSERT_OK(op->Close());
  o.threads_per_worker = 3;
  ASSERT_OK_AND_ASSIGN(factory, MakeScoreFactory(o));
  ASSERT_OK_AND_ASSIGN(op, factory());
  ASSERT_OK(op->Open(two_workers));
  EXPECT_EQ(at::get_num_threads(), 3);
  // Another thread keeps its own setting (libtorch's OpenMP threads are per thread).
  int other = 0;
  std::thread t([&] {
    at::set_num_threads(1);
    other = at::get_num_threads();
  });
  t.join();
  EXPECT_EQ(other, 1);
  EXPECT_EQ(at::get_num_threads(), 3);
  ASSERT_OK(op->Close());
}

TEST(ScoreTest, WrongSizeAndNullRowsAreRowErrors) {
  ScoreOptions o;
  o.model = BatchRowsModel();
  o.columns = {"x"};
  ASSERT_OK_AND_ASSIGN(auto factory, MakeScoreFactory(o));
  ASSERT_OK_AND_ASSIGN(auto op, factory());
  ASSERT_OK(op->OutputSchema(*InputSchema()).status());
  ASSERT_OK(op->Open(OperatorContext{}));
  arrow::Int64Builder ids;
  arrow::ListBuilder xs(arrow::default_memory_pool(), std::make_shared<arrow::FloatBuilder>());
  auto* values = static_cast<arrow::FloatBuilder*>(xs.value_builder());
  ASSERT_OK(ids.AppendValues({0, 1, 2}));
  ASSERT_OK(xs.Append());
  ASSERT_OK(values->AppendValues({1, 2, 3, 4}));
  ASSERT_OK(xs.Append());
  ASSERT_OK(values->AppendValues({1, 2, 3}));
  ASSERT_OK(xs.AppendNull());
  auto batch = arrow::RecordBatch::Make(InputSchema(), 3, {*ids.Finish(), *xs.Finish()});
  RowErrors errors;
  ASSERT_OK_AND_ASSIGN(auto out, op->Process(batch, &errors));
  ASSERT_OK_AND_ASSIGN(auto rest, op->Flush());
  ASSERT_NE(rest, nullptr);
  EXPECT_EQ(out->num_rows() + rest->num_rows(), 1);
  ASSERT_EQ(errors.size(), 2);
  EXPECT_EQ(errors.rows, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(errors.messages[0], "column 'x' has 3 values; expected 4 (shape [2,2])");
  EXPECT_EQ(errors.messages[1], "column 'x' is null; expected a tensor of shape [2,2]");
}

TEST(ScoreTest, ModelErrorsComeFromTheFactoryOrThePlan) {
  ScoreOptions o;
  o.columns = {"x"};
  o.model = (fs::path(DLPREP_TEST_TMPDIR) / "score_test" / "absent.pt").string();
  auto f = MakeScoreFactory(o);
  ASSERT_FALSE(f.ok());
  EXPECT_TRUE(f.status().IsIOError());
  EXPECT_NE(f.status().message().find("does not exist"), std::string::npos);
  // A model that wants rank-4 input fails when the pipeline is planned.
  o.model = SaveModel("rank4.pt", R"JIT(
def forward(self, x):
    return x.permute(0, 3, 1, 2).flatten(1)
)JIT");
  ASSERT_OK_AND_ASSIGN(auto factory, MakeScoreFactory(o));
  ASSERT_OK_AND_ASSIGN(auto op, factory());
  auto schema = op->OutputSchema(*InputSchema());
  ASSERT_FALSE(schema.ok());
  EXPECT_NE(schema.status().message().find("failed on a dummy batch of the declared input "
                                           "shape ('x' [2,2,2]"),
            std::string::npos)
      << schema.status().message();
  o.device = "cuda";
  f = MakeScoreFactory(o);
  if (!f.ok()) {
    EXPECT_NE(f.status().message().find("--device cuda is unavailable"), std::string::npos);
  } else {
    GTEST_SKIP() << "CUDA is available here";
  }
}

}  // namespace
}  // namespace dlprep::infer
