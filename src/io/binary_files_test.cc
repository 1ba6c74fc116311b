#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <arrow/api.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "dlprep/source.h"

namespace dlprep {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string MakeTestDir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  fs::path dir =
      fs::path(DLPREP_TEST_TMPDIR) /
      ("binary-files-" + std::string(info->name()) + "-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

void WriteFile(const std::string& path, const std::string& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

// Reads every partition in order; checks each batch is valid.
std::vector<std::shared_ptr<arrow::RecordBatch>> ReadAll(const Source& source) {
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  for (int64_t p = 0; p < source.num_partitions(); ++p) {
    auto reader = source.OpenPartition(p);
    EXPECT_TRUE(reader.ok()) << reader.status().ToString();
    if (!reader.ok()) return batches;
    while (true) {
      std::shared_ptr<arrow::RecordBatch> batch;
      auto st = (*reader)->ReadNext(&batch);
      EXPECT_TRUE(st.ok()) << st.ToString();
      if (!st.ok() || !batch) break;
      EXPECT_TRUE(batch->ValidateFull().ok());
      EXPECT_TRUE(batch->schema()->Equals(*source.schema()));
      batches.push_back(batch);
    }
  }
  return batches;
}

std::shared_ptr<arrow::Table> ReadTable(const Source& source) {
  auto batches = ReadAll(source);
  auto table = arrow::Table::FromRecordBatches(source.schema(), batches);
  EXPECT_TRUE(table.ok());
  return table.ok() ? *table : nullptr;
}

std::vector<std::string> Strings(const arrow::Table& t, const std::string& column) {
  std::vector<std::string> out;
  for (const auto& chunk : t.GetColumnByName(column)->chunks()) {
    const auto& a = static_cast<const arrow::BinaryArray&>(*chunk);
    for (int64_t i = 0; i < a.length(); ++i) out.push_back(a.GetString(i));
  }
  return out;
}

std::vector<int64_t> Ints(const arrow::Table& t, const std::string& column) {
  std::vector<int64_t> out;
  for (const auto& chunk : t.GetColumnByName(column)->chunks()) {
    const auto& a = static_cast<const arrow::Int64Array&>(*chunk);
    for (int64_t i = 0; i < a.length(); ++i) out.push_back(a.Value(i));
  }
  return out;
}

BinaryFilesOptions Opts(std::vector<std::string> paths,
                        const std::function<void(BinaryFilesOptions&)>& set = {}) {
  BinaryFilesOptions options;
  options.paths = std::move(paths);
  if (set) set(options);
  return options;
}

std::shared_ptr<Source> Open(const BinaryFilesOptions& options) {
  auto source = OpenBinaryFiles(options);
  EXPECT_TRUE(source.ok()) << source.status().ToString();
  return source.ok() ? *source : nullptr;
}

TEST(BinaryFiles, SchemaIsSparkBinaryFile) {
  const std::string dir = MakeTestDir();
  WriteFile(dir + "/a.bin", "a");
  auto source = Open(Opts({dir}));
  ASSERT_TRUE(source);
  auto expected =
      arrow::schema({arrow::field("path", arrow::utf8(), false),
                     arrow::field("modificationTime",
                                  arrow::timestamp(arrow::TimeUnit::MICRO, "UTC"), false),
                     arrow::field("length", arrow::int64(), false),
                     arrow::field("content", arrow::binary(), true)});
  EXPECT_TRUE(source->schema()->Equals(*expected)) << source->schema()->ToString();
  const auto& ts =
      static_cast<const arrow::TimestampType&>(*source->schema()->field(1)->type());
  EXPECT_EQ(ts.timezone(), "UTC");
  EXPECT_EQ(ts.unit(), arrow::TimeUnit::MICRO);
}

TEST(BinaryFiles, ContentEqualsFileBytes) {
  const std::string dir = MakeTestDir();
  const std::string big = RandomBytes(3 * 1000 * 1000, 1);
  const std::string zeros("\0\0\x01\0", 4);
  WriteFile(dir + "/big.bin", big);
  WriteFile(dir + "/empty.bin", "");
  WriteFile(dir + "/zeros.bin", zeros);
  WriteFile(dir + "/sub/small.txt", "hello");
  auto source = Open(Opts({dir}, [](BinaryFilesOptions& o) { o.recursive = true; }));
  ASSERT_TRUE(source);
  EXPECT_EQ(source->total_bytes(), 3000000 + 4 + 5);
  auto table = ReadTable(*source);
  ASSERT_TRUE(table);
  EXPECT_EQ(Strings(*table, "path"),
            (std::vector<std::string>{dir + "/big.bin", dir + "/empty.bin",
                                      dir + "/sub/small.txt", dir + "/zeros.bin"}));
  EXPECT_EQ(Ints(*table, "length"), (std::vector<int64_t>{3000000, 0, 5, 4}));
  EXPECT_EQ(Strings(*table, "content"),
            (std::vector<std::string>{big, "", "hello", zeros}));
  EXPECT_EQ(table->GetColumnByName("content")->null_count(), 0);

  // modificationTime is stat()'s mtime in microseconds.
  struct stat st;
  ASSERT_EQ(::stat((dir + "/big.bin").c_str(), &st), 0);
  auto mtime = table->GetColumnByName("modificationTime")->chunk(0);
  EXPECT_EQ(static_cast<const arrow::TimestampArray&>(*mtime).Value(0),
            int64_t{st.st_mtim.tv_sec} * 1000000 + st.st_mtim.tv_nsec / 1000);
}

TEST(BinaryFiles, RelativePatternsGiveAbsolutePaths) {
  const std::string dir = MakeTestDir();
  WriteFile(dir + "/x/a.wav", "A");
  WriteFile(dir + "/x/b.wav", "B");
  const fs::path old = fs::current_path();
  fs::current_path(dir);
  auto source = OpenBinaryFiles(Opts({"x/*.wav", dir + "/x/a.wav", "./x/b.wav"}));
  fs::current_path(old);
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  auto table = ReadTable(**source);
  EXPECT_EQ(Strings(*table, "path"),
            (std::vector<std::string>{dir + "/x/a.wav", dir + "/x/b.wav"}));
  EXPECT_EQ(Strings(*table, "content"), (std::vector<std::string>{"A", "B"}));
}

TEST(BinaryFiles, WithoutContentLeavesContentNullAndDoesNotOpenFiles) {
  const std::string dir = MakeTestDir();
  WriteFile(dir + "/a.bin", "abc");
  WriteFile(dir + "/locked.bin", "secret!");
  ASSERT_EQ(chmod((dir + "/locked.bin").c_str(), 0), 0);
  auto source =
      Open(Opts({dir + "/*.bin"}, [](BinaryFilesOptions& o) { o.read_content = false; }));
  ASSERT_TRUE(source);
  auto table = ReadTable(*source);
  chmod((dir + "/locked.bin").c_str(), 0644);
  ASSERT_TRUE(table);
  EXPECT_EQ(table->num_rows(), 2);
  EXPECT_EQ(table->GetColumnByName("content")->null_count(), 2);
  EXPECT_EQ(Ints(*table, "length"), (std::vector<int64_t>{3, 7}));
  EXPECT_EQ(source->total_bytes(), 10);
}

TEST(BinaryFiles, UnreadableFileIsNamed) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads every file";
  const std::string dir = MakeTestDir();
  WriteFile(dir + "/locked.bin", "secret!");
  ASSERT_EQ(chmod((dir + "/locked.bin").c_str(), 0), 0);
  auto source = Open(Opts({dir}));
  ASSERT_TRUE(source);
  auto reader = *source->OpenPartition(0);
  std::shared_ptr<arrow::RecordBatch> batch;
  auto st = reader->ReadNext(&batch);
  chmod((dir + "/locked.bin").c_str(), 0644);
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.message(), HasSubstr("'" + dir + "/locked.bin'"));
  EXPECT_THAT(st.message(), HasSubstr("ermission denied"));
}

TEST(BinaryFiles, FileOverMaxFileSizeIsRefusedAtOpen) {
  const std::string dir = MakeTestDir();
  WriteFile(dir + "/ok.bin", std::string(100, 'x'));
  WriteFile(dir + "/huge.bin", std::string(101, 'x'));
  auto source =
      OpenBinaryFiles(Opts({dir}, [](BinaryFilesOptions& o) { o.max_file_size = 100; }));
  ASSERT_FALSE(source.ok());
  EXPECT_TRUE(source.status().IsInvalid());
  EXPECT_THAT(source.status().message(),
              HasSubstr("'" + dir + "/huge.bin' is 101 bytes"));
  EXPECT_THAT(source.status().message(), HasSubstr("--max-file-size (100 bytes)"));
  // Exactly at the limit is fine.
  EXPECT_TRUE(OpenBinaryFiles(Opts({dir + "/ok.bin"}, [](BinaryFilesOptions& o) {
                o.max_file_size = 100;
              })).ok());
}

TEST(BinaryFiles, InvalidOptionsNameTheOption) {
  const std::string dir = MakeTestDir();
  WriteFile(dir + "/a.bin", "a");
  auto r = OpenBinaryFiles(
      Opts({dir}, [](BinaryFilesOptions& o) { o.files_per_partition = 0; }));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              HasSubstr("--files-per-partition must be at least 1"));
  r = OpenBinaryFiles(Opts({dir}, [](BinaryFilesOptions& o) { o.batch_rows = -1; }));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("--batch-rows"));
  r = OpenBinaryFiles(
      Opts({dir}, [](BinaryFilesOptions& o) { o.max_file_size = int64_t{1} << 31; }));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("--max-file-size must be between 0 and"));
  r = OpenBinaryFiles(BinaryFilesOptions());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("no input paths"));
}

