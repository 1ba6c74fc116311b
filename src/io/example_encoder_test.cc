#include <string>
#include <vector>

#include <arrow/api.h>
#include <gtest/gtest.h>

#include "io/crc32c.h"
#include "io/tfrecord.h"
#include "io/tfrecord_test_util.h"

namespace dlprep::io {
namespace {

using testing::FromHex;
using testing::Json;
using testing::ToHex;

// Expected bytes from TensorFlow 2.19:
// tf.train.Example(...).SerializeToString(deterministic=True), built from the same
// values as ExampleBatch() (SequenceExample: as in the test below), features omitted
// where the Arrow value is null.
const char* kTfExamples[] = {
    "0aa2010a100a075a5f757070657212051a030a01010a0e0a05615f696e7412051a030a01070a130a0762"
    "5f666c6f6174120812060a040000c03f0a120a05635f73747212090a070a0568656c6c6f0a250a06645f"
    "696e7473121b1a190a1701feffffffffffffffff01ac02808080808080808080010a180a08655f666c6f"
    "617473120c120a0a080000003f000000400a140a07665f627974657312090a070a0200ff0a0178",
    "0a8b010a100a075a5f757070657212051a030a01020a170a05615f696e74120e1a0c0a0afdffffffffff"
    "ffffff010a130a07625f666c6f6174120812060a04000080be0a1c0a05635f73747212130a110a0fc3bc"
    "6ec3af63c3b864c3a920e29c930a0c0a06645f696e747312021a000a0e0a08655f666c6f617473120212"
    "000a0d0a07665f627974657312020a00",
    "0a4c0a100a075a5f757070657212051a030a01030a130a07625f666c6f6174120812060a04000040400a"
    "0d0a05635f73747212040a020a000a140a08655f666c6f617473120812060a04f9021550",
};
const char* kTfSequenceExamples[] = {
    "0a1c0a0b0a02696412051a030a01050a0d0a046e616d6512050a030a017812400a220a066672616d6573"
    "12180a0c120a0a080000803f000000400a0812060a04000040400a1a0a03746f6b12130a051a030a0101"
    "0a021a000a061a040a020203",
    "0a0d0a0b0a02696412051a030a010612250a0a0a066672616d657312000a170a03746f6b12100a0e1a0c"
    "0a0affffffffffffffffff01",
};

std::shared_ptr<arrow::RecordBatch> ExampleBatch() {
  // Columns deliberately not in name order; 'Z_upper' sorts first (byte order).
  auto schema = arrow::schema({
      arrow::field("c_str", arrow::utf8()),
      arrow::field("a_int", arrow::int64()),
      arrow::field("b_float", arrow::float32()),
      arrow::field("d_ints", arrow::list(arrow::int64())),
      arrow::field("e_floats", arrow::list(arrow::float32())),
      arrow::field("f_bytes", arrow::list(arrow::binary())),
      arrow::field("Z_upper", arrow::int64()),
  });
  return arrow::RecordBatch::Make(
      schema, 3,
      {Json(arrow::utf8(), R"(["hello", "ünïcødé ✓", ""])"),
       Json(arrow::int64(), "[7, -3, null]"), Json(arrow::float32(), "[1.5, -0.25, 3.0]"),
       Json(arrow::list(arrow::int64()), "[[1, -2, 300, -9223372036854775808], [], null]"),
       Json(arrow::list(arrow::float32()), "[[0.5, 2.0], [], [1e10]]"),
       Json(arrow::list(arrow::binary()), R"([["\u0000\u00ff", "x"], [], null])"),
       Json(arrow::int64(), "[1, 2, 3]")});
}

TEST(ExampleEncoder, BytesEqualTensorFlow) {
  auto batch = ExampleBatch();
  // JSON "\u00ff" in a binary column is UTF-8 (c3 bf); patch row 0 to the raw bytes 00 ff.
  arrow::BinaryBuilder values;
  ASSERT_TRUE(values.Append(std::string("\x00\xff", 2)).ok());
  ASSERT_TRUE(values.Append("x").ok());
  auto vals = values.Finish().ValueOrDie();
  auto offsets = Json(arrow::int32(), "[0, 2, 2, 2]");
  auto validity = Json(arrow::boolean(), "[true, true, false]");
  auto list = arrow::ListArray::FromArrays(*offsets, *vals).ValueOrDie();
  auto fixed = std::make_shared<arrow::ListArray>(
      list->type(), 3, list->value_offsets(), vals,
      std::static_pointer_cast<arrow::BooleanArray>(validity)->values(), 1);
  batch = batch->SetColumn(5, batch->schema()->field(5), fixed).ValueOrDie();

  auto enc = ExampleEncoder::Make(batch->schema(), RecordType::kExample).ValueOrDie();
  for (int r = 0; r < 3; ++r) {
    std::string out;
    ASSERT_TRUE(enc->EncodeRow(*batch, r, &out).ok());
    EXPECT_EQ(ToHex(out), kTfExamples[r]) << "row " << r;
  }
}

TEST(ExampleEncoder, SequenceExampleBytesEqualTensorFlow) {
  auto schema = arrow::schema({
      arrow::field("tok", arrow::list(arrow::list(arrow::int64()))),
      arrow::field("id", arrow::int64()),
      arrow::field("frames", arrow::list(arrow::list(arrow::float32()))),
      arrow::field("name", arrow::binary()),
  });
  auto batch = arrow::RecordBatch::Make(
      schema, 2,
      {Json(schema->field(0)->type(), "[[[1], [], [2, 3]], [[-1]]]"),
       Json(arrow::int64(), "[5, 6]"),
       Json(schema->field(2)->type(), "[[[1, 2], [3]], []]"),
       Json(arrow::binary(), R"(["x", null])")});
  auto enc = ExampleEncoder::Make(schema, RecordType::kSequenceExample).ValueOrDie();
  for (int r = 0; r < 2; ++r) {
    std::string out;
    ASSERT_TRUE(enc->EncodeRow(*batch, r, &out).ok());
    EXPECT_EQ(ToHex(out), kTfSequenceExamples[r]) << "row " << r;
  }
}

TEST(ExampleEncoder, EmptyPackedListsSerializeAsZeroLength) {
  auto schema = arrow::schema({arrow::field("f", arrow::list(arrow::float32()))});
  auto batch = arrow::RecordBatch::Make(schema, 1, {Json(schema->field(0)->type(), "[[]]")});
  auto enc = ExampleEncoder::Make(schema, RecordType::kExample).ValueOrDie();
  std::string out;
  ASSERT_TRUE(enc->EncodeRow(*batch, 0, &out).ok());
  // Example{features{feature{key "f" value{float_list{}}}}}: Feature = 12 00.
  EXPECT_EQ(ToHex(out), "0a090a070a016612021200");
}

TEST(ExampleEncoder, FramedEqualsRowsWithCrc) {
  auto batch = ExampleBatch();
  auto enc = ExampleEncoder::Make(batch->schema(), RecordType::kExample).ValueOrDie();
  std::string framed;
  ASSERT_TRUE(enc->EncodeFramed(*batch, 1, 2, &framed).ok());
  std::string expected;
  for (int r = 1; r < 3; ++r) {
    std::string msg;
    ASSERT_TRUE(enc->EncodeRow(*batch, r, &msg).ok());
    char hdr[12];
    uint64_t n = msg.size();
    std::memcpy(hdr, &n, 8);
    uint32_t c = MaskCrc(Crc32c(hdr, 8));
    std::memcpy(hdr + 8, &c, 4);
    expected.append(hdr, 12);
    expected += msg;
    c = MaskCrc(Crc32c(msg.data(), msg.size()));
    expected.append(reinterpret_cast<const char*>(&c), 4);
  }
  EXPECT_EQ(ToHex(framed), ToHex(expected));
  // Appends, never overwrites.
  ASSERT_TRUE(enc->EncodeFramed(*batch, 0, 1, &framed).ok());
  EXPECT_GT(framed.size(), expected.size());
  EXPECT_EQ(framed.substr(0, expected.size()), expected);
}

TEST(ExampleEncoder, SlicedBatchesEncodeLikeWholeOnes) {
  auto batch = ExampleBatch();
  auto enc = ExampleEncoder::Make(batch->schema(), RecordType::kExample).ValueOrDie();
  auto sliced = batch->Slice(1, 2);
  std::string a, b;
  ASSERT_TRUE(enc->EncodeRow(*sliced, 0, &a).ok());
  ASSERT_TRUE(enc->EncodeRow(*batch, 1, &b).ok());
  EXPECT_EQ(ToHex(a), ToHex(b));
  EXPECT_EQ(ToHex(a), kTfExamples[1]);
}

TEST(ExampleEncoder, RejectsUnsupportedTypesNamingTheColumn) {
  auto s1 = arrow::schema({arrow::field("h", arrow::float16())});
  auto r1 = ExampleEncoder::Make(s1, RecordType::kExample);
  ASSERT_FALSE(r1.ok());
  EXPECT_TRUE(r1.status().IsTypeError());
  EXPECT_TRUE(testing::Contains(r1.status(), "'h'"));
  EXPECT_TRUE(testing::Contains(r1.status(), "halffloat"));

  auto s2 = arrow::schema({arrow::field("st", arrow::struct_({arrow::field("x", arrow::int8())}))});
  EXPECT_ERROR_HAS(ExampleEncoder::Make(s2, RecordType::kExample).status(), "'st'");

  auto s3 = arrow::schema({arrow::field("ll", arrow::list(arrow::list(arrow::int64())))});
  auto r3 = ExampleEncoder::Make(s3, RecordType::kExample);
  EXPECT_TRUE(r3.status().IsTypeError());
  EXPECT_TRUE(testing::Contains(r3.status(), "'ll'"));
  EXPECT_TRUE(testing::Contains(r3.status(), "--record-type sequence_example"));
  EXPECT_TRUE(ExampleEncoder::Make(s3, RecordType::kSequenceExample).ok());
}

TEST(ExampleEncoder, Uint64AboveInt64MaxNamesColumnAndRow) {
  auto schema = arrow::schema({arrow::field("u", arrow::uint64())});
  auto batch = arrow::RecordBatch::Make(
      schema, 3, {Json(arrow::uint64(), "[1, 9223372036854775807, 9223372036854775808]")});
  auto enc = ExampleEncoder::Make(schema, RecordType::kExample).ValueOrDie();
  std::string out;
  ASSERT_TRUE(enc->EncodeFramed(*batch, 0, 2, &out).ok());
  auto st = enc->EncodeFramed(*batch, 0, 3, &out);
  EXPECT_TRUE(st.IsInvalid());
  EXPECT_TRUE(testing::Contains(st, "column 'u' row 2")) << st.ToString();
  EXPECT_TRUE(testing::Contains(st, "9223372036854775808")) << st.ToString();
}

TEST(ExampleEncoder, NullInsideListNamesColumnAndRow) {
  auto schema = arrow::schema({arrow::field("l", arrow::list(arrow::int32()))});
  auto batch = arrow::RecordBatch::Make(schema, 2,
                                        {Json(schema->field(0)->type(), "[[1], [2, null]]")});
  auto enc = ExampleEncoder::Make(schema, RecordType::kExample).ValueOrDie();
  std::string out;
  auto st = enc->EncodeFramed(*batch, 0, 2, &out);
  EXPECT_TRUE(testing::Contains(st, "column 'l' row 1")) << st.ToString();
  EXPECT_TRUE(testing::Contains(st, "null")) << st.ToString();
  ASSERT_TRUE(enc->EncodeFramed(*batch, 0, 1, &out).ok());

  auto sschema = arrow::schema({arrow::field("s", arrow::list(arrow::list(arrow::int64())))});
  auto sbatch = arrow::RecordBatch::Make(sschema, 1,
                                         {Json(sschema->field(0)->type(), "[[[1], null]]")});
  auto senc = ExampleEncoder::Make(sschema, RecordType::kSequenceExample).ValueOrDie();
  auto st2 = senc->EncodeFramed(*sbatch, 0, 1, &out);
  EXPECT_TRUE(testing::Contains(st2, "column 's' row 0: inner list 1 is null")) << st2.ToString();
}

TEST(ExampleEncoder, RejectsBatchOfAnotherSchemaAndBadRange) {
  auto batch = ExampleBatch();
  auto enc = ExampleEncoder::Make(arrow::schema({arrow::field("x", arrow::int64())}),
                                  RecordType::kExample)
                 .ValueOrDie();
  std::string out;
  EXPECT_ERROR_HAS(enc->EncodeFramed(*batch, 0, 1, &out), "differs from the encoder's schema");
  auto enc2 = ExampleEncoder::Make(batch->schema(), RecordType::kExample).ValueOrDie();
  EXPECT_ERROR_HAS(enc2->EncodeFramed(*batch, 2, 5, &out), "out of a batch of 3");
}

}  // namespace
}  // namespace dlprep::io
