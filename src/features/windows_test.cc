#include "features/windows.h"

#include <algorithm>
#include <map>
#include <optional>
#include <tuple>

#include <arrow/api.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "dlprep/pipeline.h"
#include "exec/exec_test_util.h"
#include "features/steps.h"

namespace dlprep::features {
namespace {
using ::dlprep::exec::testing::BatchesSource;

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

constexpr int64_t D = 86400;

TEST(ParseTimePoint, EpochSecondsExactlyOrAnError) {
  EXPECT_EQ(*ParseTimePoint("1700000000", "--until"), 1700000000);
  EXPECT_EQ(*ParseTimePoint("-86400", "--until"), -86400);
  EXPECT_EQ(*ParseTimePoint("+5", "--until"), 5);
  EXPECT_EQ(*ParseTimePoint("9223372036854775807", "--until"), INT64_MAX);
  EXPECT_EQ(*ParseTimePoint("2024-06-30", "--until"), 1719705600);
  // Beyond int64: an error naming the option, not the largest int64.
  for (const char* big : {"99999999999999999999", "-99999999999999999999",
                          "9223372036854775808"}) {
    auto r = ParseTimePoint(big, "--until");
    ASSERT_FALSE(r.ok()) << big << " read as " << *r;
    EXPECT_THAT(r.status().message(), HasSubstr("--until"));
    EXPECT_THAT(r.status().message(), HasSubstr("beyond the range"));
  }
  EXPECT_FALSE(ParseTimePoint("12x", "--until").ok());
  EXPECT_FALSE(ParseTimePoint("", "--until").ok());
}


// One input event; the key is int64 unless `skey` is set.
struct Event {
  Event() = default;
  Event(int64_t k, std::optional<int64_t> time, std::string c, std::optional<double> a,
        std::optional<int64_t> churn_s)
      : key(k), t(time), cat(std::move(c)), amount(a), churn(churn_s) {}
  int64_t key = 0;
  std::optional<int64_t> t;
  std::string cat;
  std::optional<double> amount;
  std::optional<int64_t> churn;
  std::string skey;
};

// Events as a batch: k (int64 or string), ts (`time_type`, values given in that unit),
// cat (string), amount (double), churn (int64 seconds).
std::shared_ptr<arrow::RecordBatch> MakeEvents(
    const std::vector<Event>& events, bool string_key = false,
    std::shared_ptr<arrow::DataType> time_type = arrow::int64()) {
  arrow::Int64Builder kb, cb;
  arrow::StringBuilder skb, catb;
  arrow::DoubleBuilder ab;
  std::unique_ptr<arrow::ArrayBuilder> tb;
  EXPECT_TRUE(arrow::MakeBuilder(arrow::default_memory_pool(), time_type, &tb).ok());
  for (const auto& e : events) {
    if (string_key) {
      EXPECT_TRUE(skb.Append(e.skey).ok());
    } else {
      EXPECT_TRUE(kb.Append(e.key).ok());
    }
    if (e.t) {
      if (time_type->id() == arrow::Type::INT64) {
        EXPECT_TRUE(static_cast<arrow::Int64Builder&>(*tb).Append(*e.t).ok());
      } else {
        EXPECT_TRUE(static_cast<arrow::TimestampBuilder&>(*tb).Append(*e.t).ok());
      }
    } else {
      EXPECT_TRUE(tb->AppendNull().ok());
    }
    EXPECT_TRUE(catb.Append(e.cat).ok());
    EXPECT_TRUE((e.amount ? ab.Append(*e.amount) : ab.AppendNull()).ok());
    EXPECT_TRUE((e.churn ? cb.Append(*e.churn) : cb.AppendNull()).ok());
  }
  std::vector<std::shared_ptr<arrow::Array>> cols(5);
  EXPECT_TRUE((string_key ? skb.Finish(&cols[0]) : kb.Finish(&cols[0])).ok());
  EXPECT_TRUE(tb->Finish(&cols[1]).ok());
  EXPECT_TRUE(catb.Finish(&cols[2]).ok());
  EXPECT_TRUE(ab.Finish(&cols[3]).ok());
  EXPECT_TRUE(cb.Finish(&cols[4]).ok());
  auto key_type = string_key ? arrow::utf8() : arrow::int64();
  auto schema = arrow::schema({arrow::field("k", key_type), arrow::field("ts", time_type),
                               arrow::field("cat", arrow::utf8()),
                               arrow::field("amount", arrow::float64()),
                               arrow::field("churn", arrow::int64())});
  return arrow::RecordBatch::Make(schema, static_cast<int64_t>(events.size()), cols);
}

WindowOptions BaseOptions() {
  WindowOptions o;
  o.key = "k";
  o.time = "ts";
  o.category = "cat";
  o.label_time = "churn";
  o.values = {"amount"};
  o.aggs = {"sum", "mean", "max"};
  o.categories = {"a", "b"};
  o.window_s = 3 * D;
  o.stride_s = D;
  o.step_s = D;
  o.horizon_s = D;
  o.until_s = 6 * D;
  return o;
}

std::shared_ptr<WindowsOperator> MakeOp(const WindowOptions& o) {
  auto op = WindowsOperator::Make(o);
  EXPECT_TRUE(op.ok()) << op.status().ToString();
  return op.ValueOrDie();
}

// One output row, for comparisons.
struct Row {
  std::string key;
  int64_t start, end, label;
  std::vector<float> f;
};

// Output rows sorted by (key, start).
std::vector<Row> Rows(const arrow::Table& t) {
  auto b = t.CombineChunksToBatch().ValueOrDie();
  std::vector<Row> rows;
  auto key = b->column(0);
  auto starts = std::static_pointer_cast<arrow::TimestampArray>(b->column(1));
  auto ends = std::static_pointer_cast<arrow::TimestampArray>(b->column(2));
  auto labels = std::static_pointer_cast<arrow::Int64Array>(b->column(3));
  auto feats = std::static_pointer_cast<arrow::ListArray>(b->column(4));
  auto vals = std::static_pointer_cast<arrow::FloatArray>(feats->values());
  for (int64_t i = 0; i < b->num_rows(); ++i) {
    Row r;
    r.key = key->type_id() == arrow::Type::INT64
                ? std::to_string(static_cast<arrow::Int64Array&>(*key).Value(i))
                : std::string(static_cast<arrow::StringArray&>(*key).GetView(i));
    r.start = starts->Value(i);
    r.end = ends->Value(i);
    r.label = labels->Value(i);
    for (int64_t j = feats->value_offset(i); j < feats->value_offset(i + 1); ++j) {
      r.f.push_back(vals->Value(j));
    }
    rows.push_back(std::move(r));
  }
  std::sort(rows.begin(), rows.end(), [](const Row& x, const Row& y) {
    return std::tie(x.key, x.start) < std::tie(y.key, y.start);
  });
  return rows;
}

// Runs `op` over `batches` (one partition each) through Pipeline::GroupBy.
std::shared_ptr<arrow::Table> RunPipeline(
    std::shared_ptr<WindowsOperator> op,
    std::vector<std::shared_ptr<arrow::RecordBatch>> batches, int workers = 1,
    int64_t max_group_bytes = 0, RunStats* stats = nullptr) {
  std::vector<std::vector<std::shared_ptr<arrow::RecordBatch>>> parts;
  for (auto& b : batches) parts.push_back({b});
  auto schema = parts[0][0]->schema();
  auto source = std::make_shared<BatchesSource>(schema, std::move(parts));
  auto result = Pipeline::Read(source)
                    .GroupBy({op->options().key}, op->options().time)
                    .Apply(op)
                    .Collect({.workers = workers, .max_group_bytes = max_group_bytes},
                             stats);
  EXPECT_TRUE(result.ok()) << result.status().ToString();
  return result.ValueOrDie();
}

std::vector<Event> HandEvents() {
  return {
      {1, 0 * D + 100, "a", 10.0, std::nullopt},
      {1, 0 * D + 200, "b", 20.0, std::nullopt},
      {1, 1 * D, "a", 5.0, std::nullopt},
      {1, 3 * D + 50, "c", std::nullopt, std::nullopt},  // unknown category, null value
      {2, 1 * D + 3600, "b", 7.0, 4 * D + 10},
      {2, 1 * D + 7200, "b", -3.0, 4 * D + 10},
      {2, 2 * D + 1, "a", 4.0, 4 * D + 10},
  };
}

void ExpectHandRows(const std::vector<Row>& rows, const std::string& k1,
                    const std::string& k2) {
  using V = std::vector<float>;
  const V z(6, 0.0f);
  auto cat = [](V a, V b, V c) {
    a.insert(a.end(), b.begin(), b.end());
    a.insert(a.end(), c.begin(), c.end());
    return a;
  };
  ASSERT_EQ(rows.size(), 5u);
  // Key 1: O = 0, U = 6d, no churn: windows starting at 0, 1d, 2d, 3d.
  EXPECT_EQ(rows[0].key, k1);
  EXPECT_EQ(rows[0].start, 0);
  EXPECT_EQ(rows[0].end, 3 * D);
  EXPECT_EQ(rows[0].label, 0);
  EXPECT_EQ(rows[0].f, cat({2, 1, 1, 30, 15, 20}, {1, 1, 0, 5, 5, 5}, z));
  EXPECT_EQ(rows[1].start, D);
  EXPECT_EQ(rows[1].f, cat({1, 1, 0, 5, 5, 5}, z, {1, 0, 0, 0, 0, 0}));
  EXPECT_EQ(rows[2].start, 2 * D);
  EXPECT_EQ(rows[2].f, cat(z, {1, 0, 0, 0, 0, 0}, z));
  EXPECT_EQ(rows[3].start, 3 * D);
  EXPECT_EQ(rows[3].end, 6 * D);
  EXPECT_EQ(rows[3].f, cat({1, 0, 0, 0, 0, 0}, z, z));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(rows[i].label, 0);
  // Key 2: O = 1d, Z = churn = 4d + 10s: one window [1d, 4d); churn < 4d + H.
  EXPECT_EQ(rows[4].key, k2);
  EXPECT_EQ(rows[4].start, D);
  EXPECT_EQ(rows[4].end, 4 * D);
  EXPECT_EQ(rows[4].label, 1);
  EXPECT_EQ(rows[4].f, cat({2, 0, 2, 4, 2, 7}, {1, 1, 0, 4, 4, 4}, z));
}

TEST(WindowsTest, HandComputed) {
  auto op = MakeOp(BaseOptions());
  EXPECT_THAT(op->feature_names(),
              ElementsAre("count", "count_a", "count_b", "sum_amount", "mean_amount",
                          "max_amount"));
  auto table = RunPipeline(op, {MakeEvents(HandEvents())});
  ExpectHandRows(Rows(*table), "1", "2");

  // Schema and metadata.
  const auto& s = *table->schema();
  ASSERT_EQ(s.num_fields(), 5);
  EXPECT_EQ(s.field(0)->name(), "k");
  EXPECT_TRUE(s.field(0)->type()->Equals(arrow::int64()));
  auto ts_s = arrow::timestamp(arrow::TimeUnit::SECOND, "UTC");
  EXPECT_TRUE(s.field(1)->type()->Equals(ts_s));
  EXPECT_EQ(s.field(2)->name(), "window_end");
  EXPECT_TRUE(s.field(3)->type()->Equals(arrow::int64()));
  EXPECT_TRUE(s.field(4)->type()->Equals(arrow::list(arrow::float32())));
  auto meta = s.field(4)->metadata();
  ASSERT_NE(meta, nullptr);
  EXPECT_EQ(meta->Get("dlprep.shape").ValueOrDie(), "[3,6]");
  EXPECT_EQ(meta->Get("dlprep.names").ValueOrDie(),
            R"(["count","count_a","count_b","sum_amount","mean_amount","max_amount"])");
}

TEST(WindowsTest, StringKeysAndMillisecondTimestamps) {
  auto events = HandEvents();
  for (auto& e : events) {
    e.skey = e.key == 1 ? "alice" : "bob";
    *e.t = *e.t * 1000 + 999;  // sub-second part is floored away
  }
  auto o = BaseOptions();
  auto table = RunPipeline(
      MakeOp(o), {MakeEvents(events, true, arrow::timestamp(arrow::TimeUnit::MILLI))});
  EXPECT_TRUE(table->schema()->field(0)->type()->Equals(arrow::utf8()));
  ExpectHandRows(Rows(*table), "alice", "bob");
}

TEST(WindowsTest, DirectApplyMatchesPipeline) {
  auto op = MakeOp(BaseOptions());
  auto events = HandEvents();
  events.resize(4);  // key 1 only
  auto batch = MakeEvents(events);
  ASSERT_OK_AND_ASSIGN(auto t, arrow::Table::FromRecordBatches({batch}));
  ASSERT_OK_AND_ASSIGN(auto out, op->Apply(*t));
  auto rows = Rows(*out);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].f[0], 2.0f);
}

