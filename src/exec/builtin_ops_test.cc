#include "exec/builtin_ops.h"

#include <unistd.h>

#include <filesystem>
#include <map>

#include <arrow/api.h>
#include <arrow/io/file.h>
#include <arrow/json/from_string.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <parquet/arrow/writer.h>

#include "exec/exec_test_util.h"

namespace dlprep::exec {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Col {
  std::string name;
  std::shared_ptr<arrow::DataType> type;
  std::string json;
};

std::shared_ptr<arrow::RecordBatch> Batch(const std::vector<Col>& cols) {
  arrow::FieldVector fields;
  arrow::ArrayVector arrays;
  for (const auto& c : cols) {
    fields.push_back(arrow::field(c.name, c.type));
    auto a = arrow::json::ArrayFromJSONString(c.type, c.json);
    EXPECT_TRUE(a.ok()) << a.status().ToString();
    arrays.push_back(*a);
  }
  return arrow::RecordBatch::Make(arrow::schema(fields), arrays[0]->length(), arrays);
}

// "[1, 2]"-style rendering of a column, for compact value assertions.
std::vector<std::string> Values(const std::shared_ptr<arrow::Array>& a) {
  std::vector<std::string> out;
  for (int64_t i = 0; i < a->length(); ++i) {
    out.push_back(a->IsNull(i) ? "null" : a->GetScalar(i).ValueOrDie()->ToString());
  }
  return out;
}

std::vector<std::string> Names(const arrow::Schema& s) { return s.field_names(); }

// A Source over in-memory batches of one schema, one partition per batch.
class BatchesSource : public Source {
 public:
  BatchesSource(std::shared_ptr<arrow::Schema> schema,
                std::vector<std::shared_ptr<arrow::RecordBatch>> batches)
      : schema_(std::move(schema)), batches_(std::move(batches)) {}
  std::shared_ptr<arrow::Schema> schema() const override { return schema_; }
  int64_t num_partitions() const override { return static_cast<int64_t>(batches_.size()); }
  std::string partition_name(int64_t i) const override { return "mem-" + std::to_string(i); }
  arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> OpenPartition(
      int64_t i) const override {
    return arrow::RecordBatchReader::Make({batches_[i]}, schema_);
  }

