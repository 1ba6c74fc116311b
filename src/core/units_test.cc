#include "core/units.h"

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
