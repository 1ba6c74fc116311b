#include <filesystem>
#include <fstream>

#include <arrow/api.h>
#include <arrow/ipc/writer.h>
#include <arrow/util/base64.h>
#include <gtest/gtest.h>

#include "dlprep/source.h"
#include "io/crc32c.h"
#include "io/file_writer.h"
#include "io/tfrecord.h"
#include "io/tfrecord_test_util.h"

namespace dlprep {
namespace {

namespace fs = std::filesystem;
using io::testing::Contains;
using io::testing::Json;

std::shared_ptr<arrow::Schema> TestSchema() {
  return arrow::schema({arrow::field("id", arrow::int64()),
                        arrow::field("name", arrow::utf8()),
                        arrow::field("v", arrow::list(arrow::float32()))});
}

std::shared_ptr<arrow::RecordBatch> Rows(int64_t first, int64_t n) {
  arrow::Int64Builder ids;
  arrow::StringBuilder names;
  arrow::ListBuilder v(arrow::default_memory_pool(), std::make_shared<arrow::FloatBuilder>());
  auto* fb = static_cast<arrow::FloatBuilder*>(v.value_builder());
  for (int64_t i = first; i < first + n; ++i) {
    EXPECT_TRUE(ids.Append(i).ok());
    EXPECT_TRUE(names.Append("row" + std::to_string(i)).ok());
    EXPECT_TRUE(v.Append().ok());
    for (int64_t k = 0; k < i % 3; ++k) EXPECT_TRUE(fb->Append(static_cast<float>(i + k)).ok());
  }
  return arrow::RecordBatch::Make(TestSchema(), n,
                                  {ids.Finish().ValueOrDie(), names.Finish().ValueOrDie(),
                                   v.Finish().ValueOrDie()});
}

void WriteBatch(const std::string& path, const arrow::RecordBatch& batch,
                TfRecordCompression c = TfRecordCompression::kNone) {
  WriteOptions opts;
  opts.compression = c;
  auto w = io::MakeTfRecordFileWriter(path, batch.schema(), opts).ValueOrDie();
  ASSERT_TRUE(w->Write(batch).ok());
  ASSERT_TRUE(w->Close().ok());
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

struct ReadResult {
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  std::shared_ptr<arrow::Table> table;
};

arrow::Result<ReadResult> ReadAll(const Source& source) {
  ReadResult r;
  for (int64_t p = 0; p < source.num_partitions(); ++p) {
    ARROW_ASSIGN_OR_RAISE(auto reader, source.OpenPartition(p));
    while (true) {
      std::shared_ptr<arrow::RecordBatch> b;
      ARROW_RETURN_NOT_OK(reader->ReadNext(&b));
      if (b == nullptr) break;
      ARROW_RETURN_NOT_OK(b->ValidateFull());
      r.batches.push_back(b);
    }
  }
  ARROW_ASSIGN_OR_RAISE(r.table, arrow::Table::FromRecordBatches(source.schema(), r.batches));
  return r;
}

std::shared_ptr<arrow::Table> Expected(std::vector<std::shared_ptr<arrow::RecordBatch>> b) {
  return arrow::Table::FromRecordBatches(b).ValueOrDie();
}

TEST(TfRecordSource, ReadsDlprepFolderWithManifestSchema) {
  std::string dir = io::testing::TempDir("out");
  // A schema that inference could not produce: int8, fixed_size_list, dictionary.
  auto schema = arrow::schema({arrow::field("small", arrow::int8()),
                               arrow::field("pair", arrow::fixed_size_list(arrow::float32(), 2)),
                               arrow::field("tag", arrow::dictionary(arrow::int32(), arrow::utf8()))});
  auto tags = arrow::DictionaryArray::FromArrays(schema->field(2)->type(),
                                                 Json(arrow::int32(), "[0, 1, 0]"),
                                                 Json(arrow::utf8(), R"(["a", "b"])"))
                  .ValueOrDie();
  auto batch = arrow::RecordBatch::Make(
      schema, 3, {Json(arrow::int8(), "[1, -2, null]"),
                  Json(schema->field(1)->type(), "[[1, 2], null, [5, 6]]"), tags});
  WriteBatch(dir + "/part-00001-x-c000.tfrecord.gz", *batch->Slice(2), TfRecordCompression::kGzip);
  WriteBatch(dir + "/part-00000-x-c000.tfrecord.gz", *batch->Slice(0, 2), TfRecordCompression::kGzip);
  WriteText(dir + "/_SUCCESS", "");
  WriteText(dir + "/.part-00000.crc", "garbage");
  auto ipc = arrow::ipc::SerializeSchema(*schema).ValueOrDie();
  WriteText(dir + "/_manifest.json",
            R"({"arrow_schema": ")" + arrow::util::base64_encode(ipc->ToString()) +
                R"(", "compression": "gzip", "record_type": "example", "files": []})");