 private:
  std::shared_ptr<arrow::Schema> schema_;
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches_;
};

std::shared_ptr<Source> SourceOf(std::vector<std::shared_ptr<arrow::RecordBatch>> batches) {
  auto schema = batches.front()->schema();
  return std::make_shared<BatchesSource>(schema, std::move(batches));
}

std::string MakeTestDir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  fs::path dir = fs::path(DLPREP_TEST_TMPDIR) /
                 ("builtin-ops-" + std::string(info->name()) + "-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

std::shared_ptr<arrow::RecordBatch> People() {
  return Batch({{"id", arrow::int64(), "[1, 2, 3, 4]"},
                {"name", arrow::utf8(), R"(["ann", "bob", null, "dan"])"},
                {"score", arrow::int64(), "[10, 20, 30, null]"}});
}

// ------------------------------------------------------------------------- select

TEST(SelectTest, KeepsColumnsInOrder) {
  ASSERT_OK_AND_ASSIGN(auto op, MakeSelect({{"score", "id"}}));
  auto in = People();
  ASSERT_OK_AND_ASSIGN(auto schema, op->OutputSchema(*in->schema()));
  EXPECT_THAT(Names(*schema), ElementsAre("score", "id"));
  ASSERT_OK_AND_ASSIGN(auto out, op->Process(in));
  EXPECT_THAT(Names(*out->schema()), ElementsAre("score", "id"));
  EXPECT_THAT(Values(out->column(0)), ElementsAre("10", "20", "30", "null"));
  EXPECT_THAT(Values(out->column(1)), ElementsAre("1", "2", "3", "4"));
}

TEST(SelectTest, Errors) {
  EXPECT_THAT(MakeSelect({}).status().message(), HasSubstr("select: option 'columns' is empty"));
  EXPECT_THAT(MakeSelect({{"a", "a"}}).status().message(), HasSubstr("names column 'a' twice"));
  ASSERT_OK_AND_ASSIGN(auto op, MakeSelect({{"id", "nope"}}));
  auto st = op->OutputSchema(*People()->schema()).status();
  EXPECT_TRUE(st.IsTypeError());
  EXPECT_THAT(st.message(), HasSubstr("select: option 'columns': no column 'nope' in the "
                                      "input; available: id, name, score"));
}

// ------------------------------------------------------------------------- rename

TEST(RenameTest, RenamesKeepingDataAndMetadata) {
  auto in = People();
  auto md = arrow::key_value_metadata({"dlprep.shape"}, {"[]"});
  ASSERT_OK_AND_ASSIGN(auto with_md, in->schema()->SetField(0, in->schema()->field(0)->WithMetadata(md)));
  in = arrow::RecordBatch::Make(with_md, in->num_rows(), in->columns());
  ASSERT_OK_AND_ASSIGN(auto op, MakeRename({{{"id", "user"}, {"score", "points"}}}));
  ASSERT_OK_AND_ASSIGN(auto out, op->Process(in));
  EXPECT_THAT(Names(*out->schema()), ElementsAre("user", "name", "points"));
  EXPECT_TRUE(out->schema()->field(0)->metadata()->Equals(*md));
  EXPECT_THAT(Values(out->column(2)), ElementsAre("10", "20", "30", "null"));
}

TEST(RenameTest, SwapIsAllowedCollisionIsNot) {
  auto in = People();
  ASSERT_OK_AND_ASSIGN(auto swap, MakeRename({{{"id", "score"}, {"score", "id"}}}));
  ASSERT_OK_AND_ASSIGN(auto schema, swap->OutputSchema(*in->schema()));
  EXPECT_THAT(Names(*schema), ElementsAre("score", "name", "id"));
  ASSERT_OK_AND_ASSIGN(auto clash, MakeRename({{{"id", "name"}}}));
  auto st = clash->OutputSchema(*in->schema()).status();
  EXPECT_THAT(st.message(), HasSubstr("rename: option 'columns': the output would have two "
                                      "columns named 'name'"));
  ASSERT_OK_AND_ASSIGN(auto missing, MakeRename({{{"idd", "x"}}}));
  EXPECT_THAT(missing->OutputSchema(*in->schema()).status().message(),
              HasSubstr("no column 'idd' in the input; available: id, name, score"));
  EXPECT_THAT(MakeRename({{{"a", ""}}}).status().message(), HasSubstr("empty new name"));
  EXPECT_THAT(MakeRename({}).status().message(), HasSubstr("rename: option 'columns' is empty"));
}

// --------------------------------------------------------------------------- cast

TEST(CastTest, CastsValuesKeepingNulls) {
  ASSERT_OK_AND_ASSIGN(auto op, MakeCast({{{"score", "float32"}, {"id", "string"}}}));
  ASSERT_OK_AND_ASSIGN(auto out, op->Process(People()));
  EXPECT_TRUE(out->schema()->field(2)->type()->Equals(arrow::float32()));
  EXPECT_TRUE(out->schema()->field(0)->type()->Equals(arrow::utf8()));
  EXPECT_THAT(Values(out->column(2)), ElementsAre("10", "20", "30", "null"));
  EXPECT_THAT(Values(out->column(0)), ElementsAre("1", "2", "3", "4"));
  auto ts = Batch({{"t", arrow::int64(), "[0, 86400]"}});
  ASSERT_OK_AND_ASSIGN(auto op2, MakeCast({{{"t", "timestamp[s]"}}}));
  ASSERT_OK_AND_ASSIGN(auto out2, op2->Process(ts));
  EXPECT_TRUE(out2->schema()->field(0)->type()->Equals(arrow::timestamp(arrow::TimeUnit::SECOND)));
  EXPECT_EQ(out2->column(0)->GetScalar(1).ValueOrDie()->ToString(), "1970-01-02 00:00:00");
}

TEST(CastTest, TypeNames) {
  ASSERT_OK_AND_ASSIGN(auto t, ParseTypeName("timestamp[us, UTC]"));
  EXPECT_TRUE(t->Equals(arrow::timestamp(arrow::TimeUnit::MICRO, "UTC")));
  ASSERT_OK_AND_ASSIGN(t, ParseTypeName("double"));
  EXPECT_TRUE(t->Equals(arrow::float64()));
  EXPECT_THAT(ParseTypeName("timestamp[h]").status().message(), HasSubstr("unit 'h'"));
  auto st = MakeCast({{{"x", "int33"}}}).status();
  EXPECT_THAT(st.message(), HasSubstr("cast: option 'columns', column 'x': 'int33' is not a "
                                      "type name; expected one of bool"));
}

TEST(CastTest, FailedValueNamesColumnAndRow) {
  auto in = Batch({{"n", arrow::utf8(), R"(["1", "2", "x3", null])"}});
  ASSERT_OK_AND_ASSIGN(auto op, MakeCast({{{"n", "int32"}}}));
  auto st = op->Process(in).status();
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.message(), HasSubstr("cast: column 'n' row 2 (value x3) cannot be cast to int32"));
  auto overflow = Batch({{"n", arrow::int64(), "[1, 300]"}});
  ASSERT_OK_AND_ASSIGN(auto op8, MakeCast({{{"n", "int8"}}}));
  EXPECT_THAT(op8->Process(overflow).status().message(), HasSubstr("column 'n' row 1"));
}

TEST(CastTest, PlanningErrors) {
  ASSERT_OK_AND_ASSIGN(auto op, MakeCast({{{"missing", "int32"}}}));
  EXPECT_THAT(op->OutputSchema(*People()->schema()).status().message(),
              HasSubstr("cast: option 'columns': no column 'missing' in the input; "
                        "available: id, name, score"));
  auto lists = Batch({{"l", arrow::list(arrow::int64()), "[[1]]"}});
  ASSERT_OK_AND_ASSIGN(auto op2, MakeCast({{{"l", "date32"}}}));
  EXPECT_THAT(op2->OutputSchema(*lists->schema()).status().message(),
              HasSubstr("column 'l' of type list<item: int64> cannot be cast to date32"));
}

// ------------------------------------------------------------------------- filter

TEST(FilterTest, KeepsMatchingRowsDropsNulls) {
  ASSERT_OK_AND_ASSIGN(auto op, MakeFilter({"score >= 20 or name == 'ann'"}));
  ASSERT_OK_AND_ASSIGN(auto out, op->Process(People()));
  EXPECT_THAT(Values(out->column(0)), ElementsAre("1", "2", "3"));
  ASSERT_OK_AND_ASSIGN(auto none, MakeFilter({"false"}));
  ASSERT_OK_AND_ASSIGN(out, none->Process(People()));
  EXPECT_EQ(out->num_rows(), 0);
  EXPECT_EQ(out->num_columns(), 3);
  ASSERT_OK_AND_ASSIGN(auto nulls, MakeFilter({"is_null(score) or is_null(name)"}));
  ASSERT_OK_AND_ASSIGN(out, nulls->Process(People()));
  EXPECT_THAT(Values(out->column(0)), ElementsAre("3", "4"));
  // A filter that keeps every row hands the batch on without copying it.
  ASSERT_OK_AND_ASSIGN(auto all, MakeFilter({"is_valid(id)"}));
  auto in = People();
  ASSERT_OK_AND_ASSIGN(out, all->Process(in));
  EXPECT_EQ(out.get(), in.get());
}

TEST(FilterTest, Errors) {
  auto st = MakeFilter({"score >"}).status();
  EXPECT_TRUE(st.IsInvalid());
  EXPECT_THAT(st.message(), HasSubstr("filter: option 'expr': filter expression 'score >': "
                                      "expected a column or literal (the expression ends "
                                      "early) at position 7"));
  ASSERT_OK_AND_ASSIGN(auto op, MakeFilter({"scor > 3"}));
  EXPECT_THAT(op->OutputSchema(*People()->schema()).status().message(),
              HasSubstr("names column 'scor', which the input does not have (or has twice); "
                        "available: id, name, score"));
  ASSERT_OK_AND_ASSIGN(auto not_bool, MakeFilter({"score"}));
  EXPECT_THAT(not_bool->OutputSchema(*People()->schema()).status().message(),
              HasSubstr("is of type int64; expected a condition (boolean)"));
  ASSERT_OK_AND_ASSIGN(auto bad_types, MakeFilter({"name > 3"}));
  EXPECT_THAT(bad_types->OutputSchema(*People()->schema()).status().message(),
              HasSubstr("filter: option 'expr': 'name > 3' does not fit the input"));
}

// ------------------------------------------------------------------ regex_extract

std::shared_ptr<arrow::RecordBatch> Paths() {
  return Batch({{"path", arrow::utf8(),
                 R"(["data/cat/1.jpg", "data/dog/2.jpg", "nodir", null, "x/bird/3.png"])"}});
}

TEST(RegexExtractTest, NullOnMismatchIsScalar) {
  ASSERT_OK_AND_ASSIGN(auto step, MakeRegexExtract({"path", "([^/]+)/[^/]+$", "label"}));
  ASSERT_EQ(step.kind, PipelineStep::Kind::kScalar);
  auto in = Paths();
  ASSERT_OK_AND_ASSIGN(auto field, step.scalar->OutputField(*in->schema()));
  EXPECT_EQ(field->ToString(), "label: string");
  ASSERT_OK_AND_ASSIGN(auto out, step.scalar->Compute(*in));
  EXPECT_THAT(Values(out), ElementsAre("cat", "dog", "null", "null", "bird"));
}

TEST(RegexExtractTest, NamedGroupAndNonCapturingGroups) {
  ASSERT_OK_AND_ASSIGN(auto step,
                       MakeRegexExtract({"path", R"((?:data|x)/(?P<lab>\w+)/)", "label"}));
  ASSERT_OK_AND_ASSIGN(auto out, step.scalar->Compute(*Paths()));
  EXPECT_THAT(Values(out), ElementsAre("cat", "dog", "null", "null", "bird"));
  // Parentheses inside a character class or escaped are not groups.
  ASSERT_OK_AND_ASSIGN(step, MakeRegexExtract({"path", R"(([()/]?\(?d\w+))", "label"}));
  ASSERT_OK_AND_ASSIGN(out, step.scalar->Compute(*Paths()));
  EXPECT_THAT(Values(out), ElementsAre("data", "data", "dir", "null", "null"));
}

TEST(RegexExtractTest, ErrorOnMismatchReportsRowsAndDropsThem) {
  RegexExtractOptions o{"path", "([^/]+)/[^/]+$", "label", OnMismatch::kError};
  ASSERT_OK_AND_ASSIGN(auto step, MakeRegexExtract(o));
  ASSERT_EQ(step.kind, PipelineStep::Kind::kStateful);
  ASSERT_OK_AND_ASSIGN(auto op, step.stateful());
  ASSERT_OK(op->Open({}));
  RowErrors errors;
  ASSERT_OK_AND_ASSIGN(auto out, op->Process(Paths(), &errors));
  EXPECT_THAT(errors.rows, ElementsAre(2));
  EXPECT_THAT(errors.messages[0],
              HasSubstr("regex_extract: column 'path' value nodir does not match pattern"));
  EXPECT_THAT(Values(out->GetColumnByName("path")),
              ElementsAre("data/cat/1.jpg", "data/dog/2.jpg", "null", "x/bird/3.png"));
  EXPECT_THAT(Values(out->GetColumnByName("label")), ElementsAre("cat", "dog", "null", "bird"));
  ASSERT_OK(op->Close());
}

TEST(RegexExtractTest, RowErrorsReachTheExecutor) {
  RegexExtractOptions o{"path", "([^/]+)/[^/]+$", "label", OnMismatch::kError};
  ASSERT_OK_AND_ASSIGN(auto step, MakeRegexExtract(o));
  auto p = Pipeline::Read(SourceOf({Paths(), Paths()}));
  AddStep(p, step);
  RunStats stats;
  ASSERT_OK_AND_ASSIGN(auto table, p.Collect({.workers = 2}, &stats));
  EXPECT_EQ(table->num_rows(), 8);
  EXPECT_EQ(stats.row_errors, 2);
  // Both batches fail their row "nodir" with the same message: one sample, counted.
  ASSERT_EQ(stats.row_error_samples.size(), 1u);
  EXPECT_THAT(stats.row_error_samples[0], HasSubstr("value nodir does not match"));
  EXPECT_THAT(stats.row_error_samples[0],
              HasSubstr("(... and 1 more row with the same error)"));
}

TEST(RegexExtractTest, Errors) {
  EXPECT_THAT(MakeRegexExtract({"path", "[a-z]+", "label"}).status().message(),
              HasSubstr("'[a-z]+' has 0 capture groups; expected exactly one"));
  EXPECT_THAT(MakeRegexExtract({"path", "(a)(b)", "label"}).status().message(),
              HasSubstr("'(a)(b)' has 2 capture groups"));
  EXPECT_THAT(MakeRegexExtract({"path", "(a[)", "label"}).status().message(),
              HasSubstr("regex_extract: option 'pattern': '(a[)' is not a valid RE2 pattern"));
  EXPECT_THAT(MakeRegexExtract({"", "(a)", "label"}).status().message(),
              HasSubstr("regex_extract: option 'column' is empty"));
  ASSERT_OK_AND_ASSIGN(auto step, MakeRegexExtract({"id", "(a)", "label"}));
  EXPECT_THAT(step.scalar->OutputField(*People()->schema()).status().message(),
              HasSubstr("regex_extract: option 'column': column 'id' is int64; expected string"));
  ASSERT_OK_AND_ASSIGN(step, MakeRegexExtract({"name", "(a)", "id"}));
  EXPECT_THAT(step.scalar->OutputField(*People()->schema()).status().message(),
              HasSubstr("option 'output': the input already has a column 'id'"));
  ASSERT_OK_AND_ASSIGN(step, MakeRegexExtract({"nam", "(a)", "x"}));
  EXPECT_THAT(step.scalar->OutputField(*People()->schema()).status().message(),
              HasSubstr("no column 'nam' in the input; available: id, name, score"));
}

// -------------------------------------------------------------------------- split

TEST(SplitTest, HashIsPinned) {
  // Reference values computed independently (Python) from the documented algorithm.
  // Changing SplitHash would move rows between train and test in every user's data.
  EXPECT_EQ(SplitHash("", 0, 0), 0x7bd3144f29c0cc9eULL) << std::hex << SplitHash("", 0, 0);
  EXPECT_EQ(SplitHash("abc", 3, 1), 0x72577830b6d9ad1dULL) << std::hex << SplitHash("abc", 3, 1);
  EXPECT_NE(SplitHash("abc", 3, 1), SplitHash("abc", 3, 2));
  EXPECT_NE(SplitHash("abc", 3, 1), SplitHash("abd", 3, 1));
}

std::shared_ptr<arrow::RecordBatch> Ids(int64_t first, int64_t n) {
  arrow::Int64Builder b;
  for (int64_t i = first; i < first + n; ++i) EXPECT_TRUE(b.Append(i).ok());
  return arrow::RecordBatch::Make(arrow::schema({arrow::field("id", arrow::int64())}), n,
                                  {b.Finish().ValueOrDie()});
}

TEST(SplitTest, FractionsAreRespectedAndAssignmentIsStable) {
  SplitOptions o{"id", {{"train", 0.8}, {"validation", 0.1}, {"test", 0.1}}, 7};
  ASSERT_OK_AND_ASSIGN(auto op, MakeSplit(o));
  ASSERT_OK_AND_ASSIGN(auto whole, op->Compute(*Ids(0, 100000)));
  std::map<std::string, int> counts;
  for (int64_t i = 0; i < whole->length(); ++i) {
    counts[std::static_pointer_cast<arrow::StringArray>(whole)->GetString(i)]++;
  }
  EXPECT_NEAR(counts["train"], 80000, 800);
  EXPECT_NEAR(counts["validation"], 10000, 400);
  EXPECT_NEAR(counts["test"], 10000, 400);
  // The same keys in other batches get the same splits.
  ASSERT_OK_AND_ASSIGN(auto part, op->Compute(*Ids(500, 10)));
  EXPECT_TRUE(part->Equals(*whole->Slice(500, 10)));
  // Another seed gives another assignment.
  o.seed = 8;
  ASSERT_OK_AND_ASSIGN(auto op8, MakeSplit(o));
  ASSERT_OK_AND_ASSIGN(auto other, op8->Compute(*Ids(0, 1000)));
  EXPECT_FALSE(other->Equals(*whole->Slice(0, 1000)));
}

TEST(SplitTest, StringKeysAndNulls) {
  ASSERT_OK_AND_ASSIGN(auto op, MakeSplit({"name", {{"a", 0.5}, {"b", 0.5}}, 0, "fold"}));
  ASSERT_OK_AND_ASSIGN(auto field, op->OutputField(*People()->schema()));
  EXPECT_EQ(field->ToString(), "fold: string");
  ASSERT_OK_AND_ASSIGN(auto out, op->Compute(*People()));
  EXPECT_TRUE(out->IsNull(2));
  // Each value is the bucket of SplitHash over the UTF-8 bytes.
  for (int64_t i : {0, 1, 3}) {
    std::string name = std::static_pointer_cast<arrow::StringArray>(People()->column(1))->GetString(i);
    double u = static_cast<double>(SplitHash(name.data(), name.size(), 0) >> 11) * 0x1.0p-53;
    EXPECT_EQ(std::static_pointer_cast<arrow::StringArray>(out)->GetString(i), u < 0.5 ? "a" : "b");
  }
  ASSERT_OK_AND_ASSIGN(auto all, MakeSplit({"name", {{"only", 1.0}}}));
  ASSERT_OK_AND_ASSIGN(out, all->Compute(*People()));
  EXPECT_THAT(Values(out), ElementsAre("only", "only", "null", "only"));
}

TEST(SplitTest, SameResultWithAnyWorkerCount) {
  std::vector<std::shared_ptr<arrow::RecordBatch>> parts;
  for (int p = 0; p < 8; ++p) parts.push_back(Ids(p * 100, 100));
  ASSERT_OK_AND_ASSIGN(auto op, MakeSplit({"id", {{"train", 0.7}, {"test", 0.3}}, 3}));
  std::shared_ptr<arrow::Table> first;
  for (int workers : {1, 2, 4}) {
    auto p = Pipeline::Read(SourceOf(parts));
    p.Map(op);
    ASSERT_OK_AND_ASSIGN(auto t, p.Collect({.workers = workers}));
    if (first == nullptr) {
      first = t;
    } else {
      EXPECT_TRUE(t->Equals(*first)) << workers;
    }
  }
}

TEST(SplitTest, Errors) {
  EXPECT_THAT(MakeSplit({"id", {{"train", 0.8}, {"test", 0.1}}}).status().message(),
              HasSubstr("split: option 'fractions' sums to 0.9; expected 1 (within 1e-9)"));
  EXPECT_TRUE(MakeSplit({"id", {{"train", 0.8}, {"test", 0.2 + 1e-12}}}).ok());
  EXPECT_THAT(MakeSplit({"id", {{"train", 1.5}, {"test", -0.5}}}).status().message(),
              HasSubstr("'train' is 1.5; expected a fraction in [0, 1]"));
  EXPECT_THAT(MakeSplit({"id", {{"a", 0.5}, {"a", 0.5}}}).status().message(),
              HasSubstr("names split 'a' twice"));
  EXPECT_THAT(MakeSplit({"id", {}}).status().message(), HasSubstr("'fractions' is empty"));
  ASSERT_OK_AND_ASSIGN(auto op, MakeSplit({"idx", {{"a", 1.0}}}));
  EXPECT_THAT(op->OutputField(*People()->schema()).status().message(),
              HasSubstr("split: option 'key': no column 'idx' in the input; available: id, "
                        "name, score"));
  auto floats = Batch({{"f", arrow::float64(), "[1.5]"}});
  ASSERT_OK_AND_ASSIGN(op, MakeSplit({"f", {{"a", 1.0}}}));
  EXPECT_THAT(op->OutputField(*floats->schema()).status().message(),
              HasSubstr("column 'f' is double; expected an integer, bool, string"));
}

// --------------------------------------------------------------------------- join

std::shared_ptr<arrow::RecordBatch> Labels() {
  return Batch({{"id", arrow::int64(), "[3, 1, 9]"},
                {"label", arrow::utf8(), R"(["c", "a", "z"])"},
                {"weight", arrow::float64(), "[0.3, 0.1, 0.9]"}});
}

arrow::Result<std::unique_ptr<StatefulOperator>> OpenJoin(BroadcastJoinOptions o) {
  ARROW_ASSIGN_OR_RAISE(auto factory, MakeBroadcastJoin(std::move(o)));
  ARROW_ASSIGN_OR_RAISE(auto op, factory());
  ARROW_RETURN_NOT_OK(op->Open({}));
  return op;
}

TEST(BroadcastJoinTest, LeftJoinAddsSideColumns) {
  ASSERT_OK_AND_ASSIGN(auto op, OpenJoin({SourceOf({Labels()}), "labels", {"id"}}));
  auto in = People();
  ASSERT_OK_AND_ASSIGN(auto schema, op->OutputSchema(*in->schema()));
  EXPECT_THAT(Names(*schema), ElementsAre("id", "name", "score", "label", "weight"));
  RowErrors errors;
  ASSERT_OK_AND_ASSIGN(auto out, op->Process(in, &errors));
  EXPECT_TRUE(errors.empty());
  EXPECT_THAT(Values(out->column(0)), ElementsAre("1", "2", "3", "4"));
  EXPECT_THAT(Values(out->column(3)), ElementsAre("a", "null", "c", "null"));
  EXPECT_THAT(Values(out->column(4)), ElementsAre("0.1", "null", "0.3", "null"));
}

TEST(BroadcastJoinTest, CompositeKeysAndNullKeys) {
  auto side = Batch({{"a", arrow::utf8(), R"(["x", "x", "y"])"},
                     {"b", arrow::int32(), "[1, 2, 1]"},
                     {"v", arrow::int64(), "[100, 200, 300]"}});
  auto left = Batch({{"b", arrow::int32(), "[2, 1, 1, null]"},
                     {"a", arrow::utf8(), R"(["x", "y", "z", "x"])"}});
  ASSERT_OK_AND_ASSIGN(auto op, OpenJoin({SourceOf({side}), "side", {"a", "b"}}));
  RowErrors errors;
  ASSERT_OK_AND_ASSIGN(auto out, op->Process(left, &errors));
  EXPECT_THAT(Names(*out->schema()), ElementsAre("b", "a", "v"));
  EXPECT_THAT(Values(out->column(2)), ElementsAre("200", "300", "null", "null"));
}

TEST(BroadcastJoinTest, SingleInt64AndStringKeysWithNulls) {
  // One int64 key column takes a path of its own (no key encoding): nulls and absent
  // keys must still come out null, on both paths.
  auto side = Batch({{"id", arrow::int64(), "[5, null, 7]"},
                     {"s", arrow::utf8(), R"(["e", "n", "g"])"},
                     {"v", arrow::float64(), "[0.5, 9.9, 0.7]"}});
  ASSERT_OK_AND_ASSIGN(auto by_id, OpenJoin({SourceOf({side}), "side", {"id"}}));
  auto left = Batch({{"id", arrow::int64(), "[7, null, 6, 5, 7]"}});
  RowErrors errors;
  ASSERT_OK_AND_ASSIGN(auto out, by_id->Process(left, &errors));
  EXPECT_THAT(Values(out->column(1)), ElementsAre("g", "null", "null", "e", "g"));
  EXPECT_THAT(Values(out->column(2)), ElementsAre("0.7", "null", "null", "0.5", "0.7"));
  ASSERT_OK_AND_ASSIGN(auto by_s, OpenJoin({SourceOf({side}), "side", {"s"}}));
  auto left_s = Batch({{"s", arrow::utf8(), R"(["n", null, "x", "e"])"}});
  ASSERT_OK_AND_ASSIGN(out, by_s->Process(left_s, &errors));
  EXPECT_THAT(Values(out->column(1)), ElementsAre("null", "null", "null", "5"));
  EXPECT_THAT(Values(out->column(2)), ElementsAre("9.9", "null", "null", "0.5"));
}

TEST(BroadcastJoinTest, SideTableIsLoadedOnceAndSharedAcrossWorkers) {
  std::vector<std::shared_ptr<arrow::RecordBatch>> parts;
  for (int p = 0; p < 6; ++p) parts.push_back(Ids(p * 2, 2));  // ids 0..11
  auto side = Batch({{"id", arrow::int64(), "[1, 5, 11]"}, {"tag", arrow::utf8(), R"(["p", "q", "r"])"}});
  ASSERT_OK_AND_ASSIGN(auto factory, MakeBroadcastJoin({SourceOf({side}), "side", {"id"}}));
  auto p = Pipeline::Read(SourceOf(parts));
  p.MapStateful(factory);
  RunStats stats;
  ASSERT_OK_AND_ASSIGN(auto t, p.Collect({.workers = 3}, &stats));
  ASSERT_OK_AND_ASSIGN(auto combined, t->CombineChunksToBatch());
  EXPECT_THAT(Values(combined->GetColumnByName("tag")),
              ElementsAre("null", "p", "null", "null", "null", "q", "null", "null", "null",
                          "null", "null", "r"));
}

TEST(BroadcastJoinTest, DuplicateKeyIsAnErrorNamingTheKey) {
  auto side = Batch({{"id", arrow::int64(), "[1, 2, 1]"}, {"v", arrow::utf8(), R"(["a", "b", "c"])"}});
  auto r = OpenJoin({SourceOf({side}), "labels.parquet", {"id"}});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              HasSubstr("join: side table 'labels.parquet' has the key (id=1) twice (rows 0 "
                        "and 2); keys of a side table must be unique"));
}