TEST(BinaryFiles, PatternMatchingNothingFails) {
  const std::string dir = MakeTestDir();
  WriteFile(dir + "/a.bin", "a");
  auto r = OpenBinaryFiles(Opts({dir + "/*.wav"}));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("no files match '" + dir + "/*.wav'"));
}

// Sizes 1..10 bytes in files f00..f09.
std::string MakeTenFiles() {
  const std::string dir = MakeTestDir();
  for (int i = 0; i < 10; ++i) {
    WriteFile(dir + "/f0" + std::to_string(i), std::string(i + 1, 'a' + i));
  }
  return dir;
}

std::vector<int64_t> PartitionSizes(const Source& source) {
  std::vector<int64_t> sizes;
  for (int64_t p = 0; p < source.num_partitions(); ++p) {
    auto reader = *source.OpenPartition(p);
    auto table = *arrow::Table::FromRecordBatchReader(reader.get());
    sizes.push_back(table->num_rows());
  }
  return sizes;
}

TEST(BinaryFiles, PartitionsCloseAtFileCount) {
  const std::string dir = MakeTenFiles();
  auto source =
      Open(Opts({dir}, [](BinaryFilesOptions& o) { o.files_per_partition = 3; }));
  ASSERT_TRUE(source);
  EXPECT_EQ(source->num_partitions(), 4);
  EXPECT_EQ(PartitionSizes(*source), (std::vector<int64_t>{3, 3, 3, 1}));
  EXPECT_EQ(source->partition_name(1),
            "files 3-5 of 10 (" + dir + "/f03 ... " + dir + "/f05)");
  EXPECT_EQ(source->partition_name(3), "files 9-9 of 10 (" + dir + "/f09)");
  EXPECT_FALSE(source->OpenPartition(4).ok());
}