  TfRecordSourceOptions opts;
  opts.paths = {dir};
  auto source = OpenTfRecordSource(opts).ValueOrDie();
  ASSERT_EQ(source->num_partitions(), 2);
  EXPECT_EQ(source->partition_name(0), dir + "/part-00000-x-c000.tfrecord.gz");
  auto readable = arrow::schema({schema->field(0), schema->field(1),
                                 arrow::field("tag", arrow::utf8())});
  EXPECT_TRUE(source->schema()->Equals(*readable)) << source->schema()->ToString();
  auto got = ReadAll(*source).ValueOrDie();
  EXPECT_EQ(got.table->num_rows(), 3);
  EXPECT_TRUE(got.table->column(0)->chunk(0)->Equals(*Json(arrow::int8(), "[1, -2]")));
  EXPECT_EQ(got.table->column(1)->ToString(),
            arrow::ChunkedArray({Json(schema->field(1)->type(), "[[1, 2], null]"),
                                 Json(schema->field(1)->type(), "[[5, 6]]")})
                .ToString());
  EXPECT_TRUE(got.table->column(2)->chunk(1)->Equals(*Json(arrow::utf8(), R"(["a"])")));
  EXPECT_GT(source->total_bytes(), 0);
}

TEST(TfRecordSource, OneFileOfADlprepFolderGetsTheManifestSchema) {
  std::string dir = io::testing::TempDir("shards");
  // int8 and float64 cannot be inferred back (they come back as int64 and float32).
  auto schema = arrow::schema({arrow::field("small", arrow::int8()),
                               arrow::field("x", arrow::float64())});
  auto batch = arrow::RecordBatch::Make(
      schema, 2, {Json(arrow::int8(), "[1, -2]"), Json(arrow::float64(), "[0.5, 1.5]")});
  WriteBatch(dir + "/part-00000-x-c000.tfrecord", *batch);
  WriteBatch(dir + "/part-00001-x-c000.tfrecord", *batch);
  WriteBatch(dir + "/foreign.tfrecord", *batch);  // in the folder, not in the manifest
  auto ipc = arrow::ipc::SerializeSchema(*schema).ValueOrDie();
  WriteText(dir + "/_manifest.json",
            R"({"arrow_schema": ")" + arrow::util::base64_encode(ipc->ToString()) +
                R"(", "compression": "none", "record_type": "example", "rows": 4, )"
                R"("bytes": 2, "files": [)"
                R"({"name": "part-00000-x-c000.tfrecord", "rows": 2, "bytes": 1},)"
                R"({"name": "part-00001-x-c000.tfrecord", "rows": 2, "bytes": 1}]})");

  TfRecordSourceOptions opts;
  opts.paths = {dir + "/part-00001-x-c000.tfrecord"};
  auto source = OpenTfRecordSource(opts).ValueOrDie();
  EXPECT_TRUE(source->schema()->Equals(*schema)) << source->schema()->ToString();
  auto got = ReadAll(*source).ValueOrDie();
  EXPECT_TRUE(got.table->column(0)->chunk(0)->Equals(*Json(arrow::int8(), "[1, -2]")));

  opts.paths = {dir + "/foreign.tfrecord"};
  source = OpenTfRecordSource(opts).ValueOrDie();
  EXPECT_FALSE(source->schema()->Equals(*schema)) << "a file the manifest does not list "
                                                     "must not take its schema";
}