TEST(WindowsTest, PreGroupEncodesCategoriesAndTimesAndApplyAcceptsIt) {
  auto op = MakeOp(BaseOptions());
  auto pre = op->PreGroup();
  ASSERT_NE(pre, nullptr);
  // Millisecond timestamps, a null time and an extra column the shuffle does not need.
  auto events = HandEvents();
  events.push_back({1, std::nullopt, "a", 1.0, std::nullopt});
  auto raw = MakeEvents(events, /*string_key=*/false,
                        arrow::timestamp(arrow::TimeUnit::MILLI, "UTC"));
  ASSERT_OK_AND_ASSIGN(raw, raw->AddColumn(raw->num_columns(), "extra",
                                           raw->column(3)));
  ASSERT_OK_AND_ASSIGN(auto schema, pre->OutputSchema(*raw->schema()));
  EXPECT_EQ(schema->ToString(),
            "k: int64\nts: int64\n__dlprep_windows_category: int16 not null\n"
            "churn: int64\namount: double");
  ASSERT_OK_AND_ASSIGN(auto prepared, pre->Process(raw));
  EXPECT_EQ(prepared->num_rows(), 7);  // the null time is dropped and counted
  EXPECT_EQ(op->dropped_rows(), 1);
  auto codes = std::static_pointer_cast<arrow::Int16Array>(prepared->column(2));
  std::vector<int16_t> got(codes->raw_values(), codes->raw_values() + codes->length());
  EXPECT_EQ(got, (std::vector<int16_t>{0, 1, 0, -1, 1, 1, 0}));  // "c" is not listed
  auto secs = std::static_pointer_cast<arrow::Int64Array>(prepared->column(1));
  EXPECT_EQ(secs->Value(2), 86);  // 86400 ms, floored to seconds
  // Apply() on prepared rows equals Apply() on the raw rows.
  ASSERT_OK_AND_ASSIGN(auto t_pre, arrow::Table::FromRecordBatches({prepared->Slice(0, 4)}));
  ASSERT_OK_AND_ASSIGN(auto t_raw, arrow::Table::FromRecordBatches({raw->Slice(0, 4)}));
  ASSERT_OK_AND_ASSIGN(auto from_pre, op->Apply(*t_pre));
  ASSERT_OK_AND_ASSIGN(auto from_raw, op->Apply(*t_raw));
  auto a = Rows(*from_pre), b = Rows(*from_raw);
  ASSERT_EQ(a.size(), 4u);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].start, b[i].start);
    EXPECT_EQ(a[i].f, b[i].f);
  }
}

