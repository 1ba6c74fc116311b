#include "core/text.h"

#include <string>

#include <arrow/util/utf8.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace dlprep {
namespace {

bool IsUtf8(const std::string& s) {
  arrow::util::InitializeUTF8();
  return arrow::util::ValidateUTF8(s);
}

TEST(EscapeInvalidUtf8, KeepsValidTextAndWritesOtherBytesAsHex) {
  const std::string valid = "plain, ünïcødé ✓ 日本 \xf0\x9f\x98\x80";
  EXPECT_EQ(EscapeInvalidUtf8(valid), valid);
  EXPECT_EQ(EscapeInvalidUtf8(""), "");
  EXPECT_EQ(EscapeInvalidUtf8(std::string("a\0b", 3)), std::string("a\0b", 3));
  EXPECT_EQ(EscapeInvalidUtf8("bad\xff\xfekey"), "bad\\xff\\xfekey");
  EXPECT_EQ(EscapeInvalidUtf8("caf\xc3"), "caf\\xc3");  // half a sequence at the end
  EXPECT_EQ(EscapeInvalidUtf8("\xc3(\xc3\xa9"), "\\xc3(\xc3\xa9");
  EXPECT_EQ(EscapeInvalidUtf8("\xe6\x97"), "\\xe6\\x97");
  EXPECT_EQ(EscapeInvalidUtf8("\xc0\x80"), "\\xc0\\x80");                  // overlong
  EXPECT_EQ(EscapeInvalidUtf8("\xe0\x80\x80"), "\\xe0\\x80\\x80");         // overlong
  EXPECT_EQ(EscapeInvalidUtf8("\xed\xa0\x80"), "\\xed\\xa0\\x80");         // surrogate
  EXPECT_EQ(EscapeInvalidUtf8("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // > U+10FFFF
  EXPECT_EQ(EscapeInvalidUtf8("\x80x"), "\\x80x");  // a lone continuation byte
  for (int b = 0; b < 256; ++b) {
    std::string one(1, static_cast<char>(b));
    EXPECT_TRUE(IsUtf8(EscapeInvalidUtf8(one))) << b;
    EXPECT_TRUE(IsUtf8(EscapeInvalidUtf8("x" + one + "\xe6\x97\xa5" + one))) << b;
  }
}

TEST(Utf8CharLength, MeasuresTheCharacterAtTheStart) {
  EXPECT_EQ(Utf8CharLength("abc"), 1u);
  EXPECT_EQ(Utf8CharLength("\xc3\xa9!"), 2u);
  EXPECT_EQ(Utf8CharLength("\xe6\x97\xa5"), 3u);
  EXPECT_EQ(Utf8CharLength("\xf0\x9f\x98\x80"), 4u);
  EXPECT_EQ(Utf8CharLength(""), 0u);
  EXPECT_EQ(Utf8CharLength("\xc3"), 0u);
  EXPECT_EQ(Utf8CharLength("\xff"), 0u);
  EXPECT_EQ(Utf8CharLength("\xed\xa0\x80"), 0u);
}

TEST(DumpJson, NeverThrowsOnStringsThatAreNotUtf8) {
  nlohmann::json j = {{"error", std::string("key 'a\xff'")}, {"rows", 3}};
  EXPECT_THROW(j.dump(), nlohmann::json::type_error);  // what DumpJson is for
  std::string text;
  EXPECT_NO_THROW(text = DumpJson(j));
  EXPECT_EQ(text, "{\"error\":\"key 'a\xef\xbf\xbd'\",\"rows\":3}");
  nlohmann::ordered_json o = {{"b", std::string("\xc3")}, {"a", 1}};
  EXPECT_EQ(DumpJson(o, 2), "{\n  \"b\": \"\xef\xbf\xbd\",\n  \"a\": 1\n}");
}

TEST(EqualsIgnoreCase, AsciiOnly) {
  EXPECT_TRUE(EqualsIgnoreCase("GZIP", "gzip"));
  EXPECT_TRUE(EqualsIgnoreCase("Parquet", "parquet"));
  EXPECT_FALSE(EqualsIgnoreCase("gzip", "gzi"));
  EXPECT_FALSE(EqualsIgnoreCase("zlib", "gzip"));
  EXPECT_TRUE(EqualsIgnoreCase("", ""));
}

TEST(ClosestMatch, SuggestsLikelyTyposOnly) {
  const std::vector<std::string> keys = {"column", "pattern", "output", "on_mismatch"};
  EXPECT_EQ(ClosestMatch("patern", keys), "pattern");
  EXPECT_EQ(ClosestMatch("pattren", keys), "pattern");  // a swap is one edit
  EXPECT_EQ(ClosestMatch("outptu", keys), "output");
  EXPECT_EQ(ClosestMatch("columns", keys), "column");
  EXPECT_EQ(ClosestMatch("colour", keys), "");  // 3 edits from "column"
  EXPECT_EQ(ClosestMatch("ab", {"abc"}), "");    // too short to guess
  EXPECT_EQ(ClosestMatch("x", {}), "");
}

}  // namespace
}  // namespace dlprep
