#include "exec/pipeline_file.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <arrow/api.h>
#include <arrow/io/file.h>
#include <arrow/util/utf8.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <parquet/arrow/writer.h>

#include "exec/builtin_ops.h"
#include "exec/exec_test_util.h"

namespace dlprep::exec {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

std::string MakeTestDir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  fs::path dir = fs::path(DLPREP_TEST_TMPDIR) /
                 ("pipeline-file-" + std::string(info->name()) + "-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

// Writes `n` rows: id (int64), path ("img/<cat|dog>/<id>.jpg"), x (double = id).
void WriteInput(const std::string& path, int64_t n) {
  arrow::Int64Builder ids;
  arrow::StringBuilder paths;
  arrow::DoubleBuilder xs;
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_OK(ids.Append(i));
    ASSERT_OK(paths.Append(std::string("img/") + (i % 2 ? "cat" : "dog") + "/" +
                           std::to_string(i) + ".jpg"));
    ASSERT_OK(xs.Append(static_cast<double>(i)));
  }
  auto table = arrow::Table::Make(
      arrow::schema({arrow::field("id", arrow::int64()), arrow::field("path", arrow::utf8()),
                     arrow::field("x", arrow::float64())}),
      {ids.Finish().ValueOrDie(), paths.Finish().ValueOrDie(), xs.Finish().ValueOrDie()});
  auto out = arrow::io::FileOutputStream::Open(path);
  ASSERT_OK(out.status());
  ASSERT_OK(parquet::arrow::WriteTable(*table, arrow::default_memory_pool(), *out, 7));
  ASSERT_OK((*out)->Close());
}

void WriteLabels(const std::string& path) {
  arrow::StringBuilder labels;
  arrow::Int64Builder ids;
  ASSERT_OK(labels.AppendValues(std::vector<std::string>{"cat", "dog"}));
  ASSERT_OK(ids.AppendValues(std::vector<int64_t>{1, 2}));
  auto table = arrow::Table::Make(
      arrow::schema({arrow::field("label", arrow::utf8()),
                     arrow::field("label_id", arrow::int64())}),
      {labels.Finish().ValueOrDie(), ids.Finish().ValueOrDie()});
  auto out = arrow::io::FileOutputStream::Open(path);
  ASSERT_OK(out.status());
  ASSERT_OK(parquet::arrow::WriteTable(*table, arrow::default_memory_pool(), *out, 100));
  ASSERT_OK((*out)->Close());
}

const char* kFull = R"(source: {format: parquet, paths: [in.parquet]}
steps:
  - filter: {expr: "x >= 2"}
  - regex_extract: {column: path, pattern: '([^/]+)/[^/]+$', output: label}
  - split: {key: id, fractions: {train: 0.5, test: 0.5}, seed: 1}
  - join: {source: {format: parquet, paths: [labels.parquet]}, on: [label]}
  - cast: {columns: {x: float32}}
  - rename: {columns: {x: feature}}
  - select: {columns: [id, label, label_id, feature, split]}
sink: {format: parquet, path: out, shards: 2}
)";

// Parses `yaml` with `dir` as the base folder; for error tests.
arrow::Status ParseError(const std::string& yaml, const std::string& dir) {
  return ParsePipelineYaml(yaml, "p.yaml", dir).status();
}