TEST(BinaryFiles, PartitionsCloseAtBytes) {
  const std::string dir = MakeTenFiles();
  // Sizes 1..10; at most 10 bytes per partition: {1,2,3,4} {5} {6} {7} {8} {9} {10}.
  auto source =
      Open(Opts({dir}, [](BinaryFilesOptions& o) { o.bytes_per_partition = 10; }));
  ASSERT_TRUE(source);
  EXPECT_EQ(PartitionSizes(*source), (std::vector<int64_t>{4, 1, 1, 1, 1, 1, 1}));
  EXPECT_EQ(source->total_bytes(), 55);
}

TEST(BinaryFiles, BatchesCloseAtRowsAndBytes) {
  const std::string dir = MakeTenFiles();
  auto source = Open(Opts({dir}, [](BinaryFilesOptions& o) {
    o.batch_rows = 4;
    o.bytes_per_batch = 12;
  }));
  ASSERT_TRUE(source);
  ASSERT_EQ(source->num_partitions(), 1);
  std::vector<int64_t> rows;
  for (const auto& b : ReadAll(*source)) rows.push_back(b->num_rows());
  // Sizes 1..10: {1,2,3,4} by rows, then {5,6} {7} {8} {9} {10} by bytes.
  EXPECT_EQ(rows, (std::vector<int64_t>{4, 2, 1, 1, 1, 1}));
  // Without content, bytes do not limit batches.
  source = Open(Opts({dir}, [](BinaryFilesOptions& o) {
    o.read_content = false;
    o.batch_rows = 4;
    o.bytes_per_batch = 12;
  }));
  rows.clear();
  for (const auto& b : ReadAll(*source)) rows.push_back(b->num_rows());
  EXPECT_EQ(rows, (std::vector<int64_t>{4, 4, 2}));
}

