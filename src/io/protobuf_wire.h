#pragma once
// Protobuf wire-format primitives shared by the Example encoder and decoder.

#include <cstdint>
#include <cstring>

namespace dlprep::io::wire {

enum WireType : uint32_t {
  kVarint = 0,
  kFixed64 = 1,
  kLengthDelimited = 2,
  kStartGroup = 3,  // deprecated groups: only ever skipped, as unknown fields
  kEndGroup = 4,
  kFixed32 = 5
};

/// How deep unknown groups may nest (protobuf's default recursion limit).
inline constexpr int kMaxGroupDepth = 100;

/// Bytes a base-128 varint of `v` takes (1 to 10; negative int64 values take 10).
inline int VarintSize(uint64_t v) {
  const int bits = 64 - __builtin_clzll(v | 1);
  return (bits * 9 + 64) / 64;
}

/// Writes `v` as a varint at `p`; returns the position after it.
inline char* WriteVarint(uint64_t v, char* p) {
  while (v >= 0x80) {
    *p++ = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

/// Reads a varint from [*p, end); false when truncated or longer than 10 bytes.
inline bool ReadVarint(const uint8_t** p, const uint8_t* end, uint64_t* out) {
  uint64_t v = 0;
  const uint8_t* q = *p;
  for (int shift = 0; shift < 70; shift += 7) {
    if (q == end) return false;
    const uint8_t b = *q++;
    v |= uint64_t{b & 0x7fu} << shift;
    if ((b & 0x80) == 0) {
      *out = v;
      *p = q;
      return true;
    }
  }
  return false;
}

}  // namespace dlprep::io::wire