TEST(PipelineFileTest, RunsEveryBuiltinStepEndToEnd) {
  std::string dir = MakeTestDir();
  WriteInput(dir + "/in.parquet", 20);
  WriteLabels(dir + "/labels.parquet");
  std::ofstream(dir + "/p.yaml") << kFull;
  ASSERT_OK_AND_ASSIGN(PipelineFile file, LoadPipelineFile(dir + "/p.yaml"));
  ASSERT_EQ(file.steps.size(), 7u);
  EXPECT_EQ(file.steps[0].kind, PipelineStep::Kind::kBatch);
  EXPECT_EQ(file.steps[1].kind, PipelineStep::Kind::kScalar);
  EXPECT_EQ(file.steps[3].kind, PipelineStep::Kind::kStateful);
  EXPECT_EQ(file.write.output_dir, dir + "/out");
  EXPECT_EQ(file.write.format, OutputFormat::kParquet);
  EXPECT_EQ(file.write.shards, 2);

  // Same rows whatever the worker count.
  std::shared_ptr<arrow::Table> first;
  for (int workers : {1, 4}) {
    ASSERT_OK_AND_ASSIGN(auto table, file.ToPipeline().Collect({.workers = workers}));
    ASSERT_OK_AND_ASSIGN(table, table->CombineChunks());
    if (first) {
      EXPECT_TRUE(table->Equals(*first));
      continue;
    }
    first = table;
    EXPECT_EQ(table->schema()->ToString(),
              "id: int64\nlabel: string\nlabel_id: int64\nfeature: float\nsplit: string");
    ASSERT_EQ(table->num_rows(), 18);
    auto ids = std::static_pointer_cast<arrow::Int64Array>(table->column(0)->chunk(0));
    auto labels = std::static_pointer_cast<arrow::StringArray>(table->column(1)->chunk(0));
    auto label_ids = std::static_pointer_cast<arrow::Int64Array>(table->column(2)->chunk(0));
    auto features = std::static_pointer_cast<arrow::FloatArray>(table->column(3)->chunk(0));
    auto splits = std::static_pointer_cast<arrow::StringArray>(table->column(4)->chunk(0));
    for (int64_t r = 0; r < 18; ++r) {
      int64_t id = r + 2;
      EXPECT_EQ(ids->Value(r), id);
      EXPECT_EQ(labels->GetString(r), id % 2 ? "cat" : "dog");
      EXPECT_EQ(label_ids->Value(r), id % 2 ? 1 : 2);
      EXPECT_EQ(features->Value(r), static_cast<float>(id));
      double u = static_cast<double>(SplitHash(&id, 8, 1) >> 11) * 0x1.0p-53;
      EXPECT_EQ(splits->GetString(r), u < 0.5 ? "train" : "test") << id;
    }
  }
  // And it commits through the sink.
  ASSERT_OK_AND_ASSIGN(RunStats stats, file.ToPipeline().Run({.workers = 2}));
  EXPECT_EQ(stats.rows_written, 18);
  EXPECT_EQ(stats.files_written, 2);
  EXPECT_TRUE(fs::exists(dir + "/out/_SUCCESS"));
}

TEST(PipelineFileTest, NormalizedYamlHasDefaultsAndResolvedPaths) {
  std::string dir = MakeTestDir();
  WriteInput(dir + "/in.parquet", 3);
  WriteLabels(dir + "/labels.parquet");
  ASSERT_OK_AND_ASSIGN(PipelineFile file, ParsePipelineYaml(kFull, "p.yaml", dir));
  const std::string& y = file.normalized_yaml;
  EXPECT_THAT(y, HasSubstr("paths: [" + dir + "/in.parquet]"));
  EXPECT_THAT(y, HasSubstr("paths: [" + dir + "/labels.parquet]"));
  EXPECT_THAT(y, HasSubstr("on_mismatch: \"null\""));
  EXPECT_THAT(y, HasSubstr("fractions: {train: 0.5, test: 0.5}"));
  EXPECT_THAT(y, HasSubstr("output: split"));
  EXPECT_THAT(y, HasSubstr("max_bytes: 268435456"));
  EXPECT_THAT(y, HasSubstr("path: " + dir + "/out"));
  EXPECT_THAT(y, HasSubstr("overwrite: false"));
  // The normalized text is itself a valid pipeline that parses to the same thing.
  ASSERT_OK_AND_ASSIGN(PipelineFile again, ParsePipelineYaml(y, "normalized.yaml", "/"));
  EXPECT_EQ(again.normalized_yaml, y);
}

TEST(PipelineFileTest, UnknownKeysNameKeyLineAndAcceptedKeys) {
  std::string dir = MakeTestDir();
  WriteInput(dir + "/in.parquet", 3);
  auto st = ParseError(
      "source: {format: parquet, paths: [in.parquet]}\n"
      "steps:\n"
      "  - split: {key: id, fractions: {a: 1}, sed: 3}\n"
      "sink: {path: out}\n",
      dir);
  EXPECT_THAT(st.message(), HasSubstr("p.yaml:3:41: step 1 (split): unknown option 'sed' "
                                      "(did you mean 'seed'?); expected one of: key, "
                                      "fractions, seed, output"));
  st = ParseError(
      "source: {format: parquet, paths: [in.parquet], recursive: true}\nsink: {path: o}\n",
      dir);
  EXPECT_THAT(st.message(), HasSubstr("p.yaml:1:48: source: unknown option 'recursive'"));
  st = ParseError(
      "source: {format: parquet, paths: [in.parquet]}\nsink: {path: o}\nworkers: 3\n", dir);
  EXPECT_THAT(st.message(), HasSubstr("p.yaml:3:1: pipeline: unknown option 'workers'; "
                                      "expected one of: source, steps, sink"));
  st = ParseError(
      "source: {format: parquet, paths: [in.parquet]}\nsink: {path: o, colour: red}\n", dir);
  EXPECT_THAT(st.message(), HasSubstr("p.yaml:2:17: sink: unknown option 'colour'"));
  st = ParseError(
      "source: {format: parquet, paths: [in.parquet]}\nsteps:\n  - filter: {exprs: x}\n"
      "sink: {path: o}\n",
      dir);
  EXPECT_THAT(st.message(), HasSubstr("p.yaml:3:14: step 1 (filter): missing option 'expr' "
                                      "(found 'exprs': did you mean 'expr'?)"));
}

