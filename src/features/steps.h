#pragma once

#include <cstdint>
#include <string_view>

#include <arrow/result.h>
#include <arrow/status.h>

namespace dlprep::features {

/// Registers the featurizers as pipeline-file steps (`windows`, `audio`). Call once before
/// loading a pipeline file; AlreadyExists on a second call is harmless to ignore.
arrow::Status RegisterFeatureSteps();

/// Parses a point in time: epoch seconds, or an ISO-8601 date or date-time in UTC
/// ("2024-06-30", "2024-06-30T12:00:00"). Invalid naming `option` otherwise.
arrow::Result<int64_t> ParseTimePoint(std::string_view text, std::string_view option);

}  // namespace dlprep::features
