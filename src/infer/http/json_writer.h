#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dlprep::http {

/// Writes JSON text straight into a caller's string, without building a document tree:
/// request bodies for model servers are written value by value from Arrow arrays.
///
/// Commas are inserted automatically; Key() must precede each value inside an object.
/// Strings are escaped as RFC 8259 requires (`"`, `\`, and control characters below
/// 0x20); valid UTF-8 passes through unchanged, and each byte that is not part of a
/// valid UTF-8 character becomes U+FFFD (as nlohmann's error_handler replace does). Floating-point numbers
/// are written in the shortest form that reads back to the same value
/// (std::to_chars); NaN and infinities have no JSON form, so Double() and Float()
/// refuse them (return false and write nothing) and the caller decides what that
/// means (the HTTP scorer reports the row as failed).
///
/// Does not check nesting (EndObject() after BeginArray() writes invalid JSON); the
/// caller writes well-formed sequences. A value type; not thread-safe. `out` is not
/// owned and must outlive the writer.
class JsonWriter {
 public:
  explicit JsonWriter(std::string* out) : out_(out) {}

  void BeginObject();
  void EndObject();
  void BeginArray();
  void EndArray();
  /// An object key (escaped); the next call writes its value.
  void Key(std::string_view key);
  void String(std::string_view value);
  void Int(int64_t value);
  void UInt(uint64_t value);
  void Bool(bool value);
  void Null();
  /// False (nothing written) for NaN and +-infinity.
  bool Double(double value);
  /// Shortest float32 form ("0.1", not "0.10000000149011612"). False for non-finite.
  bool Float(float value);

  /// Appends `s` escaped as the inside of a JSON string (no quotes).
  static void AppendEscaped(std::string_view s, std::string* out);

 private:
  void Separate();

  std::string* out_;
  // One entry per open array/object: whether it has no element yet.
  std::vector<bool> first_;
  bool after_key_ = false;
};

}  // namespace dlprep::http
