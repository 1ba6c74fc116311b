#include "io/manifest.h"

#include <filesystem>
#include <fstream>
#include <string>

#include <arrow/api.h>
#include <arrow/json/from_string.h>
#include <arrow/testing/gtest_util.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/units.h"

namespace dlprep::io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::shared_ptr<arrow::Array> ArrayFromJson(const std::shared_ptr<arrow::DataType>& type,
                                            const std::string& text) {
  return arrow::json::ArrayFromJSONString(type, text).ValueOrDie();
}

// Builds the manifest of a TFRecord dataset whose columns held `batches` (each a list
// of columns, one per field) and returns its "features".
json Features(const std::shared_ptr<arrow::Schema>& schema,
              const std::vector<std::vector<std::shared_ptr<arrow::Array>>>& batches,
              RecordType record_type = RecordType::kExample) {
  ManifestInfo info;
  info.options.format = OutputFormat::kTfRecord;
  info.options.record_type = record_type;
  info.schema = schema;
  info.stats.resize(schema->num_fields());
  for (const auto& columns : batches) {
    for (int i = 0; i < schema->num_fields(); ++i) {
      EXPECT_TRUE(
          UpdateColumnStats(*columns[i],
                            IsSequenceColumn(*schema->field(i)->type(), record_type),
                            &info.stats[i])
              .ok());
    }
  }
  auto text = BuildManifestJson(info);
  EXPECT_TRUE(text.ok()) << text.status().ToString();
  return json::parse(*text)["features"];
}

json Spec(const std::string& dtype, std::vector<int64_t> shape, bool fixed,
          bool sequence = false) {
  return json{{"dtype", dtype},
              {"shape", shape},
              {"fixed_length", fixed},
              {"sequence", sequence}};
}

std::shared_ptr<arrow::Field> WithShape(std::shared_ptr<arrow::Field> f,
                                        const std::string& shape) {
  return f->WithMetadata(arrow::key_value_metadata({"dlprep.shape"}, {shape}));
}

TEST(FeatureSpec, ScalarColumns) {
  auto schema = arrow::schema(
      {arrow::field("id", arrow::int64()), arrow::field("age", arrow::int32()),
       arrow::field("score", arrow::float64()), arrow::field("name", arrow::utf8()),
       arrow::field("ok", arrow::boolean()),
       arrow::field("t", arrow::timestamp(arrow::TimeUnit::MICRO, "UTC")),
       arrow::field("naive", arrow::timestamp(arrow::TimeUnit::NANO)),
       arrow::field("day", arrow::date32())});
  auto f = Features(
      schema,
      {{ArrayFromJson(arrow::int64(), "[1, 2]"),
        ArrayFromJson(arrow::int32(), "[3, null]"),
        ArrayFromJson(arrow::float64(), "[1.5, 2]"),
        ArrayFromJson(arrow::binary(), "[\"a\", \"b\"]"),
        ArrayFromJson(arrow::boolean(), "[true, false]"),
        ArrayFromJson(arrow::timestamp(arrow::TimeUnit::MICRO, "UTC"), "[1, 2]"),
        ArrayFromJson(arrow::timestamp(arrow::TimeUnit::NANO), "[1, 2]"),
        ArrayFromJson(arrow::date32(), "[1, 2]")}});
  EXPECT_EQ(f["id"], Spec("int64", {}, true));
  EXPECT_EQ(f["age"], Spec("int64", {}, false));  // a null in a written row
  EXPECT_EQ(f["score"], Spec("float32", {}, true));
  EXPECT_EQ(f["name"], Spec("string", {}, true));
  EXPECT_EQ(f["ok"], Spec("int64", {}, true));
  // Times are int64 counts: the unit (and time zone) say of what.
  json t = Spec("int64", {}, true);
  t["unit"] = "us";
  t["timezone"] = "UTC";
  EXPECT_EQ(f["t"], t);
  json naive = Spec("int64", {}, true);
  naive["unit"] = "ns";
  EXPECT_EQ(f["naive"], naive);
  json day = Spec("int64", {}, true);
  day["unit"] = "days";
  EXPECT_EQ(f["day"], day);
}