TEST(WindowsTest, PreGroupOnItsOwnOutputKeepsTheCodes) {
  // Rows prepared on one side of a shuffle (Spark) may pass through the engine's
  // executor, which runs PreGroup() again: the second pass changes nothing.
  auto op = MakeOp(BaseOptions());
  auto pre = op->PreGroup();
  auto raw = MakeEvents(HandEvents(), /*string_key=*/false,
                        arrow::timestamp(arrow::TimeUnit::MILLI, "UTC"));
  ASSERT_OK_AND_ASSIGN(auto once, pre->Process(raw));
  ASSERT_OK_AND_ASSIGN(auto schema, pre->OutputSchema(*once->schema()));
  EXPECT_TRUE(schema->Equals(*once->schema()));
  ASSERT_OK_AND_ASSIGN(auto twice, pre->Process(once));
  EXPECT_TRUE(twice->Equals(*once)) << twice->ToString() << "\n" << once->ToString();
}

TEST(WindowsTest, EventsOnWindowAndStepBoundaries) {
  auto o = BaseOptions();
  o.category.clear();
  o.categories.clear();
  o.values.clear();
  o.aggs.clear();
  o.window_s = 2 * D;
  o.stride_s = 2 * D;
  o.until_s = 4 * D;
  // Start of window 0, start of its step 1, and exactly its end (= start of window 1).
  auto table = RunPipeline(MakeOp(o), {MakeEvents({{1, 0, "", {}, {}},
                                                   {1, D, "", {}, {}},
                                                   {1, 2 * D, "", {}, {}}})});
  auto rows = Rows(*table);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_THAT(rows[0].f, ElementsAre(1, 1));
  EXPECT_THAT(rows[1].f, ElementsAre(1, 0));
  EXPECT_EQ(rows[1].start, 2 * D);
  EXPECT_EQ(rows[1].end, 4 * D);
}

