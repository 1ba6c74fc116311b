#include "infer/http/codec.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <arrow/api.h>
#include <gtest/gtest.h>

namespace dlprep::http {
namespace {

std::shared_ptr<arrow::Array> Floats(const std::vector<std::vector<float>>& rows,
                                     const std::vector<bool>& valid = {}) {
  arrow::ListBuilder b(arrow::default_memory_pool(),
                       std::make_shared<arrow::FloatBuilder>());
  auto* vb = static_cast<arrow::FloatBuilder*>(b.value_builder());
  for (size_t r = 0; r < rows.size(); ++r) {
    if (!valid.empty() && !valid[r]) {
      EXPECT_TRUE(b.AppendNull().ok());
      continue;
    }
    EXPECT_TRUE(b.Append().ok());
    for (float v : rows[r]) EXPECT_TRUE(vb->Append(v).ok());
  }
  return b.Finish().ValueOrDie();
}

std::shared_ptr<arrow::Array> Ints(const std::vector<int64_t>& v) {
  arrow::Int64Builder b;
  EXPECT_TRUE(b.AppendValues(v).ok());
  return b.Finish().ValueOrDie();
}

std::shared_ptr<arrow::Array> Strings(const std::vector<std::string>& v) {
  arrow::StringBuilder b;
  EXPECT_TRUE(b.AppendValues(v).ok());
  return b.Finish().ValueOrDie();
}

std::shared_ptr<arrow::Field> ListField(const std::string& name,
                                        const std::string& shape) {
  auto f = arrow::field(name, arrow::list(arrow::float32()));
  if (!shape.empty()) {
    f = f->WithMetadata(arrow::key_value_metadata({"dlprep.shape"}, {shape}));
  }
  return f;
}

std::shared_ptr<arrow::RecordBatch> Batch(std::shared_ptr<arrow::Array> features,
                                          const std::string& shape = "") {
  auto schema =
      arrow::schema({arrow::field("id", arrow::int64()), ListField("features", shape),
                     arrow::field("text", arrow::utf8())});
  const int64_t n = features->length();
  std::vector<int64_t> ids;
  std::vector<std::string> texts;
  for (int64_t i = 0; i < n; ++i) {
    ids.push_back(i);
    texts.push_back(i == 0 ? "a\"b\\c\n" : "x" + std::to_string(i));
  }
  return arrow::RecordBatch::Make(schema, n, {Ints(ids), features, Strings(texts)});
}

std::string EncodeAll(Protocol p, const std::vector<std::string>& columns,
                      const arrow::RecordBatch& batch, RowErrors* errors = nullptr) {
  auto enc = RequestEncoder::Make(p, columns, *batch.schema());
  EXPECT_TRUE(enc.ok()) << enc.status().ToString();
  std::vector<int64_t> ok;
  RowErrors local;
  EXPECT_TRUE((*enc)->Prepare(batch, &ok, errors ? errors : &local).ok());
  std::string body;
  (*enc)->Encode(ok.data(), static_cast<int64_t>(ok.size()), &body);
  return body;
}

TEST(CodecTest, KServeV2Request) {
  auto batch = Batch(Floats({{1, 2}, {0.5f, -1}, {3, 0.1f}}));
  EXPECT_EQ(
      EncodeAll(Protocol::kKServeV2, {"id", "features", "text"}, *batch),
      R"({"inputs":[{"name":"id","shape":[3],"datatype":"INT64","data":[0,1,2]},)"
      R"({"name":"features","shape":[3,2],"datatype":"FP32","data":[1,2,0.5,-1,3,0.1]},)"
      R"({"name":"text","shape":[3],"datatype":"BYTES","data":["a\"b\\c\n","x1","x2"]}]})");
}

TEST(CodecTest, KServeV2UsesDlprepShape) {
  auto batch = Batch(Floats({{1, 2, 3, 4}, {5, 6, 7, 8}}), "[2,2]");
  EXPECT_EQ(EncodeAll(Protocol::kKServeV2, {"features"}, *batch),
            R"({"inputs":[{"name":"features","shape":[2,2,2],"datatype":"FP32",)"
            R"("data":[1,2,3,4,5,6,7,8]}]})");
}