TEST(FeatureSpec, ListColumns) {
  auto fsl = arrow::fixed_size_list(arrow::float32(), 3);
  auto schema = arrow::schema({
      arrow::field("fixed", fsl),
      WithShape(arrow::field("image", arrow::list(arrow::float32())), "[2,3]"),
      arrow::field("ragged", arrow::list(arrow::int64())),
      arrow::field("pair", arrow::large_list(arrow::utf8())),
      arrow::field("null_row", arrow::list(arrow::float32())),
      arrow::field("null_value", arrow::list(arrow::float32())),
      WithShape(arrow::field("wrong", arrow::list(arrow::float32())), "[4]"),
      WithShape(arrow::field("open", arrow::list(arrow::float32())), "[-1,2]"),
  });
  auto f = Features(
      schema,
      {{ArrayFromJson(fsl, "[[1,2,3],[4,5,6]]"),
        ArrayFromJson(arrow::list(arrow::float32()), "[[1,2,3,4,5,6],[1,2,3,4,5,6]]"),
        ArrayFromJson(arrow::list(arrow::int64()), "[[1],[1,2,3]]"),
        ArrayFromJson(arrow::large_list(arrow::utf8()), "[[\"a\",\"b\"],[\"c\",\"d\"]]"),
        ArrayFromJson(arrow::list(arrow::float32()), "[[1,2],null]"),
        ArrayFromJson(arrow::list(arrow::float32()), "[[1,null],[3,4]]"),
        ArrayFromJson(arrow::list(arrow::float32()), "[[1,2,3],[1,2,3]]"),
        ArrayFromJson(arrow::list(arrow::float32()), "[[1,2],[3,4,5,6]]")}});
  EXPECT_EQ(f["fixed"], Spec("float32", {3}, true));
  EXPECT_EQ(f["image"], Spec("float32", {2, 3}, true));
  EXPECT_EQ(f["ragged"], Spec("int64", {-1}, false));
  EXPECT_EQ(f["pair"], Spec("string", {2}, true));
  EXPECT_EQ(f["null_row"], Spec("float32", {2}, false));
  EXPECT_EQ(f["null_value"], Spec("float32", {2}, false));
  EXPECT_EQ(f["wrong"], Spec("float32", {4}, false));  // 3 values per row, shape says 4
  EXPECT_EQ(f["open"], Spec("float32", {-1, 2}, false));
}

TEST(FeatureSpec, LengthsAcrossBatchesAndSlices) {
  auto type = arrow::list(arrow::int64());
  auto schema = arrow::schema({arrow::field("a", type), arrow::field("b", type)});
  // Column a is uniform within each batch but not across them; column b is written
  // as a slice that leaves out its one odd row.
  auto b_full = ArrayFromJson(type, "[[1,2,3],[1,2],[4,5]]");
  auto f = Features(schema, {{ArrayFromJson(type, "[[1],[2]]"), b_full->Slice(1, 1)},
                             {ArrayFromJson(type, "[[1,2]]"), b_full->Slice(2, 1)}});
  EXPECT_EQ(f["a"], Spec("int64", {-1}, false));
  EXPECT_EQ(f["b"], Spec("int64", {2}, true));
}

TEST(FeatureSpec, SequenceColumnsUseTheStepShape) {
  auto seq = arrow::list(arrow::list(arrow::float32()));
  auto steps3 = arrow::list(arrow::fixed_size_list(arrow::int64(), 3));
  auto schema =
      arrow::schema({arrow::field("frames", seq), arrow::field("ids", steps3),
                     arrow::field("ragged", seq), arrow::field("label", arrow::int64())});
  std::vector<std::vector<std::shared_ptr<arrow::Array>>> batches = {
      {ArrayFromJson(seq, "[[[1,2],[3,4],[5,6]],[[7,8]]]"),
       ArrayFromJson(steps3, "[[[1,2,3]],[[4,5,6],[7,8,9]]]"),
       ArrayFromJson(seq, "[[[1],[2,3]],[]]"), ArrayFromJson(arrow::int64(), "[0, 1]")}};
  auto f = Features(schema, batches, RecordType::kSequenceExample);
  EXPECT_EQ(f["frames"], Spec("float32", {2}, true, true));
  EXPECT_EQ(f["ids"], Spec("int64", {3}, true, true));
  EXPECT_EQ(f["ragged"], Spec("float32", {-1}, false, true));
  EXPECT_EQ(f["label"], Spec("int64", {}, true, false));
  // The same column in a tf.train.Example dataset is not a sequence.
  EXPECT_FALSE(IsSequenceColumn(*seq, RecordType::kExample));
  EXPECT_FALSE(
      IsSequenceColumn(*arrow::list(arrow::int64()), RecordType::kSequenceExample));
}