TEST(PipelineFileTest, UnknownKeysListOnlyTheUnknownOnesWithSuggestions) {
  std::string dir = MakeTestDir();
  WriteInput(dir + "/in.parquet", 3);
  const std::string head = "source: {format: parquet, paths: [in.parquet]}\nsteps:\n";
  const std::string tail = "sink: {path: o}\n";
  // A misspelt required key: valid keys that come after it are not called unknown.
  auto st = ParseError(head + "  - regex_extract: {column: path, patern: 'a(b)', output: l}\n" +
                           tail, dir);
  EXPECT_THAT(st.message(), HasSubstr("p.yaml:3:35: step 1 (regex_extract): missing option "
                                      "'pattern' (found 'patern': did you mean 'pattern'?)"));
  EXPECT_THAT(st.message(), Not(HasSubstr("output")));
  EXPECT_THAT(st.message(), Not(HasSubstr("column")));
  // A required key that is simply absent: no guess, no list of other keys.
  st = ParseError(head + "  - regex_extract: {column: path, output: l}\n" + tail, dir);
  EXPECT_THAT(st.message(), HasSubstr("step 1 (regex_extract): missing option 'pattern'"));
  EXPECT_THAT(st.message(), Not(HasSubstr("output")));
  // Several unknown keys: all named, each with its suggestion when one is close.
  st = ParseError(head + "  - split: {key: id, fractions: {a: 1}, sede: 1, outptu: s, "
                         "colour: red}\n" + tail, dir);
  EXPECT_THAT(st.message(), HasSubstr("step 1 (split): unknown options 'sede' (did you mean "
                                      "'seed'?), 'outptu' (did you mean 'output'?), "
                                      "'colour'; expected one of: key, fractions, seed, "
                                      "output"));
  // A misspelt step name.
  st = ParseError(head + "  - splt: {key: id, fractions: {a: 1}}\n" + tail, dir);
  EXPECT_THAT(st.message(), HasSubstr("unknown step 'splt' (did you mean 'split'?); known "
                                      "steps: "));
}

TEST(PipelineFileTest, DuplicateKeysAreErrorsWithBothLines) {
  std::string dir = MakeTestDir();
  WriteInput(dir + "/in.parquet", 3);
  auto st = ParseError("source: {format: parquet, paths: [in.parquet]}\n"
                       "sink:\n"
                       "  path: o\n"
                       "  format: parquet\n"
                       "  format: csv\n",
                       dir);
  EXPECT_THAT(st.message(), HasSubstr("p.yaml:5:3: duplicate key 'format' (first at line 4)"));
  st = ParseError("source: {format: parquet, paths: [in.parquet]}\nsink: {path: o}\n"
                  "sink: {path: p}\n",
                  dir);
  EXPECT_THAT(st.message(), HasSubstr("p.yaml:3:1: duplicate key 'sink' (first at line 2)"));
  // Inside a step's options, and in a nested mapping.
  st = ParseError("source: {format: parquet, paths: [in.parquet]}\nsteps:\n"
                  "  - split: {key: id, fractions: {a: 0.5, a: 0.5}}\nsink: {path: o}\n",
                  dir);
  EXPECT_THAT(st.message(), HasSubstr("p.yaml:3:42: duplicate key 'a' (first at line 3)"));
}

