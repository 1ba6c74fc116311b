// Fuzz target: duration, time and size parsing (`--window 14d`, `--until 2024-06-30`,
// `--memory-limit 512MB`, `max_file_size: 1.5GB`). The input is the option's text. An
// accepted duration is finite and never negative, and one accepted in whole seconds is
// the same duration; a time given as
// an integer is that integer exactly (one beyond int64 is an error, not clamped); an
// accepted size is one decimal number (at most one point) with an optional unit and
// never negative; FormatBytes takes any size.

#include <cctype>
#include <cmath>
#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/units.h"
#include "features/steps.h"
#include "features/windows.h"
#include "fuzz_util.h"

namespace {
constexpr char kTarget[] = "duration_size";
using dlprep::fuzz::Fail;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  auto seconds = dlprep::ParseDuration(text, "--timeout");
  if (seconds.ok() && !(*seconds >= 0 && std::isfinite(*seconds))) {
    Fail(kTarget, "duration '" + std::string(text) + "' accepted as " +
                      std::to_string(*seconds));
  }
  auto whole = dlprep::ParseWholeSeconds(text, "--window");
  // Whole up to the rounding of "0.1h" (a few units in the last place), no more.
  if (whole.ok() && (!seconds.ok() || *whole < 0 ||
                     std::fabs(static_cast<double>(*whole) - *seconds) >
                         16 * (std::nextafter(*seconds, HUGE_VAL) - *seconds))) {
    Fail(kTarget, "whole seconds '" + std::string(text) + "' accepted as " +
                      std::to_string(*whole) + " but as a duration " +
                      (seconds.ok() ? std::to_string(*seconds) : seconds.status().ToString()));
  }

  auto time = dlprep::features::ParseTimePoint(text, "--until");
  const bool integer =
      !text.empty() && text.find_first_not_of("0123456789", text[0] == '-' ? 1 : 0) ==
                           std::string_view::npos;
  if (integer) {
    int64_t expected = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), expected);
    const bool exact = ec == std::errc() && ptr == text.data() + text.size();
    if (exact ? (!time.ok() || *time != expected) : time.ok()) {
      Fail(kTarget, "time '" + std::string(text) + "' read as " +
                        (time.ok() ? std::to_string(*time) : time.status().ToString()));
    }
  }

  auto bytes = dlprep::ParseByteSize(text, "--memory-limit");
  if (bytes.ok()) {
    size_t points = 0, i = 0;
    for (; i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) ||
                               text[i] == '.');
         ++i) {
      points += text[i] == '.';
    }
    if (points > 1 || *bytes < 0) {
      Fail(kTarget, "size '" + std::string(text) + "' accepted as " + std::to_string(*bytes));
    }
    (void)dlprep::FormatBytes(static_cast<double>(*bytes));
  }
  return 0;
}
