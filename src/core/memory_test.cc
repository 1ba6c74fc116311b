#include "core/memory.h"

#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include <arrow/buffer.h>
#include <arrow/memory_pool.h>
#include <gmock/gmock.h>
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
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer keeps freed memory in quarantine: RSS tells nothing";
#endif
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

using ::testing::HasSubstr;

TEST(BudgetMemoryPoolTest, CountsAllocationsAndFrees) {
  BudgetMemoryPool pool(arrow::default_memory_pool());
  EXPECT_EQ(pool.limit(), 0);
  {
    auto a_r = arrow::AllocateBuffer(1000, &pool);
    ASSERT_TRUE(a_r.ok()) << a_r.status().ToString();
    auto a = *std::move(a_r);
    auto b_r = arrow::AllocateResizableBuffer(500, &pool);
    ASSERT_TRUE(b_r.ok()) << b_r.status().ToString();
    auto b = *std::move(b_r);
    EXPECT_GE(pool.bytes_allocated(), 1500);
    const int64_t before = pool.bytes_allocated();
    ASSERT_TRUE(b->Resize(5000).ok());
    EXPECT_GE(pool.bytes_allocated(), before + 4000);
    EXPECT_EQ(pool.num_allocations(), 2);
    EXPECT_EQ(pool.backend_name(), arrow::default_memory_pool()->backend_name());
  }
  EXPECT_EQ(pool.bytes_allocated(), 0);
  EXPECT_GE(pool.max_memory(), 6000);
  pool.ResetPeak();
  EXPECT_EQ(pool.max_memory(), 0);
}

TEST(BudgetMemoryPoolTest, EnginePoolRefusesPastTheLimitNamingTheOption) {
  BudgetMemoryPool* pool = EnginePool();
  const int64_t base = pool->bytes_allocated();
  MemoryLimitScope scope(base + (int64_t{1} << 20));
  EXPECT_EQ(pool->limit(), base + (int64_t{1} << 20));
  auto fits_r = arrow::AllocateBuffer(512 << 10, pool);
  ASSERT_TRUE(fits_r.ok()) << fits_r.status().ToString();
  auto fits = *std::move(fits_r);
  EXPECT_LE(pool->available(), (int64_t{1} << 20) - (512 << 10));
  auto refused = arrow::AllocateBuffer(int64_t{4} << 20, pool);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(refused.status().IsOutOfMemory());
  EXPECT_THAT(refused.status().message(), HasSubstr("--memory-limit"));
  EXPECT_THAT(refused.status().message(), HasSubstr("allocating 4.0 MiB"));
  // A refused allocation is not counted.
  EXPECT_LT(pool->bytes_allocated(), base + (int64_t{1} << 20));
  // Growing a buffer past the limit is refused the same way, and the buffer stays.
  auto grows_r = arrow::AllocateResizableBuffer(1024, pool);
  ASSERT_TRUE(grows_r.ok()) << grows_r.status().ToString();
  auto grows = *std::move(grows_r);
  arrow::Status st = grows->Resize(int64_t{2} << 20);
  EXPECT_TRUE(st.IsOutOfMemory()) << st.ToString();
  EXPECT_EQ(grows->size(), 1024);
}

TEST(BudgetMemoryPoolTest, TheSmallestLimitOfTheScopesAliveApplies) {
  BudgetMemoryPool* pool = EnginePool();
  EXPECT_EQ(pool->limit(), 0);
  {
    MemoryLimitScope outer(int64_t{8} << 30);
    EXPECT_EQ(pool->limit(), int64_t{8} << 30);
    {
      MemoryLimitScope inner(int64_t{2} << 30);
      MemoryLimitScope none(0);
      EXPECT_EQ(pool->limit(), int64_t{2} << 30);
    }
    EXPECT_EQ(pool->limit(), int64_t{8} << 30);
  }
  EXPECT_EQ(pool->limit(), 0);
  EXPECT_EQ(pool->available(), std::numeric_limits<int64_t>::max());
  // Without a limit nothing is refused.
  auto big_r = arrow::AllocateBuffer(int64_t{16} << 20, pool);
  ASSERT_TRUE(big_r.ok()) << big_r.status().ToString();
  auto big = *std::move(big_r);
  EXPECT_EQ(big->size(), int64_t{16} << 20);
}

TEST(BudgetMemoryPoolTest, ReclaimersAreAskedForRoomBeforeAnAllocationIsRefused) {
  BudgetMemoryPool* pool = EnginePool();
  const int64_t base = pool->bytes_allocated();
  MemoryLimitScope scope(base + (int64_t{1} << 20));
  auto held_r = arrow::AllocateBuffer(768 << 10, pool);
  ASSERT_TRUE(held_r.ok()) << held_r.status().ToString();
  std::shared_ptr<arrow::Buffer> held = *std::move(held_r);
  // A reclaimer that frees the held buffer, allocating (a spill's write buffer) while
  // at it: that allocation is let through and asks no reclaimer.
  std::vector<int64_t> asked;
  const int64_t id = pool->AddReclaimer([&](int64_t bytes) -> int64_t {
    asked.push_back(bytes);
    if (held == nullptr) return 0;
    auto scratch = arrow::AllocateBuffer(512 << 10, pool);
    EXPECT_TRUE(scratch.ok()) << scratch.status().ToString();
    const int64_t freed = held->size();
    held.reset();
    return freed;
  });
  auto fits_r = arrow::AllocateBuffer(512 << 10, pool);
  ASSERT_TRUE(fits_r.ok()) << fits_r.status().ToString();
  ASSERT_EQ(asked.size(), 1u);
  // 768 KiB + 512 KiB is 256 KiB over the limit: that much was asked for.
  EXPECT_EQ(asked[0], 256 << 10);
  EXPECT_EQ(held, nullptr);
  EXPECT_LE(pool->bytes_allocated(), base + (int64_t{1} << 20));
  // With nothing left to free, the allocation is refused as without a reclaimer.
  auto refused = arrow::AllocateBuffer(768 << 10, pool);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(refused.status().IsOutOfMemory());
  EXPECT_THAT(refused.status().message(), HasSubstr("over --memory-limit"));
  EXPECT_EQ(asked.size(), 2u);
  // Growing a buffer asks too; a removed reclaimer is not asked again.
  auto grows_r = arrow::AllocateResizableBuffer(1024, pool);
  ASSERT_TRUE(grows_r.ok()) << grows_r.status().ToString();
  EXPECT_TRUE((*grows_r)->Resize(int64_t{1} << 20).IsOutOfMemory());
  EXPECT_EQ(asked.size(), 3u);
  pool->RemoveReclaimer(id);
  EXPECT_FALSE(arrow::AllocateBuffer(768 << 10, pool).ok());
  EXPECT_EQ(asked.size(), 3u);
}

TEST(BudgetMemoryPoolTest, AReclaimersErrorIsWhatTheAllocationFailsWith) {
  BudgetMemoryPool* pool = EnginePool();
  MemoryLimitScope scope(pool->bytes_allocated() + (int64_t{1} << 20));
  const int64_t id = pool->AddReclaimer([](int64_t) -> arrow::Result<int64_t> {
    return arrow::Status::IOError("cannot write the spill file 'x'");
  });
  auto refused = arrow::AllocateBuffer(int64_t{2} << 20, pool);
  pool->RemoveReclaimer(id);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(refused.status().IsIOError()) << refused.status().ToString();
  EXPECT_THAT(refused.status().message(),
              HasSubstr("making room for 2.0 MiB under --memory-limit (memory_limit): "
                        "cannot write the spill file 'x'"));
}

}  // namespace
}  // namespace dlprep