TEST(BroadcastJoinTest, RefusesSideTableOverTheLimitNamingFileAndSize) {
  std::string dir = MakeTestDir();
  std::string path = dir + "/side.parquet";
  arrow::Int64Builder ids;
  for (int i = 0; i < 10000; ++i) ASSERT_OK(ids.Append(i));
  auto table = arrow::Table::Make(arrow::schema({arrow::field("id", arrow::int64())}),
                                  {ids.Finish().ValueOrDie()});
  auto out = arrow::io::FileOutputStream::Open(path);
  ASSERT_OK(out.status());
  ASSERT_OK(parquet::arrow::WriteTable(*table, arrow::default_memory_pool(), *out, 100000));
  ASSERT_OK((*out)->Close());
  TableSourceOptions so;
  so.paths = {path};
  ASSERT_OK_AND_ASSIGN(auto side, OpenTableSource(so));
  auto r = OpenJoin({side, path, {"id"}, 1000});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("join: side table '" + path +
                                              "' is larger than max_bytes (1000 B)"));
  EXPECT_THAT(r.status().message(),
              HasSubstr(" bytes) in memory while reading '" + path + "'; raise max_bytes"));
  // Under the limit it loads.
  ASSERT_OK(OpenJoin({side, path, {"id"}, 1 << 20}).status());
}

