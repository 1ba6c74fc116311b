#pragma once

#include <cstdint>

namespace dlprep {

/// Resident set size of this process now (VmRSS of /proc/self/status), in bytes; -1
/// where /proc is not available. Thread-safe.
int64_t CurrentRssBytes();

/// Peak resident set size of this process (VmHWM of /proc/self/status), in bytes, since
/// the process started or since the last ResetPeakRss(); -1 where /proc is not
/// available. Thread-safe.
int64_t PeakRssBytes();

/// Resets the peak that PeakRssBytes() reports to the current RSS (writes "5" to
/// /proc/self/clear_refs). Returns false where the kernel does not allow it; the peak
/// then keeps counting from the process start. Thread-safe.
bool ResetPeakRss();

}  // namespace dlprep
