#include "exec/filter_expr.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

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

// Depth of `e`'s tree, counted without recursion (the test must not overflow either).
int TreeDepth(const cp::Expression& e) {
  int deepest = 0;
  std::vector<std::pair<const cp::Expression*, int>> todo = {{&e, 1}};
  while (!todo.empty()) {
    auto [x, d] = todo.back();
    todo.pop_back();
    deepest = std::max(deepest, d);
    if (const cp::Expression::Call* call = x->call()) {
      for (const cp::Expression& arg : call->arguments) todo.push_back({&arg, d + 1});
    }
  }
  return deepest;
}

std::string Chain(const std::string& term, const std::string& op, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += (i ? " " + op + " " : std::string()) + term;
  return s;
}

// Machine-written filters are long: 20,000-term chains parse into a balanced tree (its
// depth grows with log2 of the terms), so that binding, evaluating and destroying it
// does not recurse once per term.
TEST(FilterExprTest, LongChainsAreShallowTrees) {
  const int n = 20000;
  ASSERT_OK_AND_ASSIGN(cp::Expression chain,
                       ParseFilterExpression(Chain("x > 0", "and", n)));
  EXPECT_LE(TreeDepth(chain), 17);  // ceil(log2(20000)) = 15 levels of 'and', + compare
  EXPECT_EQ(cp::FieldsInExpression(chain).size(), static_cast<size_t>(n));

  // Values: every term true on rows 0,1,2,4 (x > 0) except one that drops x == 2.
  std::string all_but_one = Chain("x > 0", "and", n / 2) + " and x != 2 and " +
                            Chain("x > 0", "and", n / 2);
  EXPECT_EQ(Matches(all_but_one), (std::vector<int>{0, 2, 4}));
  // An or chain: one term matches row 4, the others nothing.
  std::string any = Chain("x == 100", "or", n / 2) + " or x == 5 or " +
                    Chain("x == 100", "or", n / 2);
  EXPECT_EQ(Matches(any), (std::vector<int>{4}));
  // Mixed: and binds tighter than or in every term of a long or chain.
  std::string mixed = Chain("x == 1 and name == 'z'", "or", n / 2) +
                      " or x == 3 and is_null(name) or " +
                      Chain("flag and x > 4", "or", 10);
  EXPECT_EQ(Matches(mixed), (std::vector<int>{2}));
  // Kleene logic is kept through the regrouping: null and false is false, null or
  // true is true (row 3 has a null x).
  EXPECT_EQ(Matches(Chain("x > 0", "or", 999) + " or is_null(x)"),
            (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(FilterExprTest, NestingDeeperThanTheLimitIsAnError) {
  ASSERT_EQ(kMaxFilterNesting, 256);
  // At the limit: fine, and it evaluates.
  const std::string at_limit = std::string(kMaxFilterNesting, '(') + "x > 2" +
                               std::string(kMaxFilterNesting, ')');
  EXPECT_EQ(Matches(at_limit), (std::vector<int>{2, 4}));
  std::string nots;
  for (int i = 0; i < kMaxFilterNesting; ++i) nots += "not ";
  EXPECT_EQ(Matches(nots + "x > 2"), (std::vector<int>{2, 4}));  // an even number

  // One level more, and the fuzzer's inputs: an error naming the limit and where.
  auto expect_too_deep = [](const std::string& text, size_t pos) {
    auto r = ParseFilterExpression(text);
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.status().IsInvalid());
    EXPECT_THAT(r.status().message(), HasSubstr("nested more than 256 levels deep"));
    EXPECT_THAT(r.status().message(), HasSubstr("at position " + std::to_string(pos)))
        << r.status().message();
  };
  expect_too_deep(std::string(257, '(') + "x" + std::string(257, ')'), 256);
  expect_too_deep(std::string(10000, '(') + "x" + std::string(10000, ')'), 256);
  std::string many_nots;
  for (int i = 0; i < 50000; ++i) many_nots += "not ";
  expect_too_deep(many_nots + "x", 256 * 4);
  // Parentheses and 'not' count together.
  std::string mixed;
  for (int i = 0; i < 200; ++i) mixed += "not (";
  expect_too_deep(mixed + "x" + std::string(200, ')'), 128 * 5);

  // Long text is abbreviated in the message, the position still exact.
  auto r = ParseFilterExpression(std::string(10000, '(') + "x" + std::string(10000, ')'));
  EXPECT_LT(r.status().message().size(), 400u) << r.status().message();
}

// Inputs of tests/fuzz/corpus/filter_expr (see its README): no crash, and the deep
// ones are refused.
TEST(FilterExprTest, CorpusSeeds) {
  int seen = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(DLPREP_FUZZ_CORPUS "/filter_expr")) {
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), {});
    const std::string name = entry.path().filename().string();
    auto r = ParseFilterExpression(text);
    const bool too_deep =
        name.find("_deep") != std::string::npos && name.find("_ok") == std::string::npos;
    if (too_deep) {
      ASSERT_FALSE(r.ok()) << name;
      EXPECT_THAT(r.status().message(), HasSubstr("levels deep")) << name;
    } else {
      ASSERT_TRUE(r.ok()) << name << ": " << r.status().ToString();
      EXPECT_NE(Matches(text), std::vector<int>{-1}) << name;  // binds and evaluates
    }
    ++seen;
  }
  EXPECT_GE(seen, 6);
}

}  // namespace
}  // namespace dlprep::exec