TEST(WindowsTest, NegativeTimesFloorTowardMinusInfinity) {
  auto o = BaseOptions();
  o.category.clear();
  o.categories.clear();
  o.values.clear();
  o.aggs.clear();
  o.window_s = D;
  o.until_s = D;
  auto table = RunPipeline(MakeOp(o), {MakeEvents({{1, -1, "", {}, {}}})});
  auto rows = Rows(*table);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].start, -D);
  EXPECT_THAT(rows[0].f, ElementsAre(1));
  EXPECT_EQ(rows[1].start, 0);
  EXPECT_THAT(rows[1].f, ElementsAre(0));
}

TEST(WindowsTest, ChurnExactlyAtWindowEnd) {
  auto o = BaseOptions();
  o.window_s = 2 * D;
  o.until_s = 10 * D;
  o.horizon_s = 0;
  auto events = MakeEvents({{1, 0, "a", 1.0, 3 * D}});
  auto rows = Rows(*RunPipeline(MakeOp(o), {events}));
  // Z = 3d: windows ending at 2d and 3d are emitted; churn < end + 0 never holds.
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].end, 3 * D);
  EXPECT_EQ(rows[0].label, 0);
  EXPECT_EQ(rows[1].label, 0);
  o.horizon_s = 1;
  rows = Rows(*RunPipeline(MakeOp(o), {events}));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].label, 0);  // 3d < 2d + 1s is false
  EXPECT_EQ(rows[1].label, 1);  // 3d < 3d + 1s
}