TEST(BroadcastJoinTest, SchemaErrors) {
  EXPECT_THAT(MakeBroadcastJoin({SourceOf({Labels()}), "labels", {"key"}}).status().message(),
              HasSubstr("join: option 'on': no column 'key' in side table 'labels'; "
                        "available: id, label, weight"));
  EXPECT_THAT(MakeBroadcastJoin({SourceOf({Labels()}), "labels", {}}).status().message(),
              HasSubstr("join: option 'on' is empty"));
  EXPECT_THAT(MakeBroadcastJoin({nullptr, "x", {"id"}}).status().message(),
              HasSubstr("no side table"));
  ASSERT_OK_AND_ASSIGN(auto f, MakeBroadcastJoin({SourceOf({Labels()}), "labels", {"id"}}));
  ASSERT_OK_AND_ASSIGN(auto op, f());
  auto int32_ids = Batch({{"id", arrow::int32(), "[1]"}});
  EXPECT_THAT(op->OutputSchema(*int32_ids->schema()).status().message(),
              HasSubstr("join: option 'on': key column 'id' is int32 in the input but int64 in "
                        "side table 'labels'; cast one of them first"));
  auto no_id = Batch({{"user", arrow::int64(), "[1]"}});
  EXPECT_THAT(op->OutputSchema(*no_id->schema()).status().message(),
              HasSubstr("no column 'id' in the input; available: user"));
  auto clash = Batch({{"id", arrow::int64(), "[1]"}, {"label", arrow::utf8(), R"(["q"])"}});
  EXPECT_THAT(op->OutputSchema(*clash->schema()).status().message(),
              HasSubstr("join: column 'label' of side table 'labels' is already in the input"));
}

}  // namespace
}  // namespace dlprep::exec
