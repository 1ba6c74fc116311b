#include "exec/filter_expr.h"

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <arrow/compute/expression.h>
#include <arrow/util/utf8.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "exec/exec_test_util.h"

namespace dlprep::exec {
namespace {

namespace cp = arrow::compute;
using ::testing::HasSubstr;

// x: 1, 2, 3, null, 5; name: a, b, null, a, c; flag: true, false, true, null, false
std::shared_ptr<arrow::RecordBatch> Sample() {
  arrow::Int32Builder x;
  arrow::StringBuilder name;
  arrow::BooleanBuilder flag;
  EXPECT_TRUE(x.AppendValues(std::vector<int32_t>{1, 2, 3, 0, 5}, std::vector<bool>{1, 1, 1, 0, 1}).ok());
  EXPECT_TRUE(name.AppendValues(std::vector<std::string>{"a", "b", "", "a", "c"}, std::vector<uint8_t>{1, 1, 0, 1, 1}.data()).ok());
  EXPECT_TRUE(flag.AppendValues(std::vector<bool>{true, false, true, false, false}, std::vector<bool>{1, 1, 1, 0, 1}).ok());
  auto schema = arrow::schema({arrow::field("x", arrow::int32()),
                               arrow::field("name", arrow::utf8()),
                               arrow::field("flag", arrow::boolean())});
  return arrow::RecordBatch::Make(schema, 5, {x.Finish().ValueOrDie(),
                                              name.Finish().ValueOrDie(),
                                              flag.Finish().ValueOrDie()});
}

// Row indices where `text` is true on Sample().
std::vector<int> Matches(const std::string& text) {
  EXPECT_TRUE(cp::Initialize().ok());
  auto batch = Sample();
  auto expr = ParseFilterExpression(text);
  EXPECT_TRUE(expr.ok()) << expr.status().ToString();
  if (!expr.ok()) return {-1};
  auto bound = expr->Bind(*batch->schema());
  EXPECT_TRUE(bound.ok()) << bound.status().ToString();
  if (!bound.ok()) return {-1};
  auto mask = cp::ExecuteScalarExpression(*bound, *batch->schema(), batch);
  EXPECT_TRUE(mask.ok()) << mask.status().ToString();
  if (!mask.ok()) return {-1};
  std::vector<int> rows;
  if (mask->is_scalar()) {
    const auto& s = mask->scalar_as<arrow::BooleanScalar>();
    for (int i = 0; i < 5; ++i) {
      if (s.is_valid && s.value) rows.push_back(i);
    }
    return rows;
  }
  auto arr = std::static_pointer_cast<arrow::BooleanArray>(mask->make_array());
  for (int i = 0; i < arr->length(); ++i) {
    if (arr->IsValid(i) && arr->Value(i)) rows.push_back(i);
  }
  return rows;
}

TEST(FilterExprTest, Comparisons) {
  EXPECT_EQ(Matches("x > 2"), (std::vector<int>{2, 4}));
  EXPECT_EQ(Matches("x >= 2"), (std::vector<int>{1, 2, 4}));
  EXPECT_EQ(Matches("x < 2"), (std::vector<int>{0}));
  EXPECT_EQ(Matches("x <= 2"), (std::vector<int>{0, 1}));
  EXPECT_EQ(Matches("x == 3"), (std::vector<int>{2}));
  EXPECT_EQ(Matches("x = 3"), (std::vector<int>{2}));
  EXPECT_EQ(Matches("x != 3"), (std::vector<int>{0, 1, 4}));
  EXPECT_EQ(Matches("x > 2.5"), (std::vector<int>{2, 4}));
  EXPECT_EQ(Matches("x > -1"), (std::vector<int>{0, 1, 2, 4}));
  EXPECT_EQ(Matches("name == 'a'"), (std::vector<int>{0, 3}));
  EXPECT_EQ(Matches("flag == true"), (std::vector<int>{0, 2}));
  EXPECT_EQ(Matches("flag"), (std::vector<int>{0, 2}));
  EXPECT_EQ(Matches("3 < x"), (std::vector<int>{4}));
}

TEST(FilterExprTest, NullTestsAndLogic) {
  EXPECT_EQ(Matches("is_null(x)"), (std::vector<int>{3}));
  EXPECT_EQ(Matches("is_valid(name)"), (std::vector<int>{0, 1, 3, 4}));
  EXPECT_EQ(Matches("x > 1 and name == 'a'"), (std::vector<int>{}));
  EXPECT_EQ(Matches("x > 4 or name == 'a'"), (std::vector<int>{0, 3, 4}));
  EXPECT_EQ(Matches("not x > 2"), (std::vector<int>{0, 1}));
  // and binds tighter than or; parentheses override.
  EXPECT_EQ(Matches("x == 1 or x == 2 and name == 'z'"), (std::vector<int>{0}));
  EXPECT_EQ(Matches("(x == 1 or x == 2) and name == 'b'"), (std::vector<int>{1}));
  EXPECT_EQ(Matches("NOT (x < 3) AND is_valid(x)"), (std::vector<int>{2, 4}));
  EXPECT_EQ(Matches("`x` == 5"), (std::vector<int>{4}));
  EXPECT_EQ(Matches("true"), (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(FilterExprTest, StringEscapes) {
  ASSERT_OK_AND_ASSIGN(auto e, ParseFilterExpression("s == 'it\\'s'"));
  EXPECT_THAT(e.ToString(), HasSubstr("it's"));
}

void ExpectParseError(const std::string& text, const std::string& expected) {
  auto r = ParseFilterExpression(text);
  ASSERT_FALSE(r.ok()) << text;
  EXPECT_TRUE(r.status().IsInvalid());
  EXPECT_THAT(r.status().message(), HasSubstr(expected)) << r.status().message();
  EXPECT_THAT(r.status().message(), HasSubstr("'" + text + "'"));
}

TEST(FilterExprTest, ParseErrorsNamePosition) {
  ExpectParseError("", "expected an expression (it is empty) at position 0");
  ExpectParseError("x >", "ends early) at position 3");
  ExpectParseError("x > and y", "not the keyword 'and' at position 4");
  ExpectParseError("(x > 1", "')' closing the '(' at position 0");
  ExpectParseError("x > 1)", "at position 5");
  ExpectParseError("name == 'abc", "closing ' for the one at position 8");
  ExpectParseError("x ! 3", "'!=' (use 'not' for negation) at position 2");
  ExpectParseError("x > 3 # y", "not '#' at position 6");
  ExpectParseError("is_null x", "'(' after is_null at position 8");
  ExpectParseError("is_null(3)", "a column name inside is_null() at position 8");
  ExpectParseError("x > 1..2", "a number, not '1..2' at position 4");
}

// Error messages go into --stats JSON and one line on stderr: they must be valid UTF-8
// whatever bytes the expression holds (a message with half a UTF-8 character in it
// aborted `dlprep run` when the stats were written).
TEST(FilterExprTest, ErrorsAtCharactersBeyondAsciiAreValidUtf8) {
  arrow::util::InitializeUTF8();
  auto expect_error = [](const std::string& text, const std::string& expected) {
    auto r = ParseFilterExpression(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_THAT(r.status().message(), HasSubstr(expected)) << r.status().message();
    EXPECT_TRUE(arrow::util::ValidateUTF8(r.status().message())) << r.status().message();
  };
  expect_error("x > \xc3\xa9", "not '\xc3\xa9' at position 4");  // the whole character
  expect_error("x > 1 \xc3", "filter expression 'x > 1 \\xc3': expected");
  expect_error("x > 1 \xc3", "not '\\xc3' at position 6");
  expect_error("x > \xff\xfe", "not '\\xff' at position 4");
  expect_error("name == 'caf\xc3", "closing ' for the one at position 8");
}

}  // namespace
}  // namespace dlprep::exec
