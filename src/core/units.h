#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <arrow/result.h>

namespace dlprep {

/// Parses a byte size such as "4096", "64KB", "1.5GB", "512MiB", "2 tb". Units are
/// case-insensitive; B is bytes, and K/KB/KiB, M/MB/MiB, G/GB/GiB and T/TB/TiB are
/// powers of 1024 (MB and MiB are both 2^20 bytes, as memory limits and `ls -h` mean).
/// A bare number is bytes. `option` names the option in the error message, which says
/// what was expected.
arrow::Result<int64_t> ParseByteSize(std::string_view text, std::string_view option);

/// Parses a duration into seconds: a non-negative number with an optional unit, "500ms",
/// "30s", "90m" (also "90min"), "1.5h", "14d", "2w"; a bare number ("30", "0.5") is
/// seconds. Units are case-insensitive and may follow a space; there are no months or
/// years. `option` names the option in the error message.
arrow::Result<double> ParseDuration(std::string_view text, std::string_view option);

/// ParseDuration() for options counted in whole seconds (time-series windows): Invalid,
/// naming `option`, when the duration is not a whole number of seconds ("500ms").
arrow::Result<int64_t> ParseWholeSeconds(std::string_view text, std::string_view option);

/// Formats a byte count for people: "1.5 GiB", "312 B".
std::string FormatBytes(double bytes);

/// A random RFC 4122 version-4 UUID in lower-case hex with dashes.
std::string RandomUuid();

}  // namespace dlprep