TEST(PipelineFileTest, EnumerationsAreCaseInsensitive) {
  std::string dir = MakeTestDir();
  WriteInput(dir + "/in.parquet", 3);
  ASSERT_OK_AND_ASSIGN(
      PipelineFile file,
      ParsePipelineYaml("source: {format: Parquet, paths: [in.parquet]}\n"
                        "steps:\n  - regex_extract: {column: path, pattern: '(a)', "
                        "output: l, on_mismatch: Error}\n"
                        "sink: {path: o, format: TFRecord, compression: GZIP, "
                        "record_type: Sequence_Example}\n",
                        "p.yaml", dir));
  EXPECT_EQ(file.write.format, OutputFormat::kTfRecord);
  EXPECT_EQ(file.write.compression, TfRecordCompression::kGzip);
  EXPECT_EQ(file.write.record_type, RecordType::kSequenceExample);
  // The normalized pipeline spells them as documented.
  EXPECT_THAT(file.normalized_yaml, HasSubstr("format: parquet"));
  EXPECT_THAT(file.normalized_yaml, HasSubstr("compression: gzip"));
  EXPECT_THAT(file.normalized_yaml, HasSubstr("on_mismatch: error"));
  // A wrong value names the option and lists the accepted values.
  auto st = ParseError("source: {format: parquet, paths: [in.parquet]}\n"
                       "sink: {path: o, compression: brotli}\n",
                       dir);
  EXPECT_THAT(st.message(), HasSubstr("p.yaml:2:17: sink: option 'compression': 'brotli' is "
                                      "not accepted; expected none, gzip or zlib"));
  st = ParseError("source: {format: parquet, paths: [in.parquet]}\n"
                  "sink: {path: o, format: parquet, record_type: sequence_example}\n",
                  dir);
  EXPECT_THAT(st.message(), HasSubstr("sink: option 'record_type': applies to format "
                                      "tfrecord only"));
}

TEST(PipelineFileTest, StepErrorsAreLocated) {
  std::string dir = MakeTestDir();
  WriteInput(dir + "/in.parquet", 3);
  const std::string head = "source: {format: parquet, paths: [in.parquet]}\nsteps:\n";
  const std::string tail = "sink: {path: o}\n";
  auto st = ParseError(head + "  - explode: {column: x}\n" + tail, dir);
  EXPECT_THAT(st.message(), HasSubstr("p.yaml:3:5: step 1: unknown step 'explode'; known "
                                      "steps: cast, filter, join, regex_extract, rename, "
                                      "select, split"));
  st = ParseError(head + "  - select: {columns: [a]}\n  - split: {key: id,\n"
                         "      fractions: {a: 0.5, b: 0.4}}\n" + tail,
                  dir);
  EXPECT_THAT(st.message(), HasSubstr("p.yaml:5:7: step 2 (split): split: option "
                                      "'fractions' sums to 0.9"));
  st = ParseError(head + "  - split: {key: id, fractions: {a: 1}, seed: abc}\n" + tail, dir);
  EXPECT_THAT(st.message(), HasSubstr("p.yaml:3:41: step 1 (split): option 'seed': expected "
                                      "an integer, got 'abc'"));
  st = ParseError(head + "  - filter: {expr: 'x >'}\n" + tail, dir);
  EXPECT_THAT(st.message(), HasSubstr("p.yaml:3:14: step 1 (filter): filter: option 'expr': "
                                      "filter expression 'x >': expected a column or literal"));
  st = ParseError(head + "  - select: [a]\n" + tail, dir);
  EXPECT_THAT(st.message(), HasSubstr("p.yaml:3:13: step 1 (select): expected a mapping"));
  st = ParseError(head + "  - regex_extract: {column: p, pattern: '(a)', output: l, "
                         "on_mismatch: skip}\n" + tail,
                  dir);
  EXPECT_THAT(st.message(), HasSubstr("option 'on_mismatch': 'skip' is not accepted; "
                                      "expected null or error"));
}

TEST(PipelineFileTest, SourceSinkAndSyntaxErrors) {
  std::string dir = MakeTestDir();
  WriteInput(dir + "/in.parquet", 3);
  auto st = ParseError("source: {format: parquet}\nsink: {path: o}\n", dir);
  EXPECT_THAT(st.message(), HasSubstr("p.yaml:1:9: source: missing option 'paths'"));
  st = ParseError("source: {format: orc, paths: [in.parquet]}\nsink: {path: o}\n", dir);
  EXPECT_THAT(st.message(), HasSubstr("p.yaml:1:10: source: option 'format': 'orc' is not "
                                      "accepted; expected parquet, csv, json, tfrecord or "
                                      "binary"));
  st = ParseError("source: {format: parquet, paths: [in.parquet]}\n"
                  "sink: {path: o, format: parquet, compression: gzip}\n",
                  dir);
  EXPECT_THAT(st.message(), HasSubstr("sink: option 'compression': applies to format "
                                      "tfrecord only"));
  st = ParseError("source: {format: parquet, paths: [in.parquet]}\n", dir);
  EXPECT_THAT(st.message(), HasSubstr("pipeline: missing option 'sink'"));
  st = ParseError("source: {format: parquet, paths: [in.parquet]\nsink: {path: o}\n", dir);
  EXPECT_THAT(st.message(), HasSubstr("p.yaml:2:"));
  EXPECT_THAT(st.message(), HasSubstr("not valid YAML"));
  st = ParseError("- a\n- b\n", dir);
  EXPECT_THAT(st.message(), HasSubstr("p.yaml: expected a mapping with 'source', 'steps' "
                                      "and 'sink'"));
  EXPECT_THAT(LoadPipelineFile(dir + "/nope.yaml").status().message(),
              HasSubstr("cannot read pipeline file '" + dir + "/nope.yaml'"));
}

