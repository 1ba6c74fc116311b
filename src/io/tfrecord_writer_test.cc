#include <filesystem>

#include <arrow/api.h>
#include <gtest/gtest.h>

#include "io/file_writer.h"
#include "io/tfrecord.h"
#include "io/tfrecord_test_util.h"

namespace dlprep::io {
namespace {

using testing::Json;

TEST(TfRecordFileWriter, WritesReadableFilesAndReportsOnDiskBytes) {
  auto schema = arrow::schema({arrow::field("id", arrow::int64()),
                               arrow::field("v", arrow::list(arrow::float32()))});
  auto batch = arrow::RecordBatch::Make(
      schema, 3, {Json(arrow::int64(), "[1, 2, null]"),
                  Json(schema->field(1)->type(), "[[1, 2], [], [3]]")});
  for (auto c : {TfRecordCompression::kNone, TfRecordCompression::kGzip}) {
    std::string path = testing::TempDir(c == TfRecordCompression::kGzip ? "gz" : "none") + "/f";
    WriteOptions opts;
    opts.compression = c;
    auto w = MakeTfRecordFileWriter(path, schema, opts).ValueOrDie();
    ASSERT_TRUE(w->Write(*batch).ok());
    ASSERT_TRUE(w->Write(*batch->Slice(1)).ok());
    ASSERT_TRUE(w->Close().ok());
    EXPECT_EQ(w->bytes_written(), static_cast<int64_t>(std::filesystem::file_size(path)));

    auto reader = RecordReader::Open(path, c).ValueOrDie();
    auto dec = ExampleDecoder::Make(schema, RecordType::kExample).ValueOrDie();
    std::string_view rec;
    while (reader->Next(&rec).ValueOrDie()) ASSERT_TRUE(dec->Append(rec).ok());
    auto out = dec->Flush().ValueOrDie();
    auto expected = arrow::ConcatenateRecordBatches({batch, batch->Slice(1)}).ValueOrDie();
    EXPECT_TRUE(out->Equals(*expected)) << out->ToString();
  }
}

TEST(TfRecordFileWriter, RejectsSchemaBeforeCreatingTheFile) {
  std::string path = testing::TempDir("d") + "/f";
  auto schema = arrow::schema({arrow::field("h", arrow::float16())});
  auto r = MakeTfRecordFileWriter(path, schema, WriteOptions());
  EXPECT_TRUE(r.status().IsTypeError());
  EXPECT_TRUE(testing::Contains(r.status(), "'h'"));
  EXPECT_FALSE(std::filesystem::exists(path));
}

}  // namespace
}  // namespace dlprep::io