TEST(BinaryFiles, OrderIsDeterministicAndSorted) {
  const std::string dir = MakeTestDir();
  for (const char* name : {"b/2", "a/9", "c", "a/10", "b/1"})
    WriteFile(dir + "/" + name, name);
  BinaryFilesOptions options =
      Opts({dir + "/c", dir + "/b", dir + "/a"},
           [](BinaryFilesOptions& o) { o.files_per_partition = 2; });
  auto first = ReadTable(*Open(options));
  auto second = ReadTable(*Open(options));
  ASSERT_TRUE(first && second);
  const std::vector<std::string> expected = {dir + "/a/10", dir + "/a/9", dir + "/b/1",
                                             dir + "/b/2", dir + "/c"};
  EXPECT_EQ(Strings(*first, "path"), expected);
  EXPECT_TRUE(first->Equals(*second));
}

TEST(BinaryFiles, NameFilterAndRecursiveLookup) {
  const std::string dir = MakeTestDir();
  WriteFile(dir + "/a.wav", "1");
  WriteFile(dir + "/a.txt", "2");
  WriteFile(dir + "/deep/b.wav", "3");
  auto source = Open(Opts({dir}, [](BinaryFilesOptions& o) { o.name_filter = "*.wav"; }));
  ASSERT_TRUE(source);
  EXPECT_EQ(Strings(*ReadTable(*source), "path"),
            (std::vector<std::string>{dir + "/a.wav"}));
  source = Open(Opts({dir}, [](BinaryFilesOptions& o) {
    o.name_filter = "*.wav";
    o.recursive = true;
  }));
  ASSERT_TRUE(source);
  EXPECT_EQ(Strings(*ReadTable(*source), "content"),
            (std::vector<std::string>{"1", "3"}));
}

TEST(BinaryFiles, PartitionsCanBeReadConcurrently) {
  const std::string dir = MakeTestDir();
  for (int i = 0; i < 40; ++i) {
    WriteFile(dir + "/f" + std::to_string(100 + i), RandomBytes(1000 + i, i));
  }
  auto source =
      Open(Opts({dir}, [](BinaryFilesOptions& o) { o.files_per_partition = 5; }));
  ASSERT_TRUE(source);
  ASSERT_EQ(source->num_partitions(), 8);
  std::vector<std::shared_ptr<arrow::Table>> tables(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (int p = t; p < 8; p += 2) {
        auto reader = source->OpenPartition(p);
        if (!reader.ok()) return;
        auto table = arrow::Table::FromRecordBatchReader(reader->get());
        if (table.ok()) tables[p] = *table;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int p = 0; p < 8; ++p) {
    ASSERT_TRUE(tables[p]) << p;
    auto reader = *source->OpenPartition(p);
    auto sequential = *arrow::Table::FromRecordBatchReader(reader.get());
    EXPECT_TRUE(tables[p]->Equals(*sequential)) << p;
    EXPECT_EQ(Ints(*tables[p], "length")[0], 1000 + 5 * p);
  }
}

TEST(BinaryFiles, VanishedFileIsNamed) {
  const std::string dir = MakeTestDir();
  WriteFile(dir + "/a.bin", "a");
  WriteFile(dir + "/b.bin", "b");
  auto source = Open(Opts({dir}));
  ASSERT_TRUE(source);
  fs::remove(dir + "/b.bin");
  auto reader = *source->OpenPartition(0);
  std::shared_ptr<arrow::RecordBatch> batch;
  auto st = reader->ReadNext(&batch);
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(st.IsIOError());
  EXPECT_THAT(st.message(),
              HasSubstr("file '" + dir + "/b.bin' was listed but no longer"));
}

TEST(BinaryFiles, FileThatChangedSizeIsNamed) {
  const std::string dir = MakeTestDir();
  WriteFile(dir + "/a.bin", "abc");
  auto source = Open(Opts({dir}));
  ASSERT_TRUE(source);
  WriteFile(dir + "/a.bin", "abcdef");
  auto reader = *source->OpenPartition(0);
  std::shared_ptr<arrow::RecordBatch> batch;
  auto st = reader->ReadNext(&batch);
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.message(), HasSubstr("file '" + dir +
                                      "/a.bin' changed size since it was listed (3 "
                                      "bytes then, 6 bytes now)"));
}

// ReadFileContents: whole files by path, as dlprep.spark's tasks read them.
std::vector<std::optional<std::string>> Values(const arrow::Array& content) {
  const auto& b = static_cast<const arrow::BinaryArray&>(content);
  std::vector<std::optional<std::string>> out;
  for (int64_t i = 0; i < b.length(); ++i) {
    if (b.IsNull(i)) {
      out.emplace_back(std::nullopt);
    } else {
      out.emplace_back(std::string(b.GetView(i)));
    }
  }
  return out;
}

