#include "infer/http/json_writer.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>

#include <gtest/gtest.h>

namespace dlprep::http {
namespace {

TEST(JsonWriterTest, NestsWithCommas) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("a");
  w.BeginArray();
  w.Int(1);
  w.Int(-2);
  w.BeginArray();
  w.EndArray();
  w.BeginObject();
  w.EndObject();
  w.EndArray();
  w.Key("b");
  w.Null();
  w.Key("c");
  w.Bool(true);
  w.Key("d");
  w.UInt(18446744073709551615ull);
  w.EndObject();
  EXPECT_EQ(out, R"({"a":[1,-2,[],{}],"b":null,"c":true,"d":18446744073709551615})");
}

TEST(JsonWriterTest, EscapesStrings) {
  std::string out;
  JsonWriter w(&out);
  w.BeginArray();
  w.String("plain");
  w.String("q\"b\\s/");
  std::string controls = "nl\n cr\r tab\t bs\b ff\f nul";
  controls.push_back('\0');
  controls += "\x01\x1f";
  w.String(controls);
  w.String("caf\xc3\xa9 \xe2\x82\xac");  // UTF-8 passes through
  w.EndArray();
  EXPECT_EQ(out,
            "[\"plain\",\"q\\\"b\\\\s/\",\"nl\\n cr\\r tab\\t bs\\b ff\\f nul\\u0000"
            "\\u0001\\u001f\",\"caf\xc3\xa9 \xe2\x82\xac\"]");
}

TEST(JsonWriterTest, EscapesKeys) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("a\"b");
  w.Int(0);
  w.EndObject();
  EXPECT_EQ(out, R"({"a\"b":0})");
}

// Request bodies are JSON, which is UTF-8: bytes that are not (a binary value in a
// string column, a column name from a hostile file) become U+FFFD, as nlohmann's
// dump(error_handler replace) writes them, instead of making the body invalid.
TEST(JsonWriterTest, ReplacesBytesThatAreNotUtf8) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Key("k\xff");
  w.String("a\xc3\xa9\xe6\x97\xa5" "b\xc3");
  w.EndObject();
  EXPECT_EQ(out, "{\"k\xef\xbf\xbd\":\"a\xc3\xa9\xe6\x97\xa5" "b\xef\xbf\xbd\"}");
  out.clear();
  JsonWriter::AppendEscaped("\xed\xa0\x80\x80\"", &out);  // a surrogate, a lone continuation
  EXPECT_EQ(out, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\\\"");
}

TEST(JsonWriterTest, ShortestRoundTripFloats) {
  std::string out;
  JsonWriter w(&out);
  w.BeginArray();
  EXPECT_TRUE(w.Float(0.1f));
  EXPECT_TRUE(w.Double(0.1));
  EXPECT_TRUE(w.Double(1e300));
  EXPECT_TRUE(w.Float(-3.0f));
  EXPECT_TRUE(w.Double(5e-324));
  w.EndArray();
  EXPECT_EQ(out, "[0.1,0.1,1e+300,-3,5e-324]");
}

TEST(JsonWriterTest, FloatsReadBackExactly) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(-1e6, 1e6);
  for (int i = 0; i < 2000; ++i) {
    const double d = u(rng) * std::pow(10.0, static_cast<int>(rng() % 40) - 20);
    const float f = static_cast<float>(d);
    std::string a, b;
    JsonWriter wa(&a), wb(&b);
    ASSERT_TRUE(wa.Double(d));
    ASSERT_TRUE(wb.Float(f));
    EXPECT_EQ(std::strtod(a.c_str(), nullptr), d) << a;
    EXPECT_EQ(std::strtof(b.c_str(), nullptr), f) << b;
  }
}

TEST(JsonWriterTest, RefusesNonFinite) {
  std::string out;
  JsonWriter w(&out);
  w.BeginArray();
  EXPECT_FALSE(w.Double(std::numeric_limits<double>::quiet_NaN()));
  EXPECT_FALSE(w.Double(std::numeric_limits<double>::infinity()));
  EXPECT_FALSE(w.Float(-std::numeric_limits<float>::infinity()));
  w.Int(1);
  w.EndArray();
  EXPECT_EQ(out, "[1]");  // nothing written for the refused values, commas right
}

}  // namespace
}  // namespace dlprep::http