TEST(WindowsTest, OneEvent) {
  auto o = BaseOptions();
  o.window_s = D;
  o.until_s = 3 * D;
  auto rows = Rows(*RunPipeline(MakeOp(o), {MakeEvents({{7, D + 5, "b", 2.5, {}}})}));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].start, D);
  EXPECT_THAT(rows[0].f, ElementsAre(1, 0, 1, 2.5, 2.5, 2.5));
  EXPECT_THAT(rows[1].f, ElementsAre(0, 0, 0, 0, 0, 0));
}

TEST(WindowsTest, UntilBeforeFirstWindowEndGivesNoRows) {
  auto o = BaseOptions();
  o.until_s = 2 * D;
  auto table = RunPipeline(MakeOp(o), {MakeEvents({{7, 0, "b", 2.5, {}}})});
  EXPECT_EQ(table->num_rows(), 0);
}

TEST(WindowsTest, GapsLongerThanAWindow) {
  auto o = BaseOptions();
  o.category.clear();
  o.categories.clear();
  o.values.clear();
  o.aggs.clear();
  o.window_s = 2 * D;
  o.until_s = 7 * D;
  auto rows = Rows(*RunPipeline(MakeOp(o), {MakeEvents({{1, 0, "", {}, {}},
                                                        {1, 5 * D, "", {}, {}}})}));
  ASSERT_EQ(rows.size(), 6u);
  EXPECT_THAT(rows[0].f, ElementsAre(1, 0));
  for (int k = 1; k <= 3; ++k) EXPECT_THAT(rows[k].f, ElementsAre(0, 0)) << k;
  EXPECT_THAT(rows[4].f, ElementsAre(0, 1));
  EXPECT_THAT(rows[5].f, ElementsAre(1, 0));
  EXPECT_EQ(rows[5].end, 7 * D);
}