TEST(CodecTest, TfServingRequestNestsByShape) {
  auto batch = Batch(Floats({{1, 2, 3, 4}, {5, 6, 7, 8}}), "[2,2]");
  EXPECT_EQ(EncodeAll(Protocol::kTfServing, {"features"}, *batch),
            R"({"instances":[[[1,2],[3,4]],[[5,6],[7,8]]]})");
  EXPECT_EQ(EncodeAll(Protocol::kTfServing, {"id", "text"}, *batch),
            R"({"instances":[{"id":0,"text":"a\"b\\c\n"},{"id":1,"text":"x1"}]})");
}

TEST(CodecTest, RecordsRequestIsFlatLikePandas) {
  auto batch = Batch(Floats({{1, 2, 3, 4}, {5, 6, 7, 8}}), "[2,2]");
  EXPECT_EQ(EncodeAll(Protocol::kRecords, {"id", "features"}, *batch),
            R"([{"id":0,"features":[1,2,3,4]},{"id":1,"features":[5,6,7,8]}])");
}

TEST(CodecTest, BadRowsFailAloneAndTheRestIsSent) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto batch = Batch(Floats({{1, 2}, {nan, 1}, {3, 4}, {}, {5, 6, 7}, {8, 9}},
                            {true, true, true, false, true, true}));
  RowErrors errors;
  std::string body = EncodeAll(Protocol::kKServeV2, {"id", "features"}, *batch, &errors);
  ASSERT_EQ(errors.rows, (std::vector<int64_t>{1, 3, 4}));
  EXPECT_NE(errors.messages[0].find("NaN or infinity at position 0"), std::string::npos);
  EXPECT_NE(errors.messages[1].find("is null"), std::string::npos);
  EXPECT_NE(errors.messages[2].find("has 3 values where the batch's first row has 2"),
            std::string::npos)
      << errors.messages[2];
  EXPECT_EQ(
      body,
      R"({"inputs":[{"name":"id","shape":[3],"datatype":"INT64","data":[0,2,5]},)"
      R"({"name":"features","shape":[3,2],"datatype":"FP32","data":[1,2,3,4,8,9]}]})");

  // tfserving and records write a null row as null; ragged lists are fine there.
  RowErrors rec_errors;
  body = EncodeAll(Protocol::kRecords, {"features"}, *batch, &rec_errors);
  EXPECT_EQ(rec_errors.rows, (std::vector<int64_t>{1}));
  EXPECT_EQ(body, R"([{"features":[1,2]},{"features":[3,4]},{"features":null},)"
                  R"({"features":[5,6,7]},{"features":[8,9]}])");
}

TEST(CodecTest, ShapeMismatchAndNullElementsFailTheRow) {
  arrow::ListBuilder b(arrow::default_memory_pool(),
                       std::make_shared<arrow::FloatBuilder>());
  auto* vb = static_cast<arrow::FloatBuilder*>(b.value_builder());
  ASSERT_TRUE(b.Append().ok());
  ASSERT_TRUE(vb->AppendValues({1.f, 2.f}).ok());
  ASSERT_TRUE(b.Append().ok());
  ASSERT_TRUE(vb->Append(1.f).ok());
  ASSERT_TRUE(vb->AppendNull().ok());
  ASSERT_TRUE(b.Append().ok());
  ASSERT_TRUE(vb->Append(1.f).ok());
  auto batch = Batch(b.Finish().ValueOrDie(), "[2]");
  RowErrors errors;
  std::string body = EncodeAll(Protocol::kTfServing, {"features"}, *batch, &errors);
  ASSERT_EQ(errors.rows, (std::vector<int64_t>{1, 2}));
  EXPECT_NE(errors.messages[0].find("null at position 1"), std::string::npos);
  EXPECT_NE(errors.messages[1].find("dlprep.shape [2] needs 2"), std::string::npos);
  EXPECT_EQ(body, R"({"instances":[[1,2]]})");
}

TEST(CodecTest, RejectsMissingAndUnsupportedColumns) {
  auto schema = arrow::schema({arrow::field("b", arrow::binary()),
                               arrow::field("l", arrow::list(arrow::utf8()))});
  auto missing = RequestEncoder::Make(Protocol::kKServeV2, {"x"}, *schema);
  EXPECT_TRUE(missing.status().IsTypeError());
  EXPECT_NE(missing.status().message().find("no column 'x'"), std::string::npos);
  EXPECT_TRUE(
      RequestEncoder::Make(Protocol::kKServeV2, {"b"}, *schema).status().IsTypeError());
  EXPECT_TRUE(
      RequestEncoder::Make(Protocol::kKServeV2, {"l"}, *schema).status().IsTypeError());
  EXPECT_TRUE(
      RequestEncoder::Make(Protocol::kKServeV2, {}, *schema).status().IsInvalid());
}

