#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <arrow/api.h>
#include <arrow/csv/writer.h>
#include <arrow/io/file.h>
#include <arrow/util/byte_size.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <parquet/arrow/writer.h>

#include "core/memory.h"
#include "dlprep/source.h"

namespace dlprep {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string MakeTestDir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  fs::path dir =
      fs::path(DLPREP_TEST_TMPDIR) /
      ("table-source-" + std::string(info->name()) + "-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

void WriteText(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

// A table of `n` rows: id = first_id.., name = "n<id>", score = id / 2.
std::shared_ptr<arrow::Table> MakeTable(int64_t first_id, int64_t n) {
  arrow::Int64Builder ids;
  arrow::StringBuilder names;
  arrow::DoubleBuilder scores;
  for (int64_t i = first_id; i < first_id + n; ++i) {
    EXPECT_TRUE(ids.Append(i).ok());
    EXPECT_TRUE(names.Append("n" + std::to_string(i)).ok());
    EXPECT_TRUE(scores.Append(static_cast<double>(i) / 2).ok());
  }
  auto schema = arrow::schema({arrow::field("id", arrow::int64()),
                               arrow::field("name", arrow::utf8()),
                               arrow::field("score", arrow::float64())});
  return arrow::Table::Make(schema, {*ids.Finish(), *names.Finish(), *scores.Finish()});
}

void WriteParquet(const std::string& path, const arrow::Table& table,
                  int64_t row_group_rows = 1024) {
  fs::create_directories(fs::path(path).parent_path());
  auto out = arrow::io::FileOutputStream::Open(path);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_TRUE(parquet::arrow::WriteTable(table, arrow::default_memory_pool(), *out,
                                         row_group_rows)
                  .ok());
  ASSERT_TRUE((*out)->Close().ok());
}

void WriteCsv(const std::string& path, const arrow::Table& table) {
  fs::create_directories(fs::path(path).parent_path());
  auto out = arrow::io::FileOutputStream::Open(path);
  ASSERT_TRUE(out.ok());
  ASSERT_TRUE(
      arrow::csv::WriteCSV(table, arrow::csv::WriteOptions::Defaults(), out->get()).ok());
  ASSERT_TRUE((*out)->Close().ok());
}

TableSourceOptions Opts(std::vector<std::string> paths) {
  TableSourceOptions options;
  options.paths = std::move(paths);
  return options;
}

std::shared_ptr<Source> Open(const TableSourceOptions& options) {
  auto source = OpenTableSource(options);
  EXPECT_TRUE(source.ok()) << source.status().ToString();
  return source.ok() ? *source : nullptr;
}

// Reads all partitions in order into one table; checks batch schemas.
std::shared_ptr<arrow::Table> ReadTable(const Source& source) {
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  for (int64_t p = 0; p < source.num_partitions(); ++p) {
    auto reader = source.OpenPartition(p);
    EXPECT_TRUE(reader.ok()) << reader.status().ToString();
    if (!reader.ok()) return nullptr;
    EXPECT_TRUE((*reader)->schema()->Equals(*source.schema()));
    while (true) {
      std::shared_ptr<arrow::RecordBatch> batch;
      auto st = (*reader)->ReadNext(&batch);
      EXPECT_TRUE(st.ok()) << st.ToString();
      if (!st.ok()) return nullptr;
      if (!batch) break;
      EXPECT_TRUE(batch->schema()->Equals(*source.schema()))
          << batch->schema()->ToString() << " vs " << source.schema()->ToString();
      batches.push_back(batch);
    }
  }
  auto table = arrow::Table::FromRecordBatches(source.schema(), batches);
  EXPECT_TRUE(table.ok()) << table.status().ToString();
  return table.ok() ? *table : nullptr;
}

std::vector<int64_t> Int64s(const arrow::Table& t, const std::string& column) {
  std::vector<int64_t> out;
  auto col = t.GetColumnByName(column);
  EXPECT_TRUE(col) << column;
  if (!col) return out;
  for (const auto& chunk : col->chunks()) {
    for (int64_t i = 0; i < chunk->length(); ++i) {
      auto scalar = *chunk->GetScalar(i);
      auto cast = scalar->CastTo(arrow::int64());
      EXPECT_TRUE(cast.ok());
      out.push_back(static_cast<const arrow::Int64Scalar&>(**cast).value);
    }
  }
  return out;
}

std::vector<std::string> StringsOf(const arrow::Table& t, const std::string& column) {
  std::vector<std::string> out;
  for (const auto& chunk : t.GetColumnByName(column)->chunks()) {
    const auto& a = static_cast<const arrow::StringArray&>(*chunk);
    for (int64_t i = 0; i < a.length(); ++i) out.push_back(a.GetString(i));
  }
  return out;
}

TEST(TableSource, ParquetFile) {
  const std::string dir = MakeTestDir();
  auto expected = MakeTable(0, 5);
  WriteParquet(dir + "/t.parquet", *expected);
  auto source = Open(Opts({dir + "/t.parquet"}));
  ASSERT_TRUE(source);
  EXPECT_EQ(source->num_partitions(), 1);
  EXPECT_EQ(source->partition_name(0), dir + "/t.parquet");
  EXPECT_EQ(source->total_bytes(),
            static_cast<int64_t>(fs::file_size(dir + "/t.parquet")));
  EXPECT_TRUE(source->schema()->Equals(*expected->schema()))
      << source->schema()->ToString();
  auto table = ReadTable(*source);
  ASSERT_TRUE(table);
  EXPECT_TRUE(table->Equals(*expected)) << table->ToString();
}

TEST(TableSource, DirectoryOfParquetFilesInSortedOrderSkippingMetadata) {
  const std::string dir = MakeTestDir();
  WriteParquet(dir + "/b.parquet", *MakeTable(10, 2));
  WriteParquet(dir + "/a.parquet", *MakeTable(0, 3));
  WriteParquet(dir + "/sub/c.pq", *MakeTable(20, 1));
  WriteText(dir + "/_SUCCESS", "");
  WriteText(dir + "/.hidden.csv", "x\n1\n");
  WriteText(dir + "/_tmp/junk.csv", "x\n1\n");
  WriteText(dir + "/_manifest.json", "{\"files\": []}");  // dlprep's, beside _SUCCESS
  auto source = Open(Opts({dir}));
  ASSERT_TRUE(source);
  ASSERT_EQ(source->num_partitions(), 3);
  EXPECT_EQ(source->partition_name(0), dir + "/a.parquet");
  EXPECT_EQ(source->partition_name(2), dir + "/sub/c.pq");
  auto table = ReadTable(*source);
  ASSERT_TRUE(table);
  EXPECT_EQ(Int64s(*table, "id"), (std::vector<int64_t>{0, 1, 2, 10, 11, 20}));
}

TEST(TableSource, Csv) {
  const std::string dir = MakeTestDir();
  WriteCsv(dir + "/a.csv", *MakeTable(0, 3));
  WriteCsv(dir + "/b.csv", *MakeTable(3, 2));
  auto source = Open(Opts({dir}));
  ASSERT_TRUE(source);
  EXPECT_EQ(source->num_partitions(), 2);
  auto table = ReadTable(*source);
  ASSERT_TRUE(table);
  EXPECT_EQ(Int64s(*table, "id"), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(StringsOf(*table, "name"),
            (std::vector<std::string>{"n0", "n1", "n2", "n3", "n4"}));
  EXPECT_EQ(source->schema()->GetFieldByName("score")->type()->id(), arrow::Type::DOUBLE);
}

TEST(TableSource, JsonLines) {
  const std::string dir = MakeTestDir();
  WriteText(dir + "/a.jsonl",
            "{\"id\": 1, \"name\": \"x\"}\n{\"id\": 2, \"name\": \"y\"}\n");
  WriteText(dir + "/b.ndjson", "{\"id\": 3, \"name\": \"z\"}\n");
  auto source = Open(Opts({dir}));
  ASSERT_TRUE(source);
  auto table = ReadTable(*source);
  ASSERT_TRUE(table);
  EXPECT_EQ(source->schema()->GetFieldByName("id")->type()->id(), arrow::Type::INT64);
  EXPECT_EQ(Int64s(*table, "id"), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(StringsOf(*table, "name"), (std::vector<std::string>{"x", "y", "z"}));
}

TEST(TableSource, HivePartitionsBecomeColumns) {
  const std::string dir = MakeTestDir();
  WriteParquet(dir + "/year=2020/part-0.parquet", *MakeTable(0, 2));
  WriteParquet(dir + "/year=2021/part-0.parquet", *MakeTable(5, 1));
  auto source = Open(Opts({dir}));
  ASSERT_TRUE(source);
  ASSERT_EQ(source->schema()->num_fields(), 4);
  EXPECT_EQ(source->schema()->field(3)->name(), "year");
  auto table = ReadTable(*source);
  ASSERT_TRUE(table);
  EXPECT_EQ(Int64s(*table, "id"), (std::vector<int64_t>{0, 1, 5}));
  EXPECT_EQ(Int64s(*table, "year"), (std::vector<int64_t>{2020, 2020, 2021}));

  // A single partition directory still yields the column when its parent is the input.
  fs::remove_all(dir + "/year=2021");
  source = Open(Opts({dir}));
  ASSERT_TRUE(source);
  EXPECT_EQ(Int64s(*ReadTable(*source), "year"), (std::vector<int64_t>{2020, 2020}));

  // Switched off, there is no partition column.
  auto options = Opts({dir});
  options.hive_partitioning = false;
  source = Open(options);
  ASSERT_TRUE(source);
  EXPECT_EQ(source->schema()->GetFieldIndex("year"), -1);
}

TEST(TableSource, ProjectionKeepsTheRequestedOrder) {
  const std::string dir = MakeTestDir();
  WriteParquet(dir + "/year=2020/a.parquet", *MakeTable(0, 3));
  auto options = Opts({dir});
  options.columns = {"year", "score", "id"};
  auto source = Open(options);
  ASSERT_TRUE(source);
  ASSERT_EQ(source->schema()->num_fields(), 3);
  EXPECT_EQ(source->schema()->field(0)->name(), "year");
  EXPECT_EQ(source->schema()->field(1)->name(), "score");
  EXPECT_EQ(source->schema()->field(2)->name(), "id");
  auto table = ReadTable(*source);
  ASSERT_TRUE(table);
  EXPECT_EQ(Int64s(*table, "id"), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(Int64s(*table, "year"), (std::vector<int64_t>{2020, 2020, 2020}));
}

TEST(TableSource, UnknownColumnIsATypeErrorListingTheColumns) {
  const std::string dir = MakeTestDir();
  WriteParquet(dir + "/a.parquet", *MakeTable(0, 1));
  auto options = Opts({dir});
  options.columns = {"id", "nope"};
  auto source = OpenTableSource(options);
  ASSERT_FALSE(source.ok());
  EXPECT_TRUE(source.status().IsTypeError());
  EXPECT_THAT(source.status().message(), HasSubstr("column 'nope'"));
  EXPECT_THAT(source.status().message(), HasSubstr("available columns: id, name, score"));
}

TEST(TableSource, BatchRows) {
  const std::string dir = MakeTestDir();
  WriteParquet(dir + "/a.parquet", *MakeTable(0, 5));
  auto options = Opts({dir});
  options.batch_rows = 2;
  auto source = Open(options);
  ASSERT_TRUE(source);
  auto reader = *source->OpenPartition(0);
  std::vector<int64_t> rows;
  std::shared_ptr<arrow::RecordBatch> batch;
  while (reader->ReadNext(&batch).ok() && batch) rows.push_back(batch->num_rows());
  EXPECT_EQ(rows, (std::vector<int64_t>{2, 2, 1}));
}

TEST(TableSource, MixedFormatsAreRefusedNamingTheFilesAndOption) {
  const std::string dir = MakeTestDir();
  WriteParquet(dir + "/a.parquet", *MakeTable(0, 1));
  WriteCsv(dir + "/b.csv", *MakeTable(0, 1));
  auto source = OpenTableSource(Opts({dir}));
  ASSERT_FALSE(source.ok());
  EXPECT_TRUE(source.status().IsInvalid());
  EXPECT_THAT(source.status().message(), HasSubstr("'" + dir + "/a.parquet' is parquet"));
  EXPECT_THAT(source.status().message(), HasSubstr("'" + dir + "/b.csv' is csv"));
  EXPECT_THAT(source.status().message(), HasSubstr("--input-format"));
}

TEST(TableSource, UnknownExtensionNeedsAnExplicitFormat) {
  const std::string dir = MakeTestDir();
  WriteCsv(dir + "/data.txt", *MakeTable(0, 2));
  auto source = OpenTableSource(Opts({dir}));
  ASSERT_FALSE(source.ok());
  EXPECT_TRUE(source.status().IsInvalid());
  EXPECT_THAT(source.status().message(), HasSubstr("'" + dir + "/data.txt'"));
  EXPECT_THAT(source.status().message(), HasSubstr("--input-format"));

  auto options = Opts({dir});
  options.format = TableFormat::kCsv;
  auto ok = Open(options);
  ASSERT_TRUE(ok);
  EXPECT_EQ(Int64s(*ReadTable(*ok), "id"), (std::vector<int64_t>{0, 1}));
}

TEST(TableSource, FewParquetFilesAreSplitByRowGroupInFileOrder) {
  const std::string dir = MakeTestDir();
  WriteParquet(dir + "/a.parquet", *MakeTable(0, 2500));  // row groups of 1024 rows
  WriteParquet(dir + "/b.parquet", *MakeTable(2500, 10));
  auto source = Open(Opts({dir}));
  ASSERT_TRUE(source);
  ASSERT_EQ(source->num_partitions(), 4);
  EXPECT_EQ(source->partition_name(1), dir + "/a.parquet (row group 2 of 3)");
  EXPECT_EQ(source->partition_name(3), dir + "/b.parquet");
  std::vector<int64_t> want(2510);
  for (int64_t i = 0; i < 2510; ++i) want[i] = i;
  EXPECT_EQ(Int64s(*ReadTable(*source), "id"), want);
}

TEST(TableSource, CorruptParquetFileIsNamed) {
  const std::string dir = MakeTestDir();
  WriteParquet(dir + "/a.parquet", *MakeTable(0, 2));
  WriteText(dir + "/b.parquet", "this is not parquet at all, no magic bytes here");
  // Few Parquet files are split by row group, which reads every footer when opening:
  // the source then fails at once, naming the corrupt file.
  auto early = OpenTableSource(Opts({dir}));
  ASSERT_FALSE(early.ok());
  EXPECT_THAT(early.status().message(), HasSubstr("'" + dir + "/b.parquet'"));
  // Beyond kSplitMaxFiles (64) footers are read lazily: opening works (the schema comes
  // from the first file) and reading b fails, naming it.
  for (int i = 0; i < 70; ++i) {
    WriteParquet(dir + "/c" + std::to_string(100 + i) + ".parquet", *MakeTable(0, 2));
  }
  auto source = Open(Opts({dir}));
  ASSERT_TRUE(source);
  ASSERT_EQ(source->num_partitions(), 72);
  arrow::Status st;
  auto reader = source->OpenPartition(1);
  if (reader.ok()) {
    std::shared_ptr<arrow::RecordBatch> batch;
    do {
      st = (*reader)->ReadNext(&batch);
    } while (st.ok() && batch);
  } else {
    st = reader.status();
  }
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.message(), HasSubstr("'" + dir + "/b.parquet'"));

  // When the corrupt file is the one the schema comes from, opening fails naming it.
  auto first_bad = OpenTableSource(Opts({dir + "/b.parquet"}));
  ASSERT_FALSE(first_bad.ok());
  EXPECT_THAT(first_bad.status().message(), HasSubstr("'" + dir + "/b.parquet'"));
}

// Reads partition 0 batch by batch, keeping only the ids and names (outside the engine
// pool, so that what the pool holds is one batch at a time); the reading status.
arrow::Status ReadIdsAndNames(const Source& source, std::vector<int64_t>* ids,
                              std::vector<std::string>* names) {
  ARROW_ASSIGN_OR_RAISE(auto reader, source.OpenPartition(0));
  while (true) {
    std::shared_ptr<arrow::RecordBatch> batch;
    ARROW_RETURN_NOT_OK(reader->ReadNext(&batch));
    if (!batch) return arrow::Status::OK();
    const auto& id = static_cast<const arrow::Int64Array&>(*batch->GetColumnByName("id"));
    const auto& name =
        static_cast<const arrow::StringArray&>(*batch->GetColumnByName("name"));
    for (int64_t i = 0; i < batch->num_rows(); ++i) {
      ids->push_back(id.Value(i));
      names->push_back(name.GetString(i));
    }
  }
}

TEST(TableSource, ParquetRowGroupLargerThanTheMemoryLimitIsReadInBatches) {
  const std::string dir = MakeTestDir();
  auto table = MakeTable(0, 1000000);
  WriteParquet(dir + "/a.parquet", *table, /*row_group_rows=*/1000000);
  const int64_t limit = 12 << 20;
  // One row group whose decoded columns alone are over twice the limit.
  ASSERT_GT(arrow::util::TotalBufferSize(*table), 2 * limit);

  auto options = Opts({dir});
  options.batch_rows = 4096;
  auto source = Open(options);
  ASSERT_TRUE(source);
  ASSERT_EQ(source->num_partitions(), 1);
  std::vector<int64_t> free_ids, ids;
  std::vector<std::string> free_names, names;
  ASSERT_TRUE(ReadIdsAndNames(*source, &free_ids, &free_names).ok());
  {
    MemoryLimitScope scope(limit);
    EnginePool()->ResetPeak();
    arrow::Status st = ReadIdsAndNames(*source, &ids, &names);
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_LE(EnginePool()->max_memory(), limit);
  }
  ASSERT_EQ(ids.size(), 1000000u);
  EXPECT_EQ(ids, free_ids);
  EXPECT_EQ(names, free_names);
  EXPECT_EQ(names[999999], "n999999");
}

TEST(TableSource, ParquetUnderALimitTooSmallForOneBatchFailsNamingTheLimitAndFile) {
  const std::string dir = MakeTestDir();
  WriteParquet(dir + "/a.parquet", *MakeTable(0, 50000), /*row_group_rows=*/50000);
  auto source = Open(Opts({dir}));  // batches of 16K rows: over 300 KiB each
  ASSERT_TRUE(source);
  MemoryLimitScope scope(64 << 10);
  std::vector<int64_t> ids;
  std::vector<std::string> names;
  arrow::Status st = ReadIdsAndNames(*source, &ids, &names);
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(st.IsOutOfMemory()) << st.ToString();
  EXPECT_THAT(st.message(), HasSubstr("'" + dir + "/a.parquet'"));
  EXPECT_THAT(st.message(), HasSubstr("over --memory-limit"));
  EXPECT_THAT(st.message(), HasSubstr("of 64.0 KiB"));
}

TEST(TableSource, ParquetFilesWithFewerOrOtherTypedColumnsFollowTheFirstFile) {
  const std::string dir = MakeTestDir();
  WriteParquet(dir + "/a.parquet", *MakeTable(0, 2));
  // b lacks `name` and has `score` as int32: read as null names and float64 scores, as
  // the schema comes from the first file.
  arrow::Int64Builder ids;
  arrow::Int32Builder scores;
  ASSERT_TRUE(ids.AppendValues({7, 8}).ok());
  ASSERT_TRUE(scores.AppendValues({3, 4}).ok());
  auto b = arrow::Table::Make(arrow::schema({arrow::field("id", arrow::int64()),
                                             arrow::field("score", arrow::int32())}),
                              {*ids.Finish(), *scores.Finish()});
  WriteParquet(dir + "/b.parquet", *b);
  auto source = Open(Opts({dir}));
  ASSERT_TRUE(source);
  auto table = ReadTable(*source);
  ASSERT_TRUE(table);
  EXPECT_EQ(Int64s(*table, "id"), (std::vector<int64_t>{0, 1, 7, 8}));
  auto name = table->GetColumnByName("name");
  EXPECT_EQ(name->null_count(), 2);
  EXPECT_TRUE(name->chunk(1)->IsNull(0));
  auto score = table->GetColumnByName("score");
  ASSERT_TRUE(score->type()->Equals(arrow::float64()));
  EXPECT_EQ(static_cast<const arrow::DoubleArray&>(*score->chunk(1)).Value(1), 4.0);
}

TEST(TableSource, BadCsvRowIsNamedWithItsFile) {
  const std::string dir = MakeTestDir();
  WriteCsv(dir + "/a.csv", *MakeTable(0, 2));
  // The bad row sits past the first read block (1 MiB), where Arrow's own message
  // does not name the file.
  std::string csv = "id,name,score\n";
  for (int i = 0; i < 200000; ++i) csv += std::to_string(i) + ",x,0.5\n";
  csv += "2,y,0.5,extra\n";
  WriteText(dir + "/b.csv", csv);
  auto source = Open(Opts({dir}));
  ASSERT_TRUE(source);
  auto reader = source->OpenPartition(1);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  std::shared_ptr<arrow::RecordBatch> batch;
  arrow::Status st;
  do {
    st = (*reader)->ReadNext(&batch);
  } while (st.ok() && batch);
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.message(), HasSubstr("reading '" + dir + "/b.csv'"));
  EXPECT_THAT(st.message(), HasSubstr("Expected 3 columns"));
}

TEST(TableSource, MissingInputIsNamed) {
  const std::string dir = MakeTestDir();
  auto source = OpenTableSource(Opts({dir + "/nope"}));
  ASSERT_FALSE(source.ok());
  EXPECT_TRUE(source.status().IsIOError());
  EXPECT_THAT(source.status().message(), HasSubstr("'" + dir + "/nope' does not exist"));
}

}  // namespace
}  // namespace dlprep
