#include "core/units.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>

#include <arrow/status.h>

namespace dlprep {

namespace {

// Splits "1.5 GB" into the number 1.5 and the upper-cased unit "GB". False when the text
// does not start with a non-negative decimal number (digits with at most one '.').
bool SplitNumberAndUnit(std::string_view text, double* value, std::string* unit) {
  size_t i = 0;
  while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
  const char* begin = text.data() + i;
  size_t digits = 0, dots = 0;
  while (i < text.size() &&
         (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) {
    (text[i] == '.' ? dots : digits) += 1;
    ++i;
  }
  if (digits == 0 || dots > 1) return false;
  auto [ptr, ec] = std::from_chars(begin, text.data() + i, *value);
  if (ec != std::errc() || ptr != text.data() + i) return false;
  unit->clear();
  for (char c : text.substr(i)) {
    if (c == ' ' || c == '\t') continue;
    unit->push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  return true;
}

}  // namespace

arrow::Result<int64_t> ParseByteSize(std::string_view text, std::string_view option) {
  auto fail = [&]() {
    return arrow::Status::Invalid(
        "option ", option, ": '", text,
        "' is not a byte size; expected a number with an optional unit B, KB, MB, GB or "
        "TB (powers of 1024; KiB, MiB, GiB and TiB mean the same), e.g. 512MB, 4GB");
  };
  double value = 0;
  std::string unit;
  if (!SplitNumberAndUnit(text, &value, &unit)) return fail();
  double mult = 1;
  if (unit.empty() || unit == "B") {
    mult = 1;
  } else if (unit == "K" || unit == "KB" || unit == "KIB") {
    mult = 1024.0;
  } else if (unit == "M" || unit == "MB" || unit == "MIB") {
    mult = 1024.0 * 1024;
  } else if (unit == "G" || unit == "GB" || unit == "GIB") {
    mult = 1024.0 * 1024 * 1024;
  } else if (unit == "T" || unit == "TB" || unit == "TIB") {
    mult = 1024.0 * 1024 * 1024 * 1024;
  } else {
    return fail();
  }
  double bytes = value * mult;
  if (!std::isfinite(bytes) || bytes > 9.0e18) {
    return arrow::Status::Invalid("option ", option, ": byte size '", text, "' is too large");
  }
  return static_cast<int64_t>(std::llround(bytes));
}

arrow::Result<double> ParseDuration(std::string_view text, std::string_view option) {
  auto fail = [&]() {
    return arrow::Status::Invalid(
        "option ", option, ": '", text,
        "' is not a duration; expected a number of seconds or a number with a unit ms, s, "
        "m, h, d or w (e.g. 500ms, 30s, 1.5h, 14d, 2w)");
  };
  double value = 0;
  std::string unit;
  if (!SplitNumberAndUnit(text, &value, &unit)) return fail();
  double mult = 1;
  if (unit.empty() || unit == "S") {
    mult = 1;
  } else if (unit == "MS") {
    mult = 0.001;
  } else if (unit == "M" || unit == "MIN") {
    mult = 60;
  } else if (unit == "H") {
    mult = 3600;
  } else if (unit == "D") {
    mult = 86400;
  } else if (unit == "W") {
    mult = 7 * 86400;
  } else {
    return fail();
  }
  double seconds = value * mult;
  // Beyond this, seconds as int64 (and nanoseconds of Arrow timestamps) lose meaning.
  if (!std::isfinite(seconds) || seconds > 9.0e15) {
    return arrow::Status::Invalid("option ", option, ": duration '", text, "' is too large");
  }
  return seconds;
}

arrow::Result<int64_t> ParseWholeSeconds(std::string_view text, std::string_view option) {
  ARROW_ASSIGN_OR_RAISE(double seconds, ParseDuration(text, option));
  const double whole = std::round(seconds);
  // A decimal fraction of a larger unit ("0.1h") is whole up to the rounding of the
  // multiplication: a few units in the last place, never a fraction someone wrote
  // ("99869.99999999" is not whole).
  const double ulp = std::nextafter(whole, HUGE_VAL) - whole;
  if (std::fabs(seconds - whole) > 8 * ulp) {
    return arrow::Status::Invalid("option ", option, ": duration '", text,
                                  "' is not a whole number of seconds");
  }
  if (!(whole < 9.2e18)) {
    return arrow::Status::Invalid("option ", option, ": duration '", text,
                                  "' is too long (at most 9.2e18 seconds)");
  }
  return static_cast<int64_t>(whole);
}

std::string FormatBytes(double bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof(buf), "%.0f %s", bytes, kUnits[u]);
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f %s", bytes, kUnits[u]);
  }
  return buf;
}

std::string RandomUuid() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  uint64_t hi = rng(), lo = rng();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%08x-%04x-%04x-%04x-%012llx",
                static_cast<unsigned>(hi >> 32), static_cast<unsigned>((hi >> 16) & 0xffff),
                static_cast<unsigned>(hi & 0xffff), static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xffffffffffffULL));
  return buf;
}

}  // namespace dlprep
