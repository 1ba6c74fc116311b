#include "core/memory.h"

#include <cstring>
#include <memory>

#include <gtest/gtest.h>

namespace dlprep {
namespace {

TEST(MemoryTest, RssGrowsWhenMemoryIsTouchedAndPeakStaysAbove) {
  int64_t before = CurrentRssBytes();
  ASSERT_GT(before, 0);
  ASSERT_GE(PeakRssBytes(), before);
  constexpr size_t kSize = size_t{64} << 20;
  {
    std::unique_ptr<char[]> block(new char[kSize]);
    std::memset(block.get(), 1, kSize);  // touch every page
    EXPECT_GE(CurrentRssBytes(), before + static_cast<int64_t>(kSize) / 2);
    EXPECT_GE(PeakRssBytes(), before + static_cast<int64_t>(kSize) / 2);
    // Keep the block alive past the reads.
    EXPECT_EQ(block[kSize - 1], 1);
  }
  EXPECT_GE(PeakRssBytes(), CurrentRssBytes());
}

TEST(MemoryTest, ResetPeakBringsPeakDownToCurrent) {
  constexpr size_t kSize = size_t{64} << 20;
  {
    std::unique_ptr<char[]> block(new char[kSize]);
    std::memset(block.get(), 1, kSize);
    EXPECT_EQ(block[0], 1);
  }
  int64_t peak_before = PeakRssBytes();
  if (!ResetPeakRss()) GTEST_SKIP() << "/proc/self/clear_refs is not writable here";
  int64_t peak_after = PeakRssBytes();
  EXPECT_LE(peak_after, CurrentRssBytes() + (int64_t{8} << 20));
  EXPECT_LE(peak_after, peak_before);
}

}  // namespace
}  // namespace dlprep