TEST(TfRecordSource, InfersSchemaProjectsAndBatches) {
  std::string dir = io::testing::TempDir("d");
  WriteBatch(dir + "/a.tfrecord", *Rows(0, 10));
  WriteBatch(dir + "/b.tfrecord", *Rows(10, 3));
  TfRecordSourceOptions opts;
  opts.paths = {dir};
  opts.batch_rows = 4;
  auto source = OpenTfRecordSource(opts).ValueOrDie();
  EXPECT_TRUE(source->schema()->Equals(*TestSchema())) << source->schema()->ToString();
  auto got = ReadAll(*source).ValueOrDie();
  std::vector<int64_t> sizes;
  for (const auto& b : got.batches) sizes.push_back(b->num_rows());
  EXPECT_EQ(sizes, (std::vector<int64_t>{4, 4, 2, 3}));
  EXPECT_TRUE(got.table->Equals(*Expected({Rows(0, 10), Rows(10, 3)})));

  opts.columns = {"v", "id"};
  source = OpenTfRecordSource(opts).ValueOrDie();
  EXPECT_EQ(source->schema()->ToString(), "v: list<item: float>\nid: int64");
  got = ReadAll(*source).ValueOrDie();
  EXPECT_EQ(got.table->num_rows(), 13);
  EXPECT_TRUE(got.table->column(1)->Equals(*Expected({Rows(0, 10), Rows(10, 3)})->column(0)));

  opts.columns = {"nope"};
  auto r = OpenTfRecordSource(opts);
  EXPECT_TRUE(Contains(r.status(), "column 'nope' is not in the TFRecord schema")) << r.status().ToString();
  EXPECT_TRUE(Contains(r.status(), "id, name, v")) << r.status().ToString();
}

TEST(TfRecordSource, GlobsFilesAndEmptyFiles) {
  std::string dir = io::testing::TempDir("d");
  WriteBatch(dir + "/x1.tfrecord", *Rows(0, 2));
  WriteBatch(dir + "/x2.tfrecord", *Rows(2, 2));
  WriteText(dir + "/x3.tfrecord", "");
  WriteText(dir + "/other.txt", "not matched");
  TfRecordSourceOptions opts;
  opts.paths = {dir + "/x*.tfrecord"};
  auto source = OpenTfRecordSource(opts).ValueOrDie();
  EXPECT_EQ(source->num_partitions(), 3);
  auto got = ReadAll(*source).ValueOrDie();
  EXPECT_TRUE(got.table->Equals(*Expected({Rows(0, 4)})));

  opts.paths = {dir + "/none*.tfrecord"};
  EXPECT_TRUE(Contains(OpenTfRecordSource(opts).status(), "no files match '" + dir + "/none*.tfrecord'"));
  opts.paths = {dir + "/missing.tfrecord"};
  EXPECT_TRUE(Contains(OpenTfRecordSource(opts).status(), dir + "/missing.tfrecord' does not exist"));
}

TEST(TfRecordSource, GarbageFileIsNamed) {
  std::string dir = io::testing::TempDir("d");
  WriteText(dir + "/junk.tfrecord", "definitely not tfrecord data, just some text");
  TfRecordSourceOptions opts;
  opts.paths = {dir + "/junk.tfrecord"};
  auto st = OpenTfRecordSource(opts).status();  // inference reads it
  EXPECT_TRUE(Contains(st, dir + "/junk.tfrecord")) << st.ToString();
  opts.schema = TestSchema();
  auto source = OpenTfRecordSource(opts).ValueOrDie();
  auto st2 = ReadAll(*source).status();
  EXPECT_TRUE(st2.IsIOError());
  EXPECT_TRUE(Contains(st2, dir + "/junk.tfrecord")) << st2.ToString();
  EXPECT_TRUE(Contains(st2, "not a TFRecord file")) << st2.ToString();
}