TEST(WindowsTest, DuplicateTimestamps) {
  auto o = BaseOptions();
  o.window_s = D;
  o.until_s = D;
  o.aggs = {"sum", "mean", "min", "max"};
  auto rows = Rows(*RunPipeline(
      MakeOp(o), {MakeEvents({{1, 10, "a", 1.0, {}}, {1, 10, "a", 3.0, {}},
                              {1, 10, "b", 2.0, {}}, {1, 10, "a", {}, {}}})}));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_THAT(rows[0].f, ElementsAre(4, 3, 1, 6, 2, 1, 3));
}

TEST(WindowsTest, NullTimesDroppedAndCounted) {
  auto o = BaseOptions();
  o.window_s = D;
  o.until_s = D;
  auto op = MakeOp(o);
  auto rows = Rows(*RunPipeline(
      op, {MakeEvents({{1, std::nullopt, "a", 100.0, {}}, {1, 10, "a", 1.0, {}},
                       {2, std::nullopt, "a", 1.0, {}}})}));
  ASSERT_EQ(rows.size(), 1u);  // key 2 has no timed event: no window
  EXPECT_EQ(rows[0].key, "1");
  EXPECT_THAT(rows[0].f, ElementsAre(1, 1, 0, 1, 1, 1));
  EXPECT_EQ(op->dropped_rows(), 2);
}

TEST(WindowsTest, NullKeyGroupDroppedAndCounted) {
  auto o = BaseOptions();
  o.window_s = D;
  o.until_s = D;
  auto op = MakeOp(o);
  auto batch = MakeEvents({{1, 10, "a", 1.0, {}}, {2, 20, "a", 1.0, {}},
                           {3, 30, "b", 1.0, {}}});
  // Key column with a null in rows 1 and 2.
  arrow::Int64Builder kb;
  ASSERT_OK(kb.Append(1));
  ASSERT_OK(kb.AppendNull());
  ASSERT_OK(kb.AppendNull());
  std::shared_ptr<arrow::Array> keys;
  ASSERT_OK(kb.Finish(&keys));
  ASSERT_OK_AND_ASSIGN(batch, batch->SetColumn(0, batch->schema()->field(0), keys));
  auto rows = Rows(*RunPipeline(op, {batch}));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].key, "1");
  EXPECT_EQ(op->dropped_rows(), 2);
}

TEST(WindowsTest, WithoutLabelColumnNothingChurns) {
  auto o = BaseOptions();
  o.label_time.clear();
  auto rows = Rows(*RunPipeline(MakeOp(o), {MakeEvents(HandEvents())}));
  ASSERT_EQ(rows.size(), 7u);  // key 2: Z = U = 6d, windows start at 1d, 2d, 3d
  for (const auto& r : rows) EXPECT_EQ(r.label, 0);
}

TEST(WindowsTest, UnsortedInputSameWithOneAndTwoWorkers) {
  std::vector<Event> events;
  uint64_t x = 12345;
  for (int i = 0; i < 3000; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    Event e;
    e.key = static_cast<int64_t>((x >> 33) % 37);
    e.t = static_cast<int64_t>((x >> 20) % (30 * D)) - 5 * D;
    e.cat = std::string(1, static_cast<char>('a' + (x >> 10) % 3));
    if ((x >> 5) % 7 != 0) e.amount = static_cast<double>((x >> 40) % 1000) / 10.0;
    if (e.key % 4 == 0) e.churn = 10 * D + e.key * 1000;
    events.push_back(e);
  }
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  for (int p = 0; p < 3; ++p) {
    batches.push_back(MakeEvents(
        std::vector<Event>(events.begin() + p * 1000, events.begin() + (p + 1) * 1000)));
  }
  auto o = BaseOptions();
  o.window_s = 4 * D;
  o.stride_s = 2 * D;
  o.until_s = 25 * D;
  o.aggs = {"sum", "mean", "min", "max"};
  auto one = RunPipeline(MakeOp(o), batches, 1);
  auto two = RunPipeline(MakeOp(o), batches, 2);
  EXPECT_GT(one->num_rows(), 100);
  EXPECT_TRUE(one->Equals(*two));

  // Cross-check one key against Apply() on its events in input (unsorted) order.
  std::vector<Event> key5;
  for (const auto& e : events) {
    if (e.key == 5) key5.push_back(e);
  }
  ASSERT_OK_AND_ASSIGN(auto t5, arrow::Table::FromRecordBatches({MakeEvents(key5)}));
  ASSERT_OK_AND_ASSIGN(auto direct, MakeOp(o)->Apply(*t5));
  std::vector<Row> from_pipeline;
  for (auto& r : Rows(*one)) {
    if (r.key == "5") from_pipeline.push_back(r);
  }
  auto d = Rows(*direct);
  ASSERT_EQ(d.size(), from_pipeline.size());
  for (size_t i = 0; i < d.size(); ++i) {
    EXPECT_EQ(d[i].start, from_pipeline[i].start);
    EXPECT_EQ(d[i].f, from_pipeline[i].f);
  }
}