TEST(PipelineFileTest, ErrorsNamingBytesThatAreNotUtf8AreValidUtf8) {
  arrow::util::InitializeUTF8();
  std::string dir = MakeTestDir();
  WriteInput(dir + "/in.parquet", 3);
  const std::string head = "source: {format: parquet, paths: [in.parquet]}\nsteps:\n";
  const std::string tail = "sink: {path: o}\n";
  auto st = ParseError(head + "  - filter: {expr: \"x > \xc3\xa9\"}\n" + tail, dir);
  EXPECT_THAT(st.message(), HasSubstr("step 1 (filter): filter: option 'expr': filter "
                                      "expression 'x > \xc3\xa9': expected"));
  EXPECT_TRUE(arrow::util::ValidateUTF8(st.message())) << st.message();
  // The file ends in half a UTF-8 character, inside the expression.
  st = ParseError(head + "  - filter: {expr: x > 1 \xc3}", dir);
  EXPECT_FALSE(st.ok());
  EXPECT_TRUE(arrow::util::ValidateUTF8(st.message())) << st.message();
  st = ParseError(head + "  - filter: {expr: x > 1 \xc3}\n" + tail, dir);
  EXPECT_THAT(st.message(), HasSubstr("not '\\xc3' at position 6"));
  EXPECT_TRUE(arrow::util::ValidateUTF8(st.message())) << st.message();
  st = ParseError(head + tail + "b\xff" "d: 1\n", dir);
  EXPECT_THAT(st.message(), HasSubstr("b\\xffd"));
  EXPECT_TRUE(arrow::util::ValidateUTF8(st.message())) << st.message();
}

TEST(PipelineFileTest, RegisteredStepsAreUsable) {
  // A step from another module: appends column `name` = x * factor.
  ASSERT_OK(RegisterStep("times_test", [](ConfigNode* o) -> arrow::Result<PipelineStep> {
    ARROW_ASSIGN_OR_RAISE(std::string name, o->GetString("name", "y"));
    ARROW_ASSIGN_OR_RAISE(int64_t factor, o->GetInt("factor"));
    PipelineStep s;
    s.kind = PipelineStep::Kind::kScalar;
    s.scalar = std::make_shared<testing::TimesScalar>(name, factor);
    return s;
  }));
  EXPECT_TRUE(RegisterStep("times_test", nullptr).IsInvalid());
  auto dup = RegisterStep("times_test", [](ConfigNode*) -> arrow::Result<PipelineStep> {
    return PipelineStep{};
  });
  EXPECT_TRUE(dup.IsAlreadyExists());
  EXPECT_THAT(dup.message(), HasSubstr("'times_test' is already registered"));
  EXPECT_THAT(RegisteredSteps(), ::testing::Contains("times_test"));

  std::string dir = MakeTestDir();
  WriteInput(dir + "/in.parquet", 4);
  ASSERT_OK_AND_ASSIGN(
      PipelineFile file,
      ParsePipelineYaml("source: {format: parquet, paths: [in.parquet], columns: [x, id]}\n"
                        "steps: [{cast: {columns: {id: int64}}}, {rename: {columns: {id: x2, x: old}}},"
                        " {rename: {columns: {x2: x}}}, {times_test: {factor: 10}}]\n"
                        "sink: {path: out}\n",
                        "p.yaml", dir));
  ASSERT_OK_AND_ASSIGN(auto table, file.ToPipeline().Collect());
  ASSERT_OK_AND_ASSIGN(auto batch, table->CombineChunksToBatch());
  EXPECT_EQ(batch->schema()->field_names(), (std::vector<std::string>{"old", "x", "y"}));
  EXPECT_EQ(batch->column(2)->ToString(), "[\n  0,\n  10,\n  20,\n  30\n]");
  EXPECT_THAT(file.normalized_yaml, HasSubstr("times_test:\n      name: y\n      factor: 10"));
}

}  // namespace
}  // namespace dlprep::exec
