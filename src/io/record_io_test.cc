#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "io/crc32c.h"
#include "io/tfrecord.h"
#include "io/tfrecord_test_util.h"

namespace dlprep::io {
namespace {

namespace fs = std::filesystem;
using testing::Contains;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void WriteRecords(const std::string& path, TfRecordCompression c,
                  const std::vector<std::string>& records) {
  auto w = RecordWriter::Open(path, c).ValueOrDie();
  for (const auto& r : records) ASSERT_TRUE(w->Write(r).ok());
  ASSERT_TRUE(w->Close().ok());
  EXPECT_EQ(w->bytes_written(), static_cast<int64_t>(fs::file_size(path)));
}

arrow::Result<std::vector<std::string>> ReadAll(const std::string& path,
                                                TfRecordCompression c) {
  ARROW_ASSIGN_OR_RAISE(auto reader, RecordReader::Open(path, c));
  std::vector<std::string> out;
  std::string_view rec;
  while (true) {
    ARROW_ASSIGN_OR_RAISE(bool more, reader->Next(&rec));
    if (!more) break;
    out.emplace_back(rec);
  }
  return out;
}

std::vector<std::string> SampleRecords() {
  return {"first", "", std::string(1000, 'x'), "last record"};
}

TEST(RecordIo, PlainFramingIsTfRecord) {
  std::string dir = testing::TempDir("d");
  WriteRecords(dir + "/a", TfRecordCompression::kNone, {"abc"});
  // uint64 LE length 3, masked CRC of the length, "abc", masked CRC of "abc".
  std::string bytes = ReadFile(dir + "/a");
  ASSERT_EQ(bytes.size(), 3u + 16u);
  EXPECT_EQ(testing::ToHex(bytes.substr(0, 8)), "0300000000000000");
  EXPECT_EQ(bytes.substr(12, 3), "abc");
}

class RecordIoRoundTrip : public ::testing::TestWithParam<TfRecordCompression> {};

TEST_P(RecordIoRoundTrip, ReadsBackWhatItWrote) {
  std::string path = testing::TempDir("d") + "/f";
  WriteRecords(path, GetParam(), SampleRecords());
  // Explicit flag and auto-detection both work.
  EXPECT_EQ(ReadAll(path, GetParam()).ValueOrDie(), SampleRecords());
  EXPECT_EQ(ReadAll(path, TfRecordCompression::kAuto).ValueOrDie(), SampleRecords());
}

TEST_P(RecordIoRoundTrip, ManyMegabytesStreamThroughSmallBuffers) {
  std::string path = testing::TempDir("d") + "/big";
  std::mt19937 rng(7);
  std::vector<std::string> records;
  for (int i = 0; i < 40; ++i) {
    std::string r(static_cast<size_t>(50000 + rng() % 300000), '\0');
    for (size_t k = 0; k < r.size(); ++k) r[k] = static_cast<char>(rng() % 7);
    records.push_back(std::move(r));
  }
  records.push_back(std::string(3 << 20, 'z'));  // one record bigger than any buffer
  WriteRecords(path, GetParam(), records);
  if (GetParam() != TfRecordCompression::kNone) {
    EXPECT_GT(fs::file_size(path), 1u << 20);  // several zlib buffers of input
  }
  auto got = ReadAll(path, TfRecordCompression::kAuto).ValueOrDie();
  ASSERT_EQ(got.size(), records.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], records[i]) << i;
}

INSTANTIATE_TEST_SUITE_P(Compressions, RecordIoRoundTrip,
                         ::testing::Values(TfRecordCompression::kNone,
                                           TfRecordCompression::kGzip,
                                           TfRecordCompression::kZlib));

TEST(RecordIo, CompressedIsSmallerAndBytesWrittenIsOnDisk) {
  std::string dir = testing::TempDir("d");
  std::vector<std::string> recs(100, std::string(10000, 'a'));
  WriteRecords(dir + "/plain", TfRecordCompression::kNone, recs);
  WriteRecords(dir + "/gz", TfRecordCompression::kGzip, recs);
  EXPECT_EQ(fs::file_size(dir + "/plain"), 100u * 10016u);
  EXPECT_LT(fs::file_size(dir + "/gz"), 100000u);
  std::string gz = ReadFile(dir + "/gz");
  EXPECT_EQ(static_cast<uint8_t>(gz[0]), 0x1f);
  EXPECT_EQ(static_cast<uint8_t>(gz[1]), 0x8b);
}

TEST(RecordIo, ConcatenatedGzipMembers) {
  std::string dir = testing::TempDir("d");
  WriteRecords(dir + "/a", TfRecordCompression::kGzip, {"one", "two"});
  WriteRecords(dir + "/b", TfRecordCompression::kGzip, {"three"});
  WriteFile(dir + "/ab", ReadFile(dir + "/a") + ReadFile(dir + "/b"));
  EXPECT_EQ(ReadAll(dir + "/ab", TfRecordCompression::kGzip).ValueOrDie(),
            (std::vector<std::string>{"one", "two", "three"}));
}

TEST(RecordIo, EmptyFileHasNoRecords) {
  std::string path = testing::TempDir("d") + "/empty";
  WriteFile(path, "");
  for (auto c : {TfRecordCompression::kAuto, TfRecordCompression::kNone,
                 TfRecordCompression::kGzip, TfRecordCompression::kZlib}) {
    EXPECT_TRUE(ReadAll(path, c).ValueOrDie().empty());
  }
}

TEST(RecordIo, MissingFileNamesIt) {
  auto r = RecordReader::Open("/nonexistent/h1/file.tfrecord", TfRecordCompression::kAuto);
  EXPECT_TRUE(r.status().IsIOError());
  EXPECT_TRUE(Contains(r.status(), "/nonexistent/h1/file.tfrecord"));
}

// Corrupts byte `at` of a plain file holding SampleRecords() and reads it.
struct Corrupted {
  std::string path;
  std::string bytes;
  explicit Corrupted(const std::string& name) {
    path = testing::TempDir(name) + "/f.tfrecord";
    WriteRecords(path, TfRecordCompression::kNone, SampleRecords());
    bytes = ReadFile(path);
  }
  void Flip(size_t at) {
    bytes[at] = static_cast<char>(bytes[at] ^ 0x10);
    WriteFile(path, bytes);
  }
  void Truncate(size_t size) { WriteFile(path, bytes.substr(0, size)); }
};

// Record offsets of SampleRecords(): 0, 21, 37, 1053.
constexpr size_t kSecond = 5 + 16, kThird = kSecond + 16, kFourth = kThird + 1016;

TEST(RecordIo, FlippedLengthBitIsUnrecoverable) {
  Corrupted f("c");
  f.Flip(kThird + 1);
  auto reader = RecordReader::Open(f.path, TfRecordCompression::kAuto).ValueOrDie();
  std::string_view rec;
  ASSERT_TRUE(reader->Next(&rec).ValueOrDie());
  ASSERT_TRUE(reader->Next(&rec).ValueOrDie());
  auto st = reader->Next(&rec).status();
  EXPECT_TRUE(st.IsIOError());
  EXPECT_TRUE(Contains(st, f.path)) << st.ToString();
  EXPECT_TRUE(Contains(st, "length CRC mismatch")) << st.ToString();
  EXPECT_TRUE(Contains(st, "at byte offset 37")) << st.ToString();
  EXPECT_FALSE(reader->SkipCorrupt().ValueOrDie());
  EXPECT_FALSE(reader->Next(&rec).ok());
}

TEST(RecordIo, FlippedLengthCrcBit) {
  Corrupted f("c");
  f.Flip(kSecond + 9);
  auto st = ReadAll(f.path, TfRecordCompression::kNone).status();
  EXPECT_TRUE(Contains(st, "length CRC mismatch")) << st.ToString();
  EXPECT_TRUE(Contains(st, "at byte offset 21")) << st.ToString();
}

TEST(RecordIo, FlippedDataBitIsSkippable) {
  Corrupted f("c");
  f.Flip(kThird + 12 + 500);
  auto reader = RecordReader::Open(f.path, TfRecordCompression::kNone).ValueOrDie();
  std::string_view rec;
  ASSERT_TRUE(reader->Next(&rec).ValueOrDie());
  ASSERT_TRUE(reader->Next(&rec).ValueOrDie());
  auto st = reader->Next(&rec).status();
  EXPECT_TRUE(Contains(st, f.path + ": corrupt record at byte offset 37: data CRC mismatch"))
      << st.ToString();
  EXPECT_EQ(reader->record_offset(), 37);
  EXPECT_TRUE(reader->SkipCorrupt().ValueOrDie());
  ASSERT_TRUE(reader->Next(&rec).ValueOrDie());
  EXPECT_EQ(rec, "last record");
  EXPECT_EQ(reader->record_offset(), static_cast<int64_t>(kFourth));
  EXPECT_FALSE(reader->Next(&rec).ValueOrDie());
}

TEST(RecordIo, FlippedDataCrcBit) {
  Corrupted f("c");
  f.Flip(kSecond - 2);  // last byte of the first record's data CRC
  auto reader = RecordReader::Open(f.path, TfRecordCompression::kNone).ValueOrDie();
  std::string_view rec;
  auto st = reader->Next(&rec).status();
  EXPECT_TRUE(Contains(st, "at byte offset 0: data CRC mismatch")) << st.ToString();
  EXPECT_TRUE(reader->SkipCorrupt().ValueOrDie());
  ASSERT_TRUE(reader->Next(&rec).ValueOrDie());
  EXPECT_EQ(rec, "");
}

TEST(RecordIo, SkipCorruptWithoutErrorIsInvalid) {
  Corrupted f("c");
  auto reader = RecordReader::Open(f.path, TfRecordCompression::kNone).ValueOrDie();
  EXPECT_TRUE(reader->SkipCorrupt().status().IsInvalid());
}

TEST(RecordIo, TruncatedInHeader) {
  Corrupted f("c");
  f.Truncate(kFourth + 5);
  auto reader = RecordReader::Open(f.path, TfRecordCompression::kNone).ValueOrDie();
  std::string_view rec;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(reader->Next(&rec).ValueOrDie());
  auto st = reader->Next(&rec).status();
  EXPECT_TRUE(Contains(st, "ends inside the 12-byte record header")) << st.ToString();
  EXPECT_TRUE(Contains(st, "at byte offset 1053")) << st.ToString();
  EXPECT_FALSE(reader->SkipCorrupt().ValueOrDie());
}

TEST(RecordIo, TruncatedInData) {
  Corrupted f("c");
  f.Truncate(kThird + 12 + 100);
  auto st = ReadAll(f.path, TfRecordCompression::kNone).status();
  EXPECT_TRUE(Contains(st, "ends inside the record data")) << st.ToString();
  EXPECT_TRUE(Contains(st, "at byte offset 37")) << st.ToString();
}

TEST(RecordIo, TruncatedGzipFile) {
  std::string dir = testing::TempDir("d");
  std::vector<std::string> recs;
  std::mt19937 rng(3);
  for (int i = 0; i < 50; ++i) {
    std::string r(2000, '\0');
    for (auto& ch : r) ch = static_cast<char>(rng());
    recs.push_back(r);
  }
  WriteRecords(dir + "/gz", TfRecordCompression::kGzip, recs);
  std::string gz = ReadFile(dir + "/gz");
  WriteFile(dir + "/cut", gz.substr(0, gz.size() / 2));
  auto st = ReadAll(dir + "/cut", TfRecordCompression::kAuto).status();
  EXPECT_TRUE(st.IsIOError());
  EXPECT_TRUE(Contains(st, dir + "/cut")) << st.ToString();
  EXPECT_TRUE(Contains(st, "truncated")) << st.ToString();
}

TEST(RecordIo, GarbageFileIsNamed) {
  std::string path = testing::TempDir("d") + "/garbage.tfrecord";
  WriteFile(path, "this is certainly not a TFRecord file, just text\n");
  auto st = ReadAll(path, TfRecordCompression::kAuto).status();
  EXPECT_TRUE(st.IsIOError());
  EXPECT_TRUE(Contains(st, path)) << st.ToString();
  EXPECT_TRUE(Contains(st, "at byte offset 0")) << st.ToString();
  EXPECT_TRUE(Contains(st, "not a TFRecord file")) << st.ToString();
}

TEST(RecordIo, NoneFlagOnGzipFileSuggestsGzip) {
  std::string dir = testing::TempDir("d");
  WriteRecords(dir + "/gz", TfRecordCompression::kGzip, SampleRecords());
  auto st = ReadAll(dir + "/gz", TfRecordCompression::kNone).status();
  EXPECT_TRUE(st.IsIOError());
  EXPECT_TRUE(Contains(st, dir + "/gz")) << st.ToString();
  EXPECT_TRUE(Contains(st, "appears to be GZIP-compressed")) << st.ToString();
  EXPECT_TRUE(Contains(st, "--compression gzip")) << st.ToString();
}

TEST(RecordIo, GzipFlagOnPlainFileSuggestsNone) {
  std::string dir = testing::TempDir("d");
  WriteRecords(dir + "/plain", TfRecordCompression::kNone, SampleRecords());
  auto st = ReadAll(dir + "/plain", TfRecordCompression::kGzip).status();
  EXPECT_TRUE(Contains(st, "--compression gzip does not match")) << st.ToString();
  EXPECT_TRUE(Contains(st, "uncompressed TFRecord file; use --compression none"))
      << st.ToString();
}

TEST(RecordIo, GzipFlagOnZlibFileSuggestsZlib) {
  std::string dir = testing::TempDir("d");
  WriteRecords(dir + "/z", TfRecordCompression::kZlib, SampleRecords());
  auto st = ReadAll(dir + "/z", TfRecordCompression::kGzip).status();
  EXPECT_TRUE(Contains(st, "ZLIB-compressed; use --compression zlib")) << st.ToString();
  auto st2 = ReadAll(dir + "/z", TfRecordCompression::kNone).status();
  EXPECT_TRUE(Contains(st2, "ZLIB-compressed")) << st2.ToString();
}

// A record header whose length field reads `length`, with a valid length CRC.
std::string HeaderClaiming(uint64_t length) {
  std::string h(12, '\0');
  for (int i = 0; i < 8; ++i) h[i] = static_cast<char>((length >> (8 * i)) & 0xff);
  const uint32_t crc = MaskCrc(Crc32c(h.data(), 8));
  for (int i = 0; i < 4; ++i) h[8 + i] = static_cast<char>((crc >> (8 * i)) & 0xff);
  return h;
}

// Writes `bytes` (already framed, or not) through the compressor of `c`.
void WriteThrough(const std::string& path, TfRecordCompression c, const std::string& bytes) {
  auto w = RecordWriter::Open(path, c).ValueOrDie();
  ASSERT_TRUE(w->WriteFramed(bytes).ok());
  ASSERT_TRUE(w->Close().ok());
}

// Record lengths in the last values below 2^64 with a valid length CRC: length + footer
// size wrapped around and the reader read far outside its buffer (SIGSEGV).
class HugeRecordLength
    : public ::testing::TestWithParam<std::tuple<uint64_t, TfRecordCompression>> {};

TEST_P(HugeRecordLength, IsALostRecordNamedByFileAndOffset) {
  const auto [length, compression] = GetParam();
  std::string dir = testing::TempDir("d");
  WriteRecords(dir + "/good", TfRecordCompression::kNone, {"first", ""});
  const std::string good = ReadFile(dir + "/good");
  ASSERT_EQ(good.size(), 37u);
  const std::string path = dir + "/f.tfrecord";
  // Bytes follow the header, so a wrapped-around size of a few bytes seems to be there.
  WriteThrough(path, compression, good + HeaderClaiming(length) + std::string(64, '\0'));
  auto reader = RecordReader::Open(path, TfRecordCompression::kAuto).ValueOrDie();
  std::string_view rec;
  ASSERT_TRUE(reader->Next(&rec).ValueOrDie());
  EXPECT_EQ(rec, "first");
  ASSERT_TRUE(reader->Next(&rec).ValueOrDie());
  EXPECT_EQ(rec, "");
  auto st = reader->Next(&rec).status();
  EXPECT_TRUE(st.IsIOError()) << st.ToString();
  EXPECT_TRUE(Contains(st, path + ": ")) << st.ToString();
  EXPECT_TRUE(Contains(st, std::to_string(length) + " data bytes")) << st.ToString();
  EXPECT_TRUE(Contains(st, "at byte offset 37")) << st.ToString();
  EXPECT_FALSE(reader->SkipCorrupt().ValueOrDie());
  if (compression == TfRecordCompression::kNone) {
    EXPECT_EQ(reader->lost_bytes(), 12 + 64);  // from the bad header to the end
  } else {
    EXPECT_GT(reader->lost_bytes(), 0);
    EXPECT_LE(reader->lost_bytes(), static_cast<int64_t>(fs::file_size(path)));
  }
  EXPECT_FALSE(reader->Next(&rec).ok());
}

INSTANTIATE_TEST_SUITE_P(
    Lengths, HugeRecordLength,
    ::testing::Combine(::testing::Values(~uint64_t{0}, ~uint64_t{0} - 2, ~uint64_t{0} - 3,
                                         ~uint64_t{0} - 11, ~uint64_t{0} - 15,
                                         uint64_t{1} << 63, uint64_t{1} << 62),
                       ::testing::Values(TfRecordCompression::kNone,
                                         TfRecordCompression::kGzip,
                                         TfRecordCompression::kZlib)));

// A gzip member that holds `payload` in one stored (uncompressed) deflate block that is
// not the last block, followed by `tail`, raw.
std::string GzipStoredBlock(const std::string& payload, const std::string& tail) {
  std::string out = testing::FromHex("1f8b0800000000000003");  // no name, mtime 0, Unix
  const uint16_t n = static_cast<uint16_t>(payload.size());
  out += '\0';  // BFINAL 0, BTYPE 00 (stored)
  out += static_cast<char>(n & 0xff);
  out += static_cast<char>(n >> 8);
  out += static_cast<char>(~n & 0xff);
  out += static_cast<char>((~n >> 8) & 0xff);
  return out + payload + tail;
}

TEST(RecordIo, CorruptGzipStreamKeepsTheRecordsBeforeIt) {
  std::string dir = testing::TempDir("d");
  WriteRecords(dir + "/plain", TfRecordCompression::kNone, SampleRecords());
  const std::string plain = ReadFile(dir + "/plain");
  const std::string path = dir + "/bad.tfrecord.gz";
  // 0x07: a last block of the reserved type 3; then bytes that are never reached.
  const std::string tail = "\x07" + std::string(100, 'z');
  WriteFile(path, GzipStoredBlock(plain, tail));
  auto reader = RecordReader::Open(path, TfRecordCompression::kAuto).ValueOrDie();
  std::string_view rec;
  for (const auto& expected : SampleRecords()) {
    auto more = reader->Next(&rec);
    ASSERT_TRUE(more.ok()) << more.status().ToString();
    ASSERT_TRUE(*more);
    EXPECT_EQ(rec, expected);
  }
  auto st = reader->Next(&rec).status();
  EXPECT_TRUE(st.IsIOError()) << st.ToString();
  EXPECT_TRUE(Contains(st, path + ": corrupt gzip data")) << st.ToString();
  EXPECT_TRUE(Contains(st, "invalid block type")) << st.ToString();
  EXPECT_TRUE(Contains(st, "at byte offset " + std::to_string(plain.size()))) << st.ToString();
  // Not a record that can be stepped over: the rest of the file is lost.
  auto skip = reader->SkipCorrupt();
  ASSERT_TRUE(skip.ok()) << skip.status().ToString();
  EXPECT_FALSE(*skip);
  // inflate consumed the bad block header byte with the last record.
  EXPECT_EQ(reader->lost_bytes(), static_cast<int64_t>(tail.size()) - 1);
  EXPECT_FALSE(reader->Next(&rec).ok());
}

TEST(RecordIo, BytesAfterTheGzipMemberAreNamed) {
  std::string dir = testing::TempDir("d");
  WriteRecords(dir + "/gz", TfRecordCompression::kGzip, SampleRecords());
  const std::string gz = ReadFile(dir + "/gz");
  const std::string path = dir + "/trailing.tfrecord.gz";
  WriteFile(path, gz + "this is not gzip");
  auto reader = RecordReader::Open(path, TfRecordCompression::kGzip).ValueOrDie();
  std::string_view rec;
  for (size_t i = 0; i < SampleRecords().size(); ++i) {
    auto more = reader->Next(&rec);
    ASSERT_TRUE(more.ok()) << more.status().ToString();
    ASSERT_TRUE(*more);
  }
  auto st = reader->Next(&rec).status();
  EXPECT_TRUE(st.IsIOError()) << st.ToString();
  EXPECT_TRUE(Contains(st, path + ": 16 bytes after the end of the gzip data")) << st.ToString();
  EXPECT_TRUE(Contains(st, "compressed byte offset " + std::to_string(gz.size())))
      << st.ToString();
  EXPECT_TRUE(Contains(st, "at byte offset 1080")) << st.ToString();
  auto skip = reader->SkipCorrupt();
  ASSERT_TRUE(skip.ok()) << skip.status().ToString();
  EXPECT_FALSE(*skip);
  EXPECT_EQ(reader->lost_bytes(), 16);
}

// Inputs of tests/fuzz/corpus/tfrecord_framing (see its README): no crash; the records
// before the damage are read, then an IOError names the file and the offset after them
// and the rest of the file is lost.
TEST(RecordIo, CorpusSeeds) {
  int seen = 0;
  for (const auto& entry : fs::directory_iterator(DLPREP_FUZZ_CORPUS "/tfrecord_framing")) {
    const std::string path = entry.path().string();
    const std::string name = entry.path().filename().string();
    // Well-formed fuzzer starting points; fuzz_replay.tfrecord_framing reads them.
    if (name.rfind("seed_", 0) == 0) continue;
    auto reader = RecordReader::Open(path, TfRecordCompression::kAuto).ValueOrDie();
    std::string_view rec;
    int64_t records = 0, good_bytes = 0;
    arrow::Status st;
    while (true) {
      auto next = reader->Next(&rec);
      if (!next.ok()) {
        st = next.status();
        break;
      }
      if (!*next) break;
      ++records;
      good_bytes += static_cast<int64_t>(rec.size()) + 16;
    }
    ++seen;
    if (name.rfind("key_", 0) == 0) {
      EXPECT_TRUE(st.ok()) << name << ": " << st.ToString();
      EXPECT_EQ(records, 3) << name;
      continue;
    }
    const size_t after = name.find("_after_");
    const int64_t expected = after == std::string::npos ? 2 : std::stoll(name.substr(after + 7));
    EXPECT_EQ(records, expected) << name;
    EXPECT_TRUE(st.IsIOError()) << name << ": " << st.ToString();
    EXPECT_TRUE(Contains(st, path + ": ")) << st.ToString();
    EXPECT_TRUE(Contains(st, "at byte offset " + std::to_string(good_bytes))) << st.ToString();
    auto skip = reader->SkipCorrupt();
    ASSERT_TRUE(skip.ok()) << name << ": " << skip.status().ToString();
    EXPECT_FALSE(*skip) << name;
    EXPECT_GT(reader->lost_bytes(), 0) << name;
  }
  EXPECT_GE(seen, 10);
}

}  // namespace
}  // namespace dlprep::io