TEST(CodecTest, ParsesOutputSpecs) {
  auto s = ParseOutputSpec("score");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->ToString(), "score:float32");
  EXPECT_EQ(s->field()->type()->ToString(), "float");
  s = ParseOutputSpec("emb:float64[4,2]");
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->is_list);
  EXPECT_EQ(s->shape, (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(s->field()->metadata()->Get("dlprep.shape").ValueOrDie(), "[4,2]");
  EXPECT_EQ(ParseOutputSpec("l:string[]")->ToString(), "l:string[]");
  for (const char* bad : {"", ":float32", "x:float16", "x:float32[", "x:int64[0]",
                          "x:int64[a]",
                          // The product of the dimensions overflows int64 (to 0).
                          "x:float32[4611686018427387904,4]"}) {
    EXPECT_TRUE(ParseOutputSpec(bad).status().IsInvalid()) << bad;
  }
}

std::vector<OutputSpec> Specs(const std::vector<std::string>& texts) {
  std::vector<OutputSpec> out;
  for (const auto& t : texts) out.push_back(*ParseOutputSpec(t));
  return out;
}

TEST(CodecTest, DecodesKServeV2Outputs) {
  ResponseDecoder d(Protocol::kKServeV2, Specs({"score:float64", "pair:float32[2]"}));
  std::vector<DecodedColumn> out;
  ASSERT_TRUE(d.Decode(R"({"model_name":"m","outputs":[
      {"name":"pair","shape":[2,2],"datatype":"FP32","data":[1,2,3,4]},
      {"name":"score","shape":[2],"datatype":"FP64","data":[0.25,-1e3]}]})",
                       2, &out)
                  .ok());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].doubles, (std::vector<double>{0.25, -1000}));
  EXPECT_EQ(out[1].doubles, (std::vector<double>{1, 2, 3, 4}));
  EXPECT_EQ(out[1].offsets, (std::vector<int64_t>{0, 2, 4}));

  // Nested data is flattened; one declared output takes the only one, whatever its name.
  ResponseDecoder one(Protocol::kKServeV2, Specs({"y:int64[]"}));
  ASSERT_TRUE(one.Decode(R"({"outputs":[{"name":"out0","shape":[2,3],"datatype":"INT64",
      "data":[[1,2,3],[4,5,6]]}]})",
                         2, &out)
                  .ok());
  EXPECT_EQ(out[0].ints, (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(out[0].offsets, (std::vector<int64_t>{0, 3, 6}));
}

void ExpectError(ResponseDecoder* d, const std::string& body, int64_t n,
                 const std::string& needle) {
  std::vector<DecodedColumn> out;
  arrow::Status st = d->Decode(body, n, &out);
  EXPECT_TRUE(st.IsInvalid()) << body;
  EXPECT_NE(st.message().find(needle), std::string::npos) << st.message();
  EXPECT_TRUE(out.empty());  // nothing kept from a bad response
}

TEST(CodecTest, KServeV2ResponseErrors) {
  ResponseDecoder d(Protocol::kKServeV2, Specs({"score", "pair:float32[]"}));
  ExpectError(&d,
              R"({"outputs":[{"name":"score","shape":[2],"data":[1,2]},)"
              R"({"name":"pair","shape":[2,1],"data":[1,2]}]})",
              3, "wrong number of rows");
  ExpectError(&d, R"({"outputs":[{"name":"score","shape":[2],"data":[1,2]}]})", 2,
              "no output 'pair'");
  ExpectError(&d,
              R"({"outputs":[{"name":"score","shape":[2],"data":[1]},)"
              R"({"name":"pair","shape":[2,1],"data":[1,2]}]})",
              2, "has 1 values; its shape [2] needs 2");
  ExpectError(&d,
              R"({"outputs":[{"name":"score","shape":[2,2],"data":[1,2,3,4]},)"
              R"({"name":"pair","shape":[2,1],"data":[1,2]}]})",
              2, "a scalar output needs 1");
  ExpectError(&d,
              R"({"outputs":[{"name":"score","shape":[2],"data":["a","b"]},)"
              R"({"name":"pair","shape":[2,1],"data":[1,2]}]})",
              2, "expected a number, got a string");
  ExpectError(&d, R"({"outputs": [{"name": "score", "data": [1, 2)", 2, "not valid JSON");
  ExpectError(&d, R"({"error":"model failed"})", 2, "no \"outputs\" array");
  ExpectError(&d, R"([1,2])", 2, "expected an object");
}

// Outputs whose lists are all empty have no values at all: the arrays are empty lists.
TEST(CodecTest, ListOutputsWithNoValuesAtAll) {
  for (const auto& [protocol, body] :
       std::vector<std::pair<Protocol, std::string>>{
           {Protocol::kTfServing, R"({"predictions":[[ ]]})"},
           {Protocol::kRecords, R"([[]])"}}) {
    for (const char* spec : {"y:int64[]", "y:float64[]", "y:float32[]", "y:string[]"}) {
      const auto specs = Specs({spec});
      ResponseDecoder d(protocol, specs);
      std::vector<DecodedColumn> out;
      ASSERT_TRUE(d.Decode(body, 1, &out).ok()) << body << " " << spec;
      auto arrays = BuildOutputArrays(specs, {&out});
      ASSERT_TRUE(arrays.ok()) << arrays.status().ToString();
      ASSERT_EQ((*arrays)[0]->length(), 1);
      ASSERT_TRUE((*arrays)[0]->ValidateFull().ok());
      const auto& list = static_cast<const arrow::ListArray&>(*(*arrays)[0]);
      EXPECT_EQ(list.value_length(0), 0) << spec;
      EXPECT_FALSE(list.IsNull(0)) << spec;
    }
  }
}

TEST(CodecTest, DecodesTfServingPredictions) {
  ResponseDecoder d(Protocol::kTfServing, Specs({"score:float64"}));
  std::vector<DecodedColumn> out;
  ASSERT_TRUE(d.Decode(R"({"predictions":[0.5,[1.5],-2,{"score":7}]})", 4, &out).ok());
  EXPECT_EQ(out[0].doubles, (std::vector<double>{0.5, 1.5, -2, 7}));
  EXPECT_EQ(out[0].rows, 4);
  ExpectError(&d, R"({"predictions":[0.5,1.5]})", 3, "wrong number of rows");
  ExpectError(&d, R"({"outputs":[]})", 3, "no \"predictions\"");
  ExpectError(&d, R"({"predictions":[[1,2]]})", 1, "a scalar output needs 1");

  ResponseDecoder two(Protocol::kTfServing, Specs({"a:int64", "b:string"}));
  ASSERT_TRUE(
      two.Decode(R"({"predictions":[{"a":1,"b":"x"},{"b":"y","a":2.0}]})", 2, &out).ok());
  EXPECT_EQ(out[0].ints, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(out[1].strings, (std::vector<std::string>{"x", "y"}));
  ExpectError(&two, R"({"predictions":[{"a":1}]})", 1, "no output 'b'");
  ExpectError(&two, R"({"predictions":[1]})", 1, "must be an object");
  ExpectError(&two, R"({"predictions":[{"a":1.5,"b":"x"}]})", 1, "expected an integer");
}

TEST(CodecTest, DecodesRecords) {
  ResponseDecoder d(Protocol::kRecords, Specs({"label:string", "p:float32[]"}));
  std::vector<DecodedColumn> out;
  ASSERT_TRUE(d.Decode(R"([{"label":"cat","p":[0.9,0.1]},{"label":"dog","p":[]},)"
                       R"({"label":"","p":[1]}])",
                       3, &out)
                  .ok());
  EXPECT_EQ(out[0].strings, (std::vector<std::string>{"cat", "dog", ""}));
  EXPECT_EQ(out[0].rows, 3);
  EXPECT_EQ(out[1].offsets, (std::vector<int64_t>{0, 2, 2, 3}));
  EXPECT_EQ(out[1].rows, 3);
  ExpectError(&d, R"({"label":"cat"})", 1, "expected an array with one entry per row");
  ExpectError(&d, R"([{"label":"cat","p":[1]},{"label":"cat","p":[1]}])", 1,
              "wrong number of rows: the response has 2 entries for a request of 1 rows");
}

TEST(CodecTest, BuildsArraysAcrossResponses) {
  auto specs = Specs({"s:float32", "l:int64[]"});
  ResponseDecoder d(Protocol::kRecords, specs);
  std::vector<DecodedColumn> a, b;
  ASSERT_TRUE(d.Decode(R"([{"s":0.1,"l":[1,2]},{"s":-3,"l":[3]}])", 2, &a).ok());
  ASSERT_TRUE(d.Decode(R"([{"s":2.5,"l":[]}])", 1, &b).ok());
  auto arrays = BuildOutputArrays(specs, {&a, &b});
  ASSERT_TRUE(arrays.ok()) << arrays.status().ToString();
  const auto& s = static_cast<const arrow::FloatArray&>(*(*arrays)[0]);
  ASSERT_EQ(s.length(), 3);
  EXPECT_EQ(s.null_count(), 0);
  EXPECT_EQ(s.Value(0), 0.1f);
  EXPECT_EQ(s.Value(1), -3.0f);
  EXPECT_EQ(s.Value(2), 2.5f);
  const auto& l = static_cast<const arrow::ListArray&>(*(*arrays)[1]);
  ASSERT_TRUE(l.ValidateFull().ok());
  EXPECT_EQ(l.null_count(), 0);
  EXPECT_EQ(l.value_length(0), 2);
  EXPECT_EQ(l.value_length(1), 1);
  EXPECT_EQ(l.value_length(2), 0);
  const auto& lv = static_cast<const arrow::Int64Array&>(*l.values());
  EXPECT_EQ(lv.Value(0), 1);
  EXPECT_EQ(lv.Value(2), 3);
}

// Hostile responses (from a fuzzing probe): a value that is no score must never become
// one. Each is an Invalid status for the whole response (its rows fail), naming the
// output and what was expected.
TEST(CodecTest, KServeV2RefusesValuesThatAreNoScores) {
  ResponseDecoder d(Protocol::kKServeV2, Specs({"score"}));
  // Beyond float32's range: would become +inf.
  ExpectError(&d, R"({"outputs":[{"name":"score","shape":[2],"data":[0.5,1e39]}]})", 2,
              "output 'score', row 1: 1e+39 is out of the range of float32");
  ExpectError(&d, R"({"outputs":[{"name":"score","shape":[2],"data":[-3.5e38,0.5]}]})", 2,
              "output 'score', row 0: -3.5e+38 is out of the range of float32");
  // A bool is no number (was 1.0), null no score (was a null row).
  ExpectError(&d, R"({"outputs":[{"name":"score","shape":[2],"data":[0.5,true]}]})", 2,
              "output 'score', row 1: expected a number, got a bool");
  ExpectError(&d, R"({"outputs":[{"name":"score","shape":[2],"data":[null,0.5]}]})", 2,
              "output 'score', row 0: expected a number, got null");
  // A shape whose product overflows int64: 8 x (2^61 + 1) wraps around to 8.
  ExpectError(&d,
              R"({"outputs":[{"name":"score","shape":[8,2305843009213693953],)"
              R"("data":[1,2,3,4,5,6,7,8]}]})",
              8, "output 'score': shape [8,2305843009213693953] holds more values");
  // Duplicate keys: which one is meant is ambiguous.
  ExpectError(&d,
              R"({"outputs":[{"name":"score","shape":[1],"data":[1]}],)"
              R"("outputs":[{"name":"score","shape":[1],"data":[2]}]})",
              1, "the response has the key \"outputs\" twice");
  ExpectError(&d, R"({"outputs":[{"name":"score","shape":[1],"data":[1],"data":[2]}]})",
              1, "output entry 0 of \"outputs\" has the key \"data\" twice");
  ExpectError(&d,
              R"({"outputs":[{"name":"score","shape":[1],"data":[1]},)"
              R"({"name":"score","shape":[1],"data":[2]}]})",
              1, "the response has 2 outputs named 'score'");

  // In range: float32's largest, float64 and int64 outputs are unaffected.
  std::vector<DecodedColumn> out;
  ASSERT_TRUE(
      d.Decode(R"({"outputs":[{"name":"score","shape":[1],"data":[3.4028234e38]}]})", 1,
               &out)
          .ok());
  EXPECT_EQ(static_cast<float>(out[0].doubles[0]), std::numeric_limits<float>::max());
  ResponseDecoder wide(Protocol::kKServeV2, Specs({"score:float64", "n:int64"}));
  ASSERT_TRUE(wide.Decode(R"({"outputs":[{"name":"score","shape":[1],"data":[1e39]},)"
                          R"({"name":"n","shape":[1],"data":[-7]}]})",
                          1, &out)
                  .ok());
  EXPECT_EQ(out[0].doubles, (std::vector<double>{1e39}));
  EXPECT_EQ(out[1].ints, (std::vector<int64_t>{-7}));
  ExpectError(&wide,
              R"({"outputs":[{"name":"score","shape":[1],"data":[1]},)"
              R"({"name":"n","shape":[1],"data":[true]}]})",
              1, "output 'n', row 0: expected a number, got a bool");
  // Beyond float64's range JSON itself is refused by the parser.
  ExpectError(&wide,
              R"({"outputs":[{"name":"score","shape":[1],"data":[1e400]},)"
              R"({"name":"n","shape":[1],"data":[1]}]})",
              1, "not valid JSON");
}

TEST(CodecTest, TfServingRefusesValuesThatAreNoScores) {
  ResponseDecoder d(Protocol::kTfServing, Specs({"score"}));
  ExpectError(&d, R"({"predictions":[0.5,1e39]})", 2,
              "output 'score', row 1: 1e+39 is out of the range of float32");
  ExpectError(&d, R"({"predictions":[[true],0.5]})", 2,
              "output 'score', row 0: expected a number, got a bool");
  ExpectError(&d, R"({"predictions":[0.5,null]})", 2,
              "output 'score', row 1: expected a number, got null");
  ExpectError(&d, R"({"predictions":[0.5],"predictions":[0.25]})", 1,
              "the response has the key \"predictions\" twice");
  ExpectError(&d, R"({"predictions":[{"score":0.5,"score":0.25}]})", 1,
              "row 0 has the key \"score\" twice");

  ResponseDecoder labels(Protocol::kTfServing, Specs({"label:string"}));
  ExpectError(&labels, R"({"predictions":["cat",null]})", 2,
              "output 'label', row 1: expected a string, got null");
}

TEST(CodecTest, RecordsRefuseValuesThatAreNoScores) {
  ResponseDecoder d(Protocol::kRecords, Specs({"score", "emb:float32[]"}));
  ExpectError(&d, R"([{"score":1e39,"emb":[1]}])", 1,
              "output 'score', row 0: 1e+39 is out of the range of float32");
  ExpectError(&d, R"([{"score":1,"emb":[1,-1e39]}])", 1,
              "output 'emb', row 0: -1e+39 is out of the range of float32");
  ExpectError(&d, R"([{"score":1,"emb":[1]},{"score":false,"emb":[1]}])", 2,
              "output 'score', row 1: expected a number, got a bool");
  ExpectError(&d, R"([{"score":null,"emb":[1]}])", 1,
              "output 'score', row 0: expected a number, got null");
  ExpectError(&d, R"([{"score":1,"emb":null}])", 1,
              "output 'emb', row 0: expected a list of numbers, got null");
  ExpectError(&d, R"([{"score":1,"emb":[1],"score":2}])", 1,
              "row 0 has the key \"score\" twice");
}

// Responses of tests/fuzz/corpus/http_response_* (see its README): each is an error
// whatever the number of rows asked for, never a score.
TEST(CodecTest, CorpusSeedsAreErrors) {
  const std::pair<const char*, Protocol> folders[] = {
      {"http_response_kserve", Protocol::kKServeV2},
      {"http_response_tfserving", Protocol::kTfServing},
      {"http_response_records", Protocol::kRecords}};
  int seen = 0;
  for (const auto& [folder, protocol] : folders) {
    ResponseDecoder d(protocol, Specs({"score"}));
    for (const auto& entry : std::filesystem::directory_iterator(
             std::string(DLPREP_FUZZ_CORPUS) + "/" + folder)) {
      // Well-formed responses (fuzzer starting points, and findings that must decode);
      // the fuzz_replay.http_response_* tests run them.
      const std::string name = entry.path().filename().string();
      if (name.rfind("seed_", 0) == 0 || name.rfind("ok_", 0) == 0) continue;
      std::ifstream in(entry.path(), std::ios::binary);
      const std::string body((std::istreambuf_iterator<char>(in)), {});
      for (int64_t n = 1; n <= 8; ++n) {
        std::vector<DecodedColumn> out;
        arrow::Status st = d.Decode(body, n, &out);
        EXPECT_TRUE(st.IsInvalid()) << entry.path() << " n=" << n;
        EXPECT_TRUE(out.empty());
      }
      ++seen;
    }
  }
  EXPECT_GE(seen, 16);
}

}  // namespace
}  // namespace dlprep::http
