#include "io/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DLPREP_CRC32C_X86 1
#endif

namespace dlprep::io {
namespace {

// Castagnoli polynomial, bit-reflected.
constexpr uint32_t kPoly = 0x82f63b78u;

using Tables = std::array<std::array<uint32_t, 256>, 8>;

constexpr Tables MakeSlicingTables() {
  Tables t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
    t[0][i] = c;
  }
  for (int k = 1; k < 8; ++k) {
    for (uint32_t i = 0; i < 256; ++i) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xff];
  }
  return t;
}

constexpr Tables kTables = MakeSlicingTables();

inline uint64_t Load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;  // little-endian hosts only (x86, aarch64 LE)
}

// Works on the raw CRC register (no pre/post inversion).
uint32_t RawPortable(const uint8_t* p, size_t n, uint32_t c) {
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    c = (c >> 8) ^ kTables[0][(c ^ *p++) & 0xff];
    --n;
  }
  while (n >= 8) {
    uint64_t w = Load64(p) ^ c;
    c = kTables[7][w & 0xff] ^ kTables[6][(w >> 8) & 0xff] ^ kTables[5][(w >> 16) & 0xff] ^
        kTables[4][(w >> 24) & 0xff] ^ kTables[3][(w >> 32) & 0xff] ^
        kTables[2][(w >> 40) & 0xff] ^ kTables[1][(w >> 48) & 0xff] ^ kTables[0][w >> 56];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) c = (c >> 8) ^ kTables[0][(c ^ *p++) & 0xff];
  return c;
}

#ifdef DLPREP_CRC32C_X86

// Multiplies two polynomials modulo the CRC polynomial, in the reflected
// representation (bit 31 is x^0).
uint32_t MultModP(uint32_t a, uint32_t b) {
  if (a == 0) return 0;
  uint32_t m = 1u << 31, p = 0;
  while (true) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    m >>= 1;
    b = (b & 1) ? (b >> 1) ^ kPoly : b >> 1;
  }
  return p;
}

// x^(8 * n) modulo the polynomial: the operator that appends n zero bytes to a raw
// CRC register.
uint32_t ZeroBytesOperator(uint64_t n) {
  uint32_t result = 1u << 31;  // x^0
  uint32_t sq = 1u << 23;      // x^8
  while (n != 0) {
    if (n & 1) result = MultModP(result, sq);
    sq = MultModP(sq, sq);
    n >>= 1;
  }
  return result;
}

// Lookup tables that shift a raw register over a fixed number of zero bytes in four
// lookups (the operator is linear, so each register byte is handled separately).
struct ShiftTable {
  uint32_t t[4][256];
  explicit ShiftTable(uint64_t zero_bytes) {
    const uint32_t op = ZeroBytesOperator(zero_bytes);
    for (int k = 0; k < 4; ++k) {
      for (uint32_t b = 0; b < 256; ++b) t[k][b] = MultModP(b << (8 * k), op);
    }
  }
  uint32_t Shift(uint32_t c) const {
    return t[0][c & 0xff] ^ t[1][(c >> 8) & 0xff] ^ t[2][(c >> 16) & 0xff] ^ t[3][c >> 24];
  }
};

constexpr size_t kLongLane = 8192;
constexpr size_t kShortLane = 256;

const ShiftTable& LongShift() {
  static const ShiftTable table(kLongLane);
  return table;
}
const ShiftTable& ShortShift() {
  static const ShiftTable table(kShortLane);
  return table;
}

// Three independent crc32 streams over three adjacent lanes hide the instruction's
// 3-cycle latency; the lanes are then joined by shifting the earlier register over
// the later lane's length.
template <size_t kLane>
__attribute__((target("sse4.2"))) inline uint32_t ThreeLanes(const uint8_t* p, uint32_t c,
                                                            const ShiftTable& shift) {
  uint64_t c0 = c, c1 = 0, c2 = 0;
  const uint8_t* end = p + kLane;
  while (p < end) {
    c0 = _mm_crc32_u64(c0, Load64(p));
    c1 = _mm_crc32_u64(c1, Load64(p + kLane));
    c2 = _mm_crc32_u64(c2, Load64(p + 2 * kLane));
    p += 8;
  }
  uint32_t r = shift.Shift(static_cast<uint32_t>(c0)) ^ static_cast<uint32_t>(c1);
  return shift.Shift(r) ^ static_cast<uint32_t>(c2);
}

__attribute__((target("sse4.2"))) uint32_t RawSse42(const uint8_t* p, size_t n,
                                                     uint32_t c) {
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    c = _mm_crc32_u8(c, *p++);
    --n;
  }
  if (n >= 3 * kLongLane) {
    const ShiftTable& shift = LongShift();
    while (n >= 3 * kLongLane) {
      c = ThreeLanes<kLongLane>(p, c, shift);
      p += 3 * kLongLane;
      n -= 3 * kLongLane;
    }
  }
  if (n >= 3 * kShortLane) {
    const ShiftTable& shift = ShortShift();
    while (n >= 3 * kShortLane) {
      c = ThreeLanes<kShortLane>(p, c, shift);
      p += 3 * kShortLane;
      n -= 3 * kShortLane;
    }
  }
  uint64_t c64 = c;
  while (n >= 8) {
    c64 = _mm_crc32_u64(c64, Load64(p));
    p += 8;
    n -= 8;
  }
  c = static_cast<uint32_t>(c64);
  while (n-- > 0) c = _mm_crc32_u8(c, *p++);
  return c;
}

bool DetectHardware() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2");
}

#endif  // DLPREP_CRC32C_X86

}  // namespace

uint32_t Crc32cPortable(const void* data, size_t size, uint32_t crc) {
  return ~RawPortable(static_cast<const uint8_t*>(data), size, ~crc);
}

bool Crc32cHardware() {
#ifdef DLPREP_CRC32C_X86
  static const bool hw = DetectHardware();
  return hw;
#else
  return false;
#endif
}

uint32_t Crc32c(const void* data, size_t size, uint32_t crc) {
#ifdef DLPREP_CRC32C_X86
  if (Crc32cHardware()) return ~RawSse42(static_cast<const uint8_t*>(data), size, ~crc);
#endif
  return Crc32cPortable(data, size, crc);
}

}  // namespace dlprep::io
