#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <arrow/result.h>

namespace dlprep {

/// Parses a byte size such as "4096", "64KB", "1.5GB", "512MiB" (KB/MB/GB/TB and
/// KiB/MiB/GiB/TiB are all powers of 1024, as memory limits usually mean).
/// `option` names the option in the error message.
arrow::Result<int64_t> ParseByteSize(std::string_view text, std::string_view option);

/// Formats a byte count for people: "1.5 GiB", "312 B".
std::string FormatBytes(double bytes);

/// A random RFC 4122 version-4 UUID in lower-case hex with dashes.
std::string RandomUuid();

}  // namespace dlprep