TEST(FeatureSpec, NoRowsWritten) {
  auto fsl = arrow::fixed_size_list(arrow::float32(), 4);
  auto schema = arrow::schema(
      {arrow::field("v", fsl), arrow::field("l", arrow::list(arrow::float32()))});
  auto f = Features(schema, {});
  EXPECT_EQ(f["v"], Spec("float32", {4}, true));
  EXPECT_EQ(f["l"], Spec("float32", {-1}, false));
}

TEST(FeatureDtype, RefusesUnmappedTypes) {
  auto r = FeatureDtype(*arrow::struct_({arrow::field("x", arrow::int64())}));
  ASSERT_TRUE(r.status().IsTypeError());
  EXPECT_NE(r.status().message().find("struct<x: int64>"), std::string::npos)
      << r.status().message();
  // The encoder has no float16 mapping, so the manifest has none either.
  EXPECT_TRUE(FeatureDtype(*arrow::list(arrow::float16())).status().IsTypeError());
  EXPECT_EQ(*FeatureDtype(*arrow::list(arrow::float64())), "float32");
  EXPECT_EQ(*FeatureDtype(*arrow::date32()), "int64");
  EXPECT_EQ(*FeatureDtype(*arrow::large_binary()), "string");
}

TEST(ShapeFromMetadata, ParsesAndRejects) {
  auto plain = arrow::field("x", arrow::list(arrow::float32()));
  ASSERT_OK_AND_ASSIGN(auto none, ShapeFromMetadata(*plain));
  EXPECT_FALSE(none.has_value());
  ASSERT_OK_AND_ASSIGN(auto shape, ShapeFromMetadata(*WithShape(plain, "[101, 64]")));
  EXPECT_EQ(*shape, (std::vector<int64_t>{101, 64}));
  for (const char* bad : {"[2,", "{\"a\":1}", "[1.5]", "[-2]", "[\"3\"]"}) {
    auto r = ShapeFromMetadata(*WithShape(plain, bad));
    ASSERT_TRUE(r.status().IsInvalid()) << bad;
    EXPECT_NE(r.status().message().find("'x'"), std::string::npos);
    EXPECT_NE(r.status().message().find(bad), std::string::npos);
  }
}

TEST(BuildManifestJson, TfRecordHeaderAndJob) {
  ManifestInfo info;
  info.options.format = OutputFormat::kTfRecord;
  info.options.compression = TfRecordCompression::kZlib;
  info.options.record_type = RecordType::kSequenceExample;
  info.schema = arrow::schema({arrow::field("id", arrow::int64())});
  info.stats.resize(1);
  info.result.files = {{"part-00000-u-c000.tfrecord.zz", 3, 120}};
  info.result.rows = 3;
  info.result.bytes = 120;
  info.extra_json = R"({"seed": 7})";
  ASSERT_OK_AND_ASSIGN(auto text, BuildManifestJson(info));
  json m = json::parse(text);
  EXPECT_EQ(m["compression"], "zlib");
  EXPECT_EQ(m["record_type"], "sequence_example");
  EXPECT_EQ(m["rows"], 3);
  EXPECT_EQ(m["bytes"], 120);
  EXPECT_EQ(m["files"][0],
            json::parse(
                R"({"name": "part-00000-u-c000.tfrecord.zz", "rows": 3, "bytes": 120})"));
  EXPECT_EQ(m["job"]["seed"], 7);
  // Pretty-printed.
  EXPECT_NE(text.find("\n  \"format\": \"tfrecord\""), std::string::npos) << text;

  info.extra_json = "not json";
  auto bad = BuildManifestJson(info);
  ASSERT_TRUE(bad.status().IsInvalid());
  EXPECT_NE(bad.status().message().find("extra_manifest_json"), std::string::npos);
}

class ReadManifestSchemaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(DLPREP_TEST_TMPDIR) + "/manifest-" + RandomUuid();
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST_F(ReadManifestSchemaTest, RoundTripsExactTypesAndMetadata) {
  ManifestInfo info;
  info.options.format = OutputFormat::kParquet;
  info.schema = arrow::schema(
      {arrow::field("t", arrow::timestamp(arrow::TimeUnit::NANO, "Europe/Paris")),
       WithShape(arrow::field("x", arrow::fixed_size_list(arrow::float32(), 6), false),
                 "[2,3]"),
       arrow::field("s", arrow::large_utf8())});
  ASSERT_OK_AND_ASSIGN(auto text, BuildManifestJson(info));
  std::ofstream(dir_ + "/_manifest.json") << text;
  ASSERT_OK_AND_ASSIGN(auto schema, ReadManifestSchema(dir_));
  EXPECT_TRUE(schema->Equals(*info.schema, /*check_metadata=*/true))
      << schema->ToString();
}

TEST_F(ReadManifestSchemaTest, ErrorsNameTheFile) {
  auto missing = ReadManifestSchema(dir_);
  ASSERT_TRUE(missing.status().IsIOError());
  EXPECT_NE(missing.status().message().find(dir_ + "/_manifest.json"), std::string::npos);
  std::ofstream(dir_ + "/_manifest.json") << R"({"rows": 1})";
  auto no_schema = ReadManifestSchema(dir_);
  ASSERT_TRUE(no_schema.status().IsInvalid());
  EXPECT_NE(no_schema.status().message().find("arrow_schema"), std::string::npos);
  EXPECT_NE(no_schema.status().message().find(dir_), std::string::npos);
  std::ofstream(dir_ + "/_manifest.json") << R"({"arrow_schema": "bm9wZQ=="})";
  auto garbage = ReadManifestSchema(dir_);
  ASSERT_TRUE(garbage.status().IsInvalid());
  EXPECT_NE(garbage.status().message().find("does not decode"), std::string::npos);
}

TEST_F(ReadManifestSchemaTest, ReadManifestFilesListsFilesRowsAndBytes) {
  ManifestInfo info;
  info.options.format = OutputFormat::kTfRecord;
  info.schema = arrow::schema({arrow::field("id", arrow::int64())});
  info.stats.resize(1);
  info.result.files = {{"part-00000-u-c000.tfrecord", 3, 120}, {"part-00001-u-c000.tfrecord", 2, 80}};
  info.result.rows = 5;
  info.result.bytes = 200;
  ASSERT_OK_AND_ASSIGN(auto text, BuildManifestJson(info));
  std::ofstream(dir_ + "/_manifest.json") << text;
  ASSERT_OK_AND_ASSIGN(WriteResult listed, ReadManifestFiles(dir_));
  EXPECT_EQ(listed.rows, 5);
  EXPECT_EQ(listed.bytes, 200);
  ASSERT_EQ(listed.files.size(), 2u);
  EXPECT_EQ(listed.files[1].name, "part-00001-u-c000.tfrecord");
  EXPECT_EQ(listed.files[1].rows, 2);
  EXPECT_EQ(listed.files[1].bytes, 80);
}

TEST_F(ReadManifestSchemaTest, ReadManifestFilesErrorsNameTheFileAndEntry) {
  auto missing = ReadManifestFiles(dir_);
  ASSERT_TRUE(missing.status().IsIOError());
  EXPECT_NE(missing.status().message().find(dir_ + "/_manifest.json"), std::string::npos);
  auto expect_invalid = [&](const std::string& text, const std::string& what) {
    std::ofstream(dir_ + "/_manifest.json", std::ios::trunc) << text;
    auto r = ReadManifestFiles(dir_);
    ASSERT_TRUE(r.status().IsInvalid()) << text;
    EXPECT_NE(r.status().message().find(dir_ + "/_manifest.json"), std::string::npos)
        << r.status().ToString();
    EXPECT_NE(r.status().message().find(what), std::string::npos) << r.status().ToString();
  };
  expect_invalid("[1, 2]", "not a JSON object");
  expect_invalid(R"({"rows": 1, "bytes": 2})", "\"files\"");
  expect_invalid(R"({"rows": 1, "bytes": 2, "files": [{"name": "a", "rows": "x", "bytes": 1}]})",
                 "\"files\" entry 0");
  expect_invalid(R"({"rows": -1, "bytes": 2, "files": []})", "\"rows\"");
  expect_invalid(R"({"rows": 1, "bytes": 2, "files": [{"name": "../a", "rows": 1, "bytes": 1}]})",
                 "\"files\" entry 0");
}

}  // namespace
}  // namespace dlprep::io