TEST(ReadFileContents, ReadsEachFileWholeAndNamesWhatFails) {
  const std::string dir = MakeTestDir();
  const std::string big = RandomBytes(200000, 1);  // more than one read() may return
  WriteFile(dir + "/a.bin", "alpha");
  WriteFile(dir + "/big.bin", big);
  WriteFile(dir + "/empty.bin", "");
  fs::create_directories(dir + "/sub");
  ASSERT_EQ(mkfifo((dir + "/pipe").c_str(), 0600), 0);
  const std::vector<std::optional<std::string>> paths = {
      dir + "/a.bin", std::nullopt,    dir + "/missing.bin", dir + "/sub",
      dir + "/pipe",  dir + "/big.bin", dir + "/empty.bin"};
  auto c_r = ReadFileContents(paths, 0, int64_t{1} << 30);
  ASSERT_TRUE(c_r.ok()) << c_r.status().ToString();
  FileContents c = std::move(*c_r);
  ASSERT_TRUE(c.content->ValidateFull().ok());
  EXPECT_EQ(c.end, 7);
  EXPECT_EQ(c.content->type()->id(), arrow::Type::BINARY);
  const std::vector<std::optional<std::string>> want = {
      "alpha", std::nullopt, std::nullopt, std::nullopt, std::nullopt, big, ""};
  EXPECT_EQ(Values(*c.content), want);
  ASSERT_EQ(c.errors.size(), 3u);  // a null path is no file, not an error
  EXPECT_EQ(c.errors[0].first, 2);
  EXPECT_EQ(c.errors[0].second, "No such file or directory");
  EXPECT_EQ(c.errors[1].first, 3);
  EXPECT_EQ(c.errors[1].second, "Is a directory");
  EXPECT_EQ(c.errors[2].first, 4);
  EXPECT_EQ(c.errors[2].second, "not a regular file");  // never opened for reading
}

TEST(ReadFileContents, StopsBeforeTheFileThatWouldPassMaxBytes) {
  const std::string dir = MakeTestDir();
  WriteFile(dir + "/1", std::string(40, 'a'));
  WriteFile(dir + "/2", std::string(40, 'b'));
  WriteFile(dir + "/3", std::string(100, 'c'));
  const std::vector<std::optional<std::string>> paths = {dir + "/1", dir + "/2", dir + "/3"};
  // 1 and 2 fit in 100 bytes, 3 would not: the next call starts at 3, which is read
  // although it alone passes the limit (a call always reads a file).
  auto first_r = ReadFileContents(paths, 0, 100);
  ASSERT_TRUE(first_r.ok()) << first_r.status().ToString();
  FileContents first = std::move(*first_r);
  EXPECT_EQ(first.end, 2);
  EXPECT_EQ(Values(*first.content),
            (std::vector<std::optional<std::string>>{std::string(40, 'a'),
                                                     std::string(40, 'b')}));
  auto rest_r = ReadFileContents(paths, first.end, 100 - 1);
  ASSERT_TRUE(rest_r.ok()) << rest_r.status().ToString();
  FileContents rest = std::move(*rest_r);
  EXPECT_EQ(rest.end, 3);
  EXPECT_EQ(Values(*rest.content),
            (std::vector<std::optional<std::string>>{std::string(100, 'c')}));
  auto none_r = ReadFileContents(paths, 3, 100);
  ASSERT_TRUE(none_r.ok()) << none_r.status().ToString();
  FileContents none = std::move(*none_r);
  EXPECT_EQ(none.end, 3);
  EXPECT_EQ(none.content->length(), 0);
  EXPECT_FALSE(ReadFileContents(paths, 4, 100).ok());
  EXPECT_FALSE(ReadFileContents(paths, -1, 100).ok());
}

TEST(ReadFileContents, UnreadableFileIsAnErrorAndTheRestAreRead) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads every file";
  const std::string dir = MakeTestDir();
  WriteFile(dir + "/locked.bin", "secret!");
  WriteFile(dir + "/ok.bin", "fine");
  ASSERT_EQ(chmod((dir + "/locked.bin").c_str(), 0), 0);
  auto c = ReadFileContents({dir + "/locked.bin", dir + "/ok.bin"}, 0, 1 << 20);
  chmod((dir + "/locked.bin").c_str(), 0644);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(Values(*c->content),
            (std::vector<std::optional<std::string>>{std::nullopt, "fine"}));
  ASSERT_EQ(c->errors.size(), 1u);
  EXPECT_THAT(c->errors[0].second, HasSubstr("ermission denied"));
}

}  // namespace
}  // namespace dlprep
