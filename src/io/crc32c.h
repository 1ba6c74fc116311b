#pragma once

#include <cstddef>
#include <cstdint>

namespace dlprep::io {

/// CRC-32C (Castagnoli) of `data`, continuing from `crc` (0 to start). Uses the SSE4.2
/// `crc32` instruction when the CPU has it (checked once at run time), a portable
/// table-driven version otherwise. Thread-safe.
uint32_t Crc32c(const void* data, size_t size, uint32_t crc = 0);

/// The portable implementation, exposed for tests and benchmarks.
uint32_t Crc32cPortable(const void* data, size_t size, uint32_t crc = 0);

/// True when Crc32c() uses the hardware instruction.
bool Crc32cHardware();

/// TFRecord's masked CRC: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
inline uint32_t MaskCrc(uint32_t crc) {
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}
inline uint32_t UnmaskCrc(uint32_t masked) {
  uint32_t rot = masked - 0xa282ead8u;
  return (rot >> 17) | (rot << 15);
}

}  // namespace dlprep::io