TEST(WindowsTest, HugeKeyIsStreamedWithTheSameOutput) {
  // Key 1 has 20,000 events over 300 days (far over a 64 KiB group limit), keys 2..5 a
  // few; null times, unknown categories, null values and churn included.
  std::vector<Event> events;
  uint64_t x = 99;
  for (int i = 0; i < 24000; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    Event e;
    e.key = i < 20000 ? 1 : 2 + (x >> 50) % 4;
    if ((x >> 7) % 97 != 0) e.t = static_cast<int64_t>((x >> 20) % (300 * D));
    e.cat = std::string(1, static_cast<char>('a' + (x >> 10) % 3));
    if ((x >> 5) % 7 != 0) e.amount = static_cast<double>((x >> 40) % 1000) / 10.0;
    if (e.key == 1 || e.key == 3) e.churn = 250 * D + 77;
    events.push_back(e);
  }
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  for (int p = 0; p < 4; ++p) {
    batches.push_back(MakeEvents(
        std::vector<Event>(events.begin() + p * 6000, events.begin() + (p + 1) * 6000)));
  }
  auto o = BaseOptions();
  o.window_s = 14 * D;
  o.stride_s = 7 * D;
  o.until_s = 301 * D;
  o.aggs = {"sum", "mean", "min", "max"};
  auto whole_op = MakeOp(o);
  auto whole = RunPipeline(whole_op, batches, 2);
  auto streamed_op = MakeOp(o);
  RunStats stats;
  auto streamed = RunPipeline(streamed_op, batches, 2, 64 << 10, &stats);
  EXPECT_GT(whole->num_rows(), 30);
  EXPECT_TRUE(whole->Equals(*streamed));
  EXPECT_EQ(whole_op->dropped_rows(), streamed_op->dropped_rows());
  int64_t streamed_groups = 0;
  for (const auto& st : stats.stages) streamed_groups += st.streamed_groups;
  EXPECT_EQ(streamed_groups, 1);
}

TEST(WindowsTest, ApplyStreamDirectlyEqualsApplyAndDropsNullKeys) {
  auto op = MakeOp(BaseOptions());
  auto batch = MakeEvents(HandEvents());
  // Key 1's events (sorted by time), in batches of one row.
  ASSERT_OK_AND_ASSIGN(auto t, arrow::Table::FromRecordBatches({batch->Slice(0, 4)}));
  ASSERT_OK_AND_ASSIGN(auto whole, op->Apply(*t));
  std::vector<std::shared_ptr<arrow::RecordBatch>> rows;
  for (int64_t i = 0; i < 4; ++i) rows.push_back(batch->Slice(i, 1));
  ASSERT_OK_AND_ASSIGN(auto reader, arrow::RecordBatchReader::Make(rows, batch->schema()));
  std::vector<std::shared_ptr<arrow::RecordBatch>> out;
  ASSERT_OK(op->ApplyStream(reader.get(), [&](std::shared_ptr<arrow::RecordBatch> b) {
    out.push_back(std::move(b));
    return arrow::Status::OK();
  }));
  ASSERT_OK_AND_ASSIGN(auto streamed, arrow::Table::FromRecordBatches(out));
  EXPECT_TRUE(streamed->Equals(*whole));
  // A null key's rows are dropped and counted.
  arrow::Int64Builder kb;
  ASSERT_OK(kb.AppendNulls(2));
  std::shared_ptr<arrow::Array> nulls;
  ASSERT_OK(kb.Finish(&nulls));
  ASSERT_OK_AND_ASSIGN(auto null_keys,
                       batch->Slice(0, 2)->SetColumn(0, batch->schema()->field(0), nulls));
  ASSERT_OK_AND_ASSIGN(reader, arrow::RecordBatchReader::Make({null_keys}, batch->schema()));
  out.clear();
  const int64_t dropped = op->dropped_rows();
  ASSERT_OK(op->ApplyStream(reader.get(), [&](std::shared_ptr<arrow::RecordBatch> b) {
    out.push_back(std::move(b));
    return arrow::Status::OK();
  }));
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(op->dropped_rows(), dropped + 2);
  // Out of order input is refused rather than giving wrong windows.
  std::vector<std::shared_ptr<arrow::RecordBatch>> backwards = {batch->Slice(2, 1),
                                                                batch->Slice(0, 1)};
  ASSERT_OK_AND_ASSIGN(reader, arrow::RecordBatchReader::Make(backwards, batch->schema()));
  auto st = op->ApplyStream(reader.get(), [](auto) { return arrow::Status::OK(); });
  EXPECT_THAT(st.message(), HasSubstr("must arrive sorted by 'ts'"));
}