TEST(TfRecordSource, CorruptRecordsFailOrAreSkippedAndCounted) {
  std::string dir = io::testing::TempDir("d");
  std::string path = dir + "/f.tfrecord";
  WriteBatch(path, *Rows(0, 6));
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  // Find the offset of record 2 and flip a bit in its data; cut the file inside record 5.
  auto record_size = [&](size_t off) {
    uint64_t n;
    std::memcpy(&n, bytes.data() + off, 8);
    return static_cast<size_t>(n) + 16;
  };
  size_t off = 0;
  std::vector<size_t> offsets;
  while (off < bytes.size()) {
    offsets.push_back(off);
    off += record_size(off);
  }
  ASSERT_EQ(offsets.size(), 6u);
  bytes[offsets[2] + 14] ^= 0x01;
  bytes.resize(offsets[5] + 20);
  WriteText(path, bytes);

  TfRecordSourceOptions opts;
  opts.paths = {path};
  opts.schema = TestSchema();
  auto strict = OpenTfRecordSource(opts).ValueOrDie();
  auto st = ReadAll(*strict).status();
  EXPECT_TRUE(st.IsIOError());
  EXPECT_TRUE(Contains(st, path + ": corrupt record at byte offset " + std::to_string(offsets[2])))
      << st.ToString();

  opts.skip_corrupt = true;
  auto lenient = OpenTfRecordSource(opts).ValueOrDie();
  auto got = ReadAll(*lenient).ValueOrDie();
  auto ids = got.table->GetColumnByName("id")->ToString();
  EXPECT_EQ(got.table->num_rows(), 4);  // rows 0, 1, 3, 4
  EXPECT_TRUE(got.table->Equals(*Expected({Rows(0, 2), Rows(3, 2)}))) << ids;
  EXPECT_EQ(lenient->skipped_records(), 2);
  auto msgs = lenient->skipped_messages();
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_TRUE(msgs[0].find("data CRC mismatch") != std::string::npos) << msgs[0];
  EXPECT_TRUE(msgs[1].find("truncated") != std::string::npos) << msgs[1];
  EXPECT_TRUE(msgs[1].find("at byte offset " + std::to_string(offsets[5])) != std::string::npos)
      << msgs[1];
}

TEST(TfRecordSource, UndecodableRecordNamesFileOffsetAndFeature) {
  std::string dir = io::testing::TempDir("d");
  std::string path = dir + "/f.tfrecord";
  auto bad = arrow::RecordBatch::Make(
      arrow::schema({arrow::field("id", arrow::float32())}), 1, {Json(arrow::float32(), "[1.5]")});
  {
    auto w = io::RecordWriter::Open(path, TfRecordCompression::kNone).ValueOrDie();
    auto good_enc = io::ExampleEncoder::Make(TestSchema(), RecordType::kExample).ValueOrDie();
    auto bad_enc = io::ExampleEncoder::Make(bad->schema(), RecordType::kExample).ValueOrDie();
    std::string buf;
    ASSERT_TRUE(good_enc->EncodeFramed(*Rows(0, 1), 0, 1, &buf).ok());
    ASSERT_TRUE(bad_enc->EncodeFramed(*bad, 0, 1, &buf).ok());
    ASSERT_TRUE(good_enc->EncodeFramed(*Rows(1, 1), 0, 1, &buf).ok());
    ASSERT_TRUE(w->WriteFramed(buf).ok());
    ASSERT_TRUE(w->Close().ok());
  }
  TfRecordSourceOptions opts;
  opts.paths = {path};
  opts.schema = TestSchema();
  auto st = ReadAll(*OpenTfRecordSource(opts).ValueOrDie()).status();
  EXPECT_TRUE(st.IsInvalid());
  EXPECT_TRUE(Contains(st, path + ": record at byte offset ")) << st.ToString();
  EXPECT_TRUE(Contains(st, "feature 'id'")) << st.ToString();
  opts.skip_corrupt = true;
  auto lenient = OpenTfRecordSource(opts).ValueOrDie();
  EXPECT_EQ(ReadAll(*lenient).ValueOrDie().table->num_rows(), 2);
  EXPECT_EQ(lenient->skipped_records(), 1);
}

