// Fuzz target: tf.train.Example decoding (or SequenceExample, when built with
// DLPREP_FUZZ_SEQUENCE_EXAMPLE). The input is one serialized message. It is decoded
// as `dlprep convert` does: a schema inferred from it (InferExampleSchema and the
// incremental ExampleSchemaInferer must agree), then decoded with that schema; and
// decoded with a given schema whose columns cover every value kind. A record the
// inferer accepts must decode with its own schema, and every batch must be valid Arrow
// data (string columns UTF-8).

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <arrow/api.h>

#include "fuzz_util.h"
#include "io/tfrecord.h"

namespace {

using dlprep::RecordType;
using dlprep::fuzz::Fail;

#ifdef DLPREP_FUZZ_SEQUENCE_EXAMPLE
constexpr char kTarget[] = "sequence_example_decode";
constexpr RecordType kType = RecordType::kSequenceExample;
#else
constexpr char kTarget[] = "example_decode";
constexpr RecordType kType = RecordType::kExample;
#endif

// Columns named as the seeds name their features, one per value kind and shape.
std::shared_ptr<arrow::Schema> GivenSchema() {
  arrow::FieldVector fields = {
      arrow::field("id", arrow::int64()),
      arrow::field("name", arrow::utf8()),
      arrow::field("x", arrow::list(arrow::int64())),
      arrow::field("y", arrow::float32()),
      arrow::field("b", arrow::binary()),
      arrow::field("f", arrow::list(arrow::float32())),
      arrow::field("s", arrow::list(arrow::utf8())),
      arrow::field("flag", arrow::boolean()),
      arrow::field("ts", arrow::timestamp(arrow::TimeUnit::MICRO, "UTC")),
      arrow::field("d", arrow::float64()),
      arrow::field("i8", arrow::int8()),
  };
  if (kType == RecordType::kSequenceExample) {
    fields.push_back(arrow::field("seq_f", arrow::list(arrow::list(arrow::float32()))));
    fields.push_back(arrow::field("seq_i", arrow::list(arrow::list(arrow::int64()))));
    fields.push_back(arrow::field("seq_s", arrow::list(arrow::list(arrow::utf8()))));
  }
  return arrow::schema(fields);
}

// Decodes `record` with `schema`; `must_decode`: an error is a finding.
void Decode(const std::shared_ptr<arrow::Schema>& schema, std::string_view record,
            bool must_decode) {
  auto made = dlprep::io::ExampleDecoder::Make(schema, kType);
  if (!made.ok()) {
    if (must_decode) Fail(kTarget, "inferred schema refused: " + made.status().ToString());
    return;
  }
  auto& decoder = *made;
  // Twice, so a second row follows whatever the first left behind.
  for (int i = 0; i < 2; ++i) {
    arrow::Status st = decoder->Append(record);
    if (!st.ok()) {
      if (must_decode) {
        Fail(kTarget, "a record the inferer accepted does not decode with its schema " +
                          schema->ToString() + ": " + st.ToString());
      }
      dlprep::fuzz::Note(kTarget, st);
      if (decoder->num_rows() != 0) Fail(kTarget, "a refused record left a row behind");
      return;
    }
  }
  auto batch = decoder->Flush();
  if (!batch.ok()) Fail(kTarget, "Flush failed: " + batch.status().ToString());
  if ((*batch)->num_rows() != 2) Fail(kTarget, "2 records did not give 2 rows");
  if (!(*batch)->schema()->Equals(*schema)) {
    Fail(kTarget, "batch schema " + (*batch)->schema()->ToString() + " is not " +
                      schema->ToString());
  }
  dlprep::fuzz::CheckBatch(kTarget, **batch);
  if (decoder->num_rows() != 0) Fail(kTarget, "Flush did not reset");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string record(reinterpret_cast<const char*>(data), size);
  static const std::shared_ptr<arrow::Schema> given = GivenSchema();

  auto inferred = dlprep::io::InferExampleSchema({record}, kType);
  dlprep::io::ExampleSchemaInferer inferer(kType);
  arrow::Status added = inferer.Add(record);
  if (inferred.ok() != added.ok()) {
    Fail(kTarget, "InferExampleSchema says " + inferred.status().ToString() +
                      ", ExampleSchemaInferer says " + added.ToString());
  }
  dlprep::fuzz::Note(kTarget, inferred.status());
  if (inferred.ok()) {
    if (!(*inferred)->Equals(*inferer.Finish())) {
      Fail(kTarget, "the two inferers disagree: " + (*inferred)->ToString() + " vs " +
                        inferer.Finish()->ToString());
    }
    for (const auto& f : (*inferred)->fields()) {
      if (!dlprep::fuzz::IsUtf8(f->name())) Fail(kTarget, "a column name is not UTF-8");
    }
    Decode(*inferred, record, /*must_decode=*/true);
  }
  Decode(given, record, /*must_decode=*/false);
  return 0;
}