void ExpectMakeError(WindowOptions o, const std::string& needle) {
  auto r = WindowsOperator::Make(std::move(o));
  ASSERT_FALSE(r.ok()) << needle;
  EXPECT_THAT(r.status().message(), HasSubstr(needle));
}

TEST(WindowsTest, OptionValidation) {
  auto o = BaseOptions();
  o.window_s = D + 1;
  ExpectMakeError(o, "--window");
  o = BaseOptions();
  o.stride_s = D / 2;
  ExpectMakeError(o, "--stride");
  o = BaseOptions();
  o.step_s = 0;
  ExpectMakeError(o, "--step");
  o = BaseOptions();
  o.horizon_s = -1;
  ExpectMakeError(o, "--horizon");
  o = BaseOptions();
  o.aggs = {"sum", "median"};
  ExpectMakeError(o, "median");
  o = BaseOptions();
  o.until_s = std::numeric_limits<int64_t>::min();
  ExpectMakeError(o, "--until");
  o = BaseOptions();
  o.categories.clear();
  ExpectMakeError(o, "--categories");
  o = BaseOptions();
  o.categories = {"a", "a"};
  ExpectMakeError(o, "--categories");
  o = BaseOptions();
  o.key.clear();
  ExpectMakeError(o, "--key");
}

void ExpectSchemaError(const WindowOptions& o, std::shared_ptr<arrow::Schema> schema,
                       const std::string& needle) {
  auto op = MakeOp(o);
  auto r = op->OutputSchema(*schema);
  ASSERT_FALSE(r.ok()) << needle;
  EXPECT_TRUE(r.status().IsTypeError());
  EXPECT_THAT(r.status().message(), HasSubstr(needle));
}

TEST(WindowsTest, ColumnValidation) {
  auto good = MakeEvents({})->schema();
  auto with = [&](const std::string& name, std::shared_ptr<arrow::DataType> type) {
    int i = good->GetFieldIndex(name);
    return good->SetField(i, arrow::field(name, type)).ValueOrDie();
  };
  auto o = BaseOptions();
  ASSERT_TRUE(MakeOp(o)->OutputSchema(*good).ok());
  ExpectSchemaError(o, with("k", arrow::float64()), "--key column 'k'");
  ExpectSchemaError(o, with("ts", arrow::utf8()), "--time column 'ts'");
  ExpectSchemaError(o, with("cat", arrow::int64()), "--category column 'cat'");
  ExpectSchemaError(o, with("amount", arrow::utf8()), "--values column 'amount'");
  ExpectSchemaError(o, with("churn", arrow::float64()), "--label-time column 'churn'");
  o.values = {"amount", "missing"};
  ExpectSchemaError(o, good, "--values column 'missing'");
  // Timestamps of any unit are accepted for time and label time.
  o = BaseOptions();
  auto ts = with("ts", arrow::timestamp(arrow::TimeUnit::NANO, "UTC"));
  ts = ts->SetField(4, arrow::field("churn", arrow::timestamp(arrow::TimeUnit::MICRO)))
           .ValueOrDie();
  EXPECT_TRUE(MakeOp(o)->OutputSchema(*ts).ok());
}

}  // namespace
}  // namespace dlprep::features
