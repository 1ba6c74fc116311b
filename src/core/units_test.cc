#include "core/units.h"

#include <string>
#include <utility>

#include <gtest/gtest.h>

namespace dlprep {
namespace {

TEST(ParseByteSize, AcceptsUnits) {
  EXPECT_EQ(*ParseByteSize("4096", "--x"), 4096);
  EXPECT_EQ(*ParseByteSize("64KB", "--x"), 64 * 1024);
  EXPECT_EQ(*ParseByteSize("1.5GB", "--x"), int64_t{3} << 29);
  EXPECT_EQ(*ParseByteSize("512MiB", "--x"), int64_t{512} << 20);
  EXPECT_EQ(*ParseByteSize("2 tb", "--x"), int64_t{2} << 40);
}

TEST(ParseByteSize, RejectsGarbageNamingTheOption) {
  auto r = ParseByteSize("lots", "--memory-limit");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("--memory-limit"), std::string::npos);
  EXPECT_NE(r.status().message().find("'lots'"), std::string::npos);
  EXPECT_FALSE(ParseByteSize("12XB", "--x").ok());
  EXPECT_FALSE(ParseByteSize("", "--x").ok());
  // One number before the unit: more points are an error, not the number before them.
  EXPECT_FALSE(ParseByteSize("1.2.3MB", "--x").ok());
  EXPECT_FALSE(ParseByteSize("414.44.", "--x").ok());
  EXPECT_FALSE(ParseByteSize(".", "--x").ok());
  EXPECT_EQ(*ParseByteSize("2.", "--x"), 2);
  EXPECT_EQ(*ParseByteSize(".5KB", "--x"), 512);
}

TEST(ParseByteSize, EverySpellingOfEachUnit) {
  // MB and MiB mean the same: powers of 1024, case-insensitive, with or without a space.
  const std::pair<const char*, int64_t> cases[] = {
      {"7", 7},           {"7B", 7},          {"7 b", 7},
      {"3K", 3 << 10},    {"3KB", 3 << 10},   {"3KiB", 3 << 10},   {"3kib", 3 << 10},
      {"3M", 3 << 20},    {"3MB", 3 << 20},   {"3MiB", 3 << 20},   {"3 mb", 3 << 20},
      {"3G", int64_t{3} << 30}, {"3GB", int64_t{3} << 30}, {"3GiB", int64_t{3} << 30},
      {"3T", int64_t{3} << 40}, {"3TB", int64_t{3} << 40}, {"3TiB", int64_t{3} << 40},
      {"0.5KB", 512},     {".5KB", 512},      {"0", 0}};
  for (const auto& [text, bytes] : cases) {
    auto r = ParseByteSize(text, "--x");
    ASSERT_TRUE(r.ok()) << text << ": " << r.status().ToString();
    EXPECT_EQ(*r, bytes) << text;
  }
}

TEST(ParseByteSize, RejectsMalformedNumbersAndHugeValues) {
  for (const char* bad : {"1.2.3MB", "-5MB", "5 MBB", "MB", ".", "1e3", "12XB", "5PB"}) {
    EXPECT_FALSE(ParseByteSize(bad, "--x").ok()) << bad;
  }
  auto r = ParseByteSize("100000000TB", "--max-bytes-per-file");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("--max-bytes-per-file"), std::string::npos);
  EXPECT_NE(r.status().message().find("too large"), std::string::npos);
}

TEST(ParseDuration, EverySpellingOfEachUnit) {
  const std::pair<const char*, double> cases[] = {
      {"30", 30},        {"0.5", 0.5},      {"30s", 30},      {"30S", 30},
      {"30 s", 30},      {"500ms", 0.5},    {"500MS", 0.5},   {"1500ms", 1.5},
      {"90m", 5400},     {"90min", 5400},   {"90 Min", 5400}, {"1.5h", 5400},
      {"2H", 7200},      {"1d", 86400},     {"1.5d", 129600}, {"2w", 1209600},
      {"2W", 1209600},   {"0s", 0},         {".25s", 0.25}};
  for (const auto& [text, seconds] : cases) {
    auto r = ParseDuration(text, "--timeout");
    ASSERT_TRUE(r.ok()) << text << ": " << r.status().ToString();
    EXPECT_DOUBLE_EQ(*r, seconds) << text;
  }
}

TEST(ParseDuration, RejectsGarbageNamingTheOptionAndTheGrammar) {
  for (const char* bad : {"", "s", "-1s", "+1s", "1.2.3s", "3y", "1mo", "10 sec x", "1e3"}) {
    auto r = ParseDuration(bad, "--timeout");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("option --timeout: '" + std::string(bad) + "'"),
              std::string::npos)
        << r.status().message();
    EXPECT_NE(r.status().message().find("500ms, 30s, 1.5h, 14d, 2w"), std::string::npos);
  }
  auto huge = ParseDuration("200000000000000d", "--window");
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.status().message().find("too large"), std::string::npos);
}

TEST(ParseWholeSeconds, AcceptsWholeSecondsOnly) {
  EXPECT_EQ(*ParseWholeSeconds("14d", "--window"), 14 * 86400);
  EXPECT_EQ(*ParseWholeSeconds("1.5d", "--window"), 129600);
  EXPECT_EQ(*ParseWholeSeconds("2w", "--window"), 14 * 86400);
  EXPECT_EQ(*ParseWholeSeconds("0.1h", "--window"), 360);
  EXPECT_EQ(*ParseWholeSeconds("0.7h", "--window"), 2520);
  EXPECT_EQ(*ParseWholeSeconds("0.25m", "--window"), 15);
  // Fractions someone wrote are not whole, however close (the fuzzer's find).
  EXPECT_FALSE(ParseWholeSeconds("0.001d", "--window").ok());  // 86.4 s
  EXPECT_FALSE(ParseWholeSeconds("99869.99999999", "--window").ok());
  EXPECT_FALSE(ParseWholeSeconds("1.0000001s", "--window").ok());

  EXPECT_EQ(*ParseWholeSeconds("2000ms", "--window"), 2);
  EXPECT_EQ(*ParseWholeSeconds("45", "--window"), 45);
  auto r = ParseWholeSeconds("500ms", "--stride");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("--stride"), std::string::npos);
  EXPECT_NE(r.status().message().find("whole number of seconds"), std::string::npos);
}

TEST(FormatBytes, Human) {
  EXPECT_EQ(FormatBytes(312), "312 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
}

TEST(RandomUuid, IsVersion4AndDistinct) {
  std::string a = RandomUuid(), b = RandomUuid();
  EXPECT_EQ(a.size(), 36u);
  EXPECT_EQ(a[14], '4');
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace dlprep
