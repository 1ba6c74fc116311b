#include "io/crc32c.h"

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace dlprep::io {
namespace {

TEST(Crc32c, KnownVectors) {
  const char* digits = "123456789";
  EXPECT_EQ(Crc32c(digits, 9), 0xE3069283u);
  EXPECT_EQ(Crc32cPortable(digits, 9), 0xE3069283u);
  std::vector<uint8_t> zeros(32, 0), ones(32, 0xff), inc(32), dec(32);
  for (int i = 0; i < 32; ++i) {
    inc[i] = static_cast<uint8_t>(i);
    dec[i] = static_cast<uint8_t>(31 - i);
  }
  // RFC 3720 (iSCSI) B.4 test vectors.
  EXPECT_EQ(Crc32c(zeros.data(), 32), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(ones.data(), 32), 0x62A8AB43u);
  EXPECT_EQ(Crc32c(inc.data(), 32), 0x46DD794Eu);
  EXPECT_EQ(Crc32c(dec.data(), 32), 0x113FDB5Cu);
  EXPECT_EQ(Crc32cPortable(zeros.data(), 32), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(nullptr, 0), 0u);
}

TEST(Crc32c, ContinuesFromPreviousValue) {
  const char* digits = "123456789";
  uint32_t c = Crc32c(digits, 4);
  EXPECT_EQ(Crc32c(digits + 4, 5, c), 0xE3069283u);
  EXPECT_EQ(Crc32cPortable(digits + 4, 5, Crc32cPortable(digits, 4)), 0xE3069283u);
}

TEST(Crc32c, MaskRoundTrips) {
  for (uint32_t v : {0u, 1u, 0xE3069283u, 0xffffffffu}) EXPECT_EQ(UnmaskCrc(MaskCrc(v)), v);
  EXPECT_EQ(MaskCrc(0), 0xa282ead8u);
}

// Hardware (three interleaved lanes + shift tables) must equal the portable tables
// for every length, alignment and continuation value, including the lane boundaries.
TEST(Crc32c, HardwareEqualsPortable) {
  if (!Crc32cHardware()) GTEST_SKIP() << "no SSE4.2 on this CPU";
  std::mt19937_64 rng(42);
  std::vector<uint8_t> buf(3 * 8192 * 3 + 64);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  std::vector<size_t> lengths = {0, 1, 7, 8, 9, 767, 768, 769, 1536, 4096,
                                 24575, 24576, 24577, 49152 + 800, 3 * 24576 + 13};
  for (int i = 0; i < 300; ++i) lengths.push_back(rng() % (buf.size() - 16));
  for (size_t len : lengths) {
    for (size_t align = 0; align < 8; align += (len > 5000 ? 3 : 1)) {
      uint32_t seed = static_cast<uint32_t>(rng());
      ASSERT_EQ(Crc32c(buf.data() + align, len, seed),
                Crc32cPortable(buf.data() + align, len, seed))
          << "len=" << len << " align=" << align;
    }
  }
}

}  // namespace
}  // namespace dlprep::io