TEST(TfRecordSource, WrongCompressionFlagFailsWithAdvice) {
  std::string dir = io::testing::TempDir("d");
  WriteBatch(dir + "/f.gz", *Rows(0, 3), TfRecordCompression::kGzip);
  TfRecordSourceOptions opts;
  opts.paths = {dir + "/f.gz"};
  opts.compression = TfRecordCompression::kNone;
  opts.schema = TestSchema();
  auto source = OpenTfRecordSource(opts).ValueOrDie();
  auto st = source->OpenPartition(0).status();
  EXPECT_TRUE(Contains(st, "--compression gzip")) << st.ToString();
  opts.compression = TfRecordCompression::kAuto;
  EXPECT_EQ(ReadAll(*OpenTfRecordSource(opts).ValueOrDie()).ValueOrDie().table->num_rows(), 3);
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A gzip member that holds `payload` in one stored deflate block and then a block of the
// reserved type 3 ("invalid block type"), followed by `junk` bytes.
std::string GzipDamagedAfter(const std::string& payload, size_t junk) {
  std::string out("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\x00", 11);
  const uint16_t n = static_cast<uint16_t>(payload.size());
  out += static_cast<char>(n & 0xff);
  out += static_cast<char>(n >> 8);
  out += static_cast<char>(~n & 0xff);
  out += static_cast<char>((~n >> 8) & 0xff);
  return out + payload + "\x07" + std::string(junk, 'z');
}

TEST(TfRecordSource, DamagedGzipKeepsTheRecordsBeforeItAndGoesOnWhenSkipping) {
  std::string dir = io::testing::TempDir("d");
  WriteBatch(dir + "/plain", *Rows(0, 3));
  WriteText(dir + "/a.tfrecord.gz", GzipDamagedAfter(ReadBytes(dir + "/plain"), 200));
  fs::remove(dir + "/plain");
  WriteBatch(dir + "/b.tfrecord", *Rows(3, 2));
  TfRecordSourceOptions opts;
  opts.paths = {dir + "/a.tfrecord.gz", dir + "/b.tfrecord"};
  auto st = OpenTfRecordSource(opts).status();  // schema inference reads the damage
  EXPECT_TRUE(st.IsIOError()) << st.ToString();
  EXPECT_TRUE(Contains(st, dir + "/a.tfrecord.gz: corrupt gzip data")) << st.ToString();
  EXPECT_TRUE(Contains(st, "at byte offset ")) << st.ToString();
  opts.schema = TestSchema();
  st = ReadAll(*OpenTfRecordSource(opts).ValueOrDie()).status();
  EXPECT_TRUE(Contains(st, dir + "/a.tfrecord.gz: corrupt gzip data")) << st.ToString();
  opts.schema = nullptr;

  opts.skip_corrupt = true;
  auto lenient = OpenTfRecordSource(opts).ValueOrDie();
  auto got = ReadAll(*lenient);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_TRUE(got->table->Equals(*Expected({Rows(0, 5)}))) << got->table->ToString();
  EXPECT_EQ(lenient->skipped_records(), 1);
  auto msgs = lenient->skipped_messages();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_TRUE(msgs[0].find(dir + "/a.tfrecord.gz: corrupt gzip data") != std::string::npos)
      << msgs[0];
  EXPECT_TRUE(msgs[0].find("skipped the rest of the file (200 bytes)") != std::string::npos)
      << msgs[0];
}

TEST(TfRecordSource, HugeRecordLengthIsCorruptNotACrash) {
  std::string dir = io::testing::TempDir("d");
  WriteBatch(dir + "/plain", *Rows(0, 2));
  // A header claiming 2^64 - 4 data bytes, with a valid length CRC.
  std::string header(8, '\xff');
  header[0] = '\xfc';
  const uint32_t crc = io::MaskCrc(io::Crc32c(header.data(), 8));
  for (int i = 0; i < 4; ++i) header.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
  const std::string good = ReadBytes(dir + "/plain");
  WriteText(dir + "/a.tfrecord", good + header + std::string(40, '\0'));
  TfRecordSourceOptions opts;
  opts.paths = {dir + "/a.tfrecord"};
  auto strict = OpenTfRecordSource(opts);  // inference reads the bad record too
  EXPECT_TRUE(Contains(strict.status(), dir + "/a.tfrecord: truncated record"))
      << strict.status().ToString();
  EXPECT_TRUE(Contains(strict.status(), "at byte offset " + std::to_string(good.size())))
      << strict.status().ToString();
  opts.skip_corrupt = true;
  auto lenient = OpenTfRecordSource(opts).ValueOrDie();
  auto got = ReadAll(*lenient).ValueOrDie();
  EXPECT_TRUE(got.table->Equals(*Expected({Rows(0, 2)})));
  EXPECT_EQ(lenient->skipped_records(), 1);
  ASSERT_EQ(lenient->skipped_messages().size(), 1u);
  EXPECT_TRUE(lenient->skipped_messages()[0].find("skipped the rest of the file (52 bytes)") !=
              std::string::npos)
      << lenient->skipped_messages()[0];
}

TEST(TfRecordSource, FeatureKeyThatIsNotUtf8NamesFileAndOffsetOrIsSkipped) {
  using io::testing::PbEntry;
  using io::testing::PbInt64Feature;
  using io::testing::PbSection;
  std::string dir = io::testing::TempDir("d");
  const std::string path = dir + "/f.tfrecord";
  const std::vector<std::string> records = {
      PbSection(PbEntry("id", PbInt64Feature({0}))),
      PbSection(PbEntry("id", PbInt64Feature({1})) + PbEntry("k\xff", PbInt64Feature({1}))),
      PbSection(PbEntry("id", PbInt64Feature({2})))};
  {
    auto w = io::RecordWriter::Open(path, TfRecordCompression::kNone).ValueOrDie();
    for (const auto& r : records) ASSERT_TRUE(w->Write(r).ok());
    ASSERT_TRUE(w->Close().ok());
  }
  const std::string bad_offset = std::to_string(records[0].size() + 16);
  TfRecordSourceOptions opts;
  opts.paths = {path};
  // Schema inference meets it first...
  auto st = OpenTfRecordSource(opts).status();
  EXPECT_TRUE(st.IsInvalid()) << st.ToString();
  EXPECT_TRUE(Contains(st, path + ": record at byte offset " + bad_offset +
                               ": feature key 'k\\xff' is not valid UTF-8"))
      << st.ToString();
  // ... and the decoder when the schema is given.
  opts.schema = arrow::schema({arrow::field("id", arrow::int64())});
  st = ReadAll(*OpenTfRecordSource(opts).ValueOrDie()).status();
  EXPECT_TRUE(Contains(st, path + ": record at byte offset " + bad_offset)) << st.ToString();
  EXPECT_TRUE(Contains(st, "'k\\xff'")) << st.ToString();

  opts.schema = nullptr;
  opts.skip_corrupt = true;
  auto lenient = OpenTfRecordSource(opts).ValueOrDie();
  EXPECT_EQ(lenient->schema()->ToString(), "id: int64");
  auto got = ReadAll(*lenient).ValueOrDie();
  EXPECT_EQ(got.table->column(0)->ToString(),
            arrow::ChunkedArray(Json(arrow::int64(), "[0, 2]")).ToString());
  EXPECT_EQ(lenient->skipped_records(), 1);
  ASSERT_EQ(lenient->skipped_messages().size(), 1u);
  EXPECT_TRUE(lenient->skipped_messages()[0].find("byte offset " + bad_offset) !=
              std::string::npos)
      << lenient->skipped_messages()[0];
}

}  // namespace
}  // namespace dlprep
