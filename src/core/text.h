#pragma once
// Text from input data in messages and JSON: input bytes need not be UTF-8, while
// error messages (one line on stderr, the --stats JSON, Python exceptions) and every
// JSON document dlprep writes must be.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace dlprep {

/// Length in bytes (1 to 4) of the valid UTF-8 character at the start of `text` (RFC
/// 3629: no overlong forms, surrogates or code points above U+10FFFF); 0 when `text` is
/// empty or does not start with one.
size_t Utf8CharLength(std::string_view text);

/// `bytes` for a message: valid UTF-8 is copied unchanged, every byte that is not part
/// of a valid UTF-8 character becomes the four characters \xNN (lower-case hex), so the
/// message is valid UTF-8 and still shows the bytes. Thread-safe.
std::string EscapeInvalidUtf8(std::string_view bytes);

/// Whether `a` and `b` are equal ignoring ASCII case ("GZIP" and "gzip").
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

/// The candidate closest to `word` by edit distance (insertions, deletions,
/// substitutions and swaps of neighbours), when it is close enough to be a likely typo
/// (at most 2 edits, and fewer than half of `word`'s length); "" otherwise. Ties go to
/// the first candidate.
std::string ClosestMatch(std::string_view word, const std::vector<std::string>& candidates);

/// `json.dump(indent)` (an nlohmann::json or ordered_json) that never throws: the
/// invalid UTF-8 bytes of a string become U+FFFD instead of a type_error exception.
/// Every JSON document dlprep writes goes through it, as strings may come from data.
template <typename JsonT>
std::string DumpJson(const JsonT& json, int indent = -1) {
  return json.dump(indent, ' ', /*ensure_ascii=*/false, JsonT::error_handler_t::replace);
}

}  // namespace dlprep
