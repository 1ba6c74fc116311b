#include "io/file_writer.h"

#include <filesystem>
#include <string>

#include <arrow/api.h>
#include <arrow/csv/api.h>
#include <arrow/io/file.h>
#include <arrow/testing/gtest_util.h>
#include <gtest/gtest.h>
#include <parquet/arrow/reader.h>

#include "core/units.h"

namespace dlprep::io {
namespace {

namespace fs = std::filesystem;

class FileWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(DLPREP_TEST_TMPDIR) + "/file_writer-" + RandomUuid();
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

WriteOptions Options(OutputFormat format,
                     TfRecordCompression compression = TfRecordCompression::kNone) {
  WriteOptions o;
  o.format = format;
  o.compression = compression;
  return o;
}

std::shared_ptr<arrow::RecordBatch> SmallBatch() {
  auto schema = arrow::schema(
      {arrow::field("id", arrow::int64()), arrow::field("name", arrow::utf8())});
  arrow::Int64Builder ids;
  arrow::StringBuilder names;
  EXPECT_TRUE(ids.AppendValues({1, 2, 3}).ok());
  EXPECT_TRUE(names.AppendValues({"a", "b,c", "d"}).ok());
  return arrow::RecordBatch::Make(schema, 3, {*ids.Finish(), *names.Finish()});
}

TEST(FileExtension, EveryFormatAndCompression) {
  EXPECT_EQ(FileExtension(Options(OutputFormat::kTfRecord)), "tfrecord");
  EXPECT_EQ(FileExtension(Options(OutputFormat::kTfRecord, TfRecordCompression::kAuto)),
            "tfrecord");
  EXPECT_EQ(FileExtension(Options(OutputFormat::kTfRecord, TfRecordCompression::kGzip)),
            "tfrecord.gz");
  EXPECT_EQ(FileExtension(Options(OutputFormat::kTfRecord, TfRecordCompression::kZlib)),
            "tfrecord.zz");
  EXPECT_EQ(FileExtension(Options(OutputFormat::kParquet)), "parquet");
  EXPECT_EQ(FileExtension(Options(OutputFormat::kCsv)), "csv");
}

TEST(CheckWritable, CsvRefusesListColumnNamingItAndSuggestingFormats) {
  auto schema = arrow::schema({arrow::field("id", arrow::int64()),
                               arrow::field("embedding", arrow::list(arrow::float32()))});
  auto st = CheckWritable(*schema, Options(OutputFormat::kCsv));
  ASSERT_TRUE(st.IsTypeError()) << st.ToString();
  EXPECT_NE(st.message().find("'embedding'"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("parquet"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("tfrecord"), std::string::npos) << st.message();
  EXPECT_TRUE(CheckWritable(*schema, Options(OutputFormat::kParquet)).ok());
  EXPECT_TRUE(CheckWritable(*schema, Options(OutputFormat::kTfRecord)).ok());
}

TEST(CheckWritable, CsvRefusesStructColumn) {
  auto schema = arrow::schema(
      {arrow::field("point", arrow::struct_({arrow::field("x", arrow::float64())}))});
  auto st = CheckWritable(*schema, Options(OutputFormat::kCsv));
  ASSERT_TRUE(st.IsTypeError()) << st.ToString();
  EXPECT_NE(st.message().find("'point'"), std::string::npos) << st.message();
}

TEST(CheckWritable, TfRecordRefusesUnmappedTypeNamingColumn) {
  auto schema = arrow::schema({arrow::field("price", arrow::decimal128(10, 2))});
  auto st = CheckWritable(*schema, Options(OutputFormat::kTfRecord));
  ASSERT_TRUE(st.IsTypeError()) << st.ToString();
  EXPECT_NE(st.message().find("'price'"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("decimal128(10, 2)"), std::string::npos) << st.message();
  EXPECT_TRUE(CheckWritable(*schema, Options(OutputFormat::kParquet)).ok());
}

TEST(CheckWritable, TfRecordNestedListsNeedSequenceExample) {
  auto schema =
      arrow::schema({arrow::field("frames", arrow::list(arrow::list(arrow::float32())))});
  auto st = CheckWritable(*schema, Options(OutputFormat::kTfRecord));
  ASSERT_TRUE(st.IsTypeError()) << st.ToString();
  EXPECT_NE(st.message().find("'frames'"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("sequence_example"), std::string::npos) << st.message();
  WriteOptions seq = Options(OutputFormat::kTfRecord);
  seq.record_type = RecordType::kSequenceExample;
  EXPECT_TRUE(CheckWritable(*schema, seq).ok());
  auto deeper = arrow::schema(
      {arrow::field("cube", arrow::list(arrow::list(arrow::list(arrow::float32()))))});
  EXPECT_TRUE(CheckWritable(*deeper, seq).IsTypeError());
}

TEST(CheckWritable, TfRecordRefusesBadShapeMetadata) {
  auto schema = arrow::schema(
      {arrow::field("x", arrow::list(arrow::float32()))
           ->WithMetadata(arrow::key_value_metadata({"dlprep.shape"}, {"[2,"}))});
  auto st = CheckWritable(*schema, Options(OutputFormat::kTfRecord));
  ASSERT_TRUE(st.IsInvalid()) << st.ToString();
  EXPECT_NE(st.message().find("'x'"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("dlprep.shape"), std::string::npos) << st.message();
}

TEST_F(FileWriterTest, ParquetWritesReadableFileAndReportsItsSize) {
  auto batch = SmallBatch();
  std::string path = dir_ + "/a.parquet";
  ASSERT_OK_AND_ASSIGN(auto writer, OpenFileWriter(path, batch->schema(),
                                                   Options(OutputFormat::kParquet)));
  ASSERT_OK(writer->Write(*batch));
  ASSERT_OK(writer->Write(*batch->Slice(1, 2)));
  ASSERT_OK(writer->Close());
  EXPECT_EQ(writer->bytes_written(), static_cast<int64_t>(fs::file_size(path)));
  ASSERT_OK_AND_ASSIGN(auto file, arrow::io::ReadableFile::Open(path));
  ASSERT_OK_AND_ASSIGN(auto reader,
                       parquet::arrow::OpenFile(file, arrow::default_memory_pool()));
  std::shared_ptr<arrow::Table> table;
  ASSERT_OK(reader->ReadTable(&table));
  ASSERT_OK_AND_ASSIGN(auto expected,
                       arrow::Table::FromRecordBatches({batch, batch->Slice(1, 2)}));
  ASSERT_OK_AND_ASSIGN(table, table->CombineChunks());
  ASSERT_OK_AND_ASSIGN(expected, expected->CombineChunks());
  EXPECT_TRUE(table->Equals(*expected)) << table->ToString();
}

TEST_F(FileWriterTest, CsvWritesHeaderAndQuotesAndExactSize) {
  auto batch = SmallBatch();
  std::string path = dir_ + "/a.csv";
  ASSERT_OK_AND_ASSIGN(
      auto writer, OpenFileWriter(path, batch->schema(), Options(OutputFormat::kCsv)));
  ASSERT_OK(writer->Write(*batch));
  int64_t before_close = writer->bytes_written();
  ASSERT_OK(writer->Close());
  EXPECT_EQ(before_close, static_cast<int64_t>(fs::file_size(path)));
  ASSERT_OK_AND_ASSIGN(auto in, arrow::io::ReadableFile::Open(path));
  ASSERT_OK_AND_ASSIGN(auto buf, in->Read(1 << 20));
  EXPECT_EQ(buf->ToString(), "\"id\",\"name\"\n1,\"a\"\n2,\"b,c\"\n3,\"d\"\n");
}

TEST_F(FileWriterTest, OpenFailureNamesThePath) {
  std::string path = dir_ + "/missing-folder/a.parquet";
  auto r = OpenFileWriter(path, SmallBatch()->schema(), Options(OutputFormat::kParquet));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(path), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace dlprep::io
