#include "exec/filter_expr.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include <arrow/compute/api_scalar.h>
#include <arrow/compute/expression.h>
#include <arrow/scalar.h>

#include "core/text.h"

namespace dlprep::exec {

namespace cp = arrow::compute;

namespace {

enum class Tok { kIdent, kQuotedIdent, kNumber, kString, kOp, kLParen, kRParen, kEnd };

struct Token {
  Tok kind;
  std::string text;  // identifier, number text, unescaped string, operator
  size_t pos;        // 0-based position of the token's first character
};

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  arrow::Result<cp::Expression> Parse() {
    ARROW_RETURN_NOT_OK(Tokenize());
    if (tokens_.front().kind == Tok::kEnd) return Error(0, "an expression (it is empty)");
    ARROW_ASSIGN_OR_RAISE(cp::Expression e, ParseOr());
    if (Peek().kind != Tok::kEnd) {
      return Error(Peek().pos, "'and', 'or' or the end of the expression");
    }
    return e;
  }

 private:
  // The expression may hold any bytes (a pipeline file is not checked for UTF-8): the
  // message escapes those that are not UTF-8, as it goes into JSON and onto one line.
  arrow::Status Error(size_t pos, const std::string& expected) const {
    return arrow::Status::Invalid("filter expression ", Quoted(), ": expected ",
                                  EscapeInvalidUtf8(expected),
                                  " at position ", pos);
  }

  // The text in quotes, its start only when it is long (machine-written filters run to
  // megabytes; the position in the message says where the problem is).
  std::string Quoted() const {
    constexpr size_t kShown = 120;
    if (text_.size() <= 200) return "'" + EscapeInvalidUtf8(text_) + "'";
    return "'" + EscapeInvalidUtf8(text_.substr(0, kShown)) + "...' (" +
           std::to_string(text_.size()) + " characters)";
  }

  // Enters one level of parentheses or 'not' at the token at `pos`.
  arrow::Status Enter(size_t pos) {
    if (++depth_ > kMaxFilterNesting) {
      return arrow::Status::Invalid(
          "filter expression ", Quoted(), ": parentheses and 'not' nested more than ",
          kMaxFilterNesting, " levels deep at position ", pos,
          " (the limit; chains of 'and' / 'or' may be any length, so write long "
          "conditions flat rather than nested)");
    }
    return arrow::Status::OK();
  }

  arrow::Status Tokenize() {
    size_t i = 0;
    while (true) {
      while (i < text_.size() && std::isspace(static_cast<unsigned char>(text_[i]))) ++i;
      if (i >= text_.size()) break;
      char c = text_[i];
      size_t start = i;
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        while (i < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[i])) ||
                                    text_[i] == '_' || text_[i] == '.')) {
          ++i;
        }
        tokens_.push_back({Tok::kIdent, std::string(text_.substr(start, i - start)), start});
      } else if (std::isdigit(static_cast<unsigned char>(c)) ||
                 ((c == '-' || c == '+' || c == '.') && i + 1 < text_.size() &&
                  (std::isdigit(static_cast<unsigned char>(text_[i + 1])) ||
                   text_[i + 1] == '.'))) {
        ++i;
        while (i < text_.size()) {
          char d = text_[i];
          if (std::isdigit(static_cast<unsigned char>(d)) || d == '.') {
            ++i;
          } else if ((d == 'e' || d == 'E') && i + 1 < text_.size()) {
            ++i;
            if (text_[i] == '-' || text_[i] == '+') ++i;
          } else {
            break;
          }
        }
        tokens_.push_back({Tok::kNumber, std::string(text_.substr(start, i - start)), start});
      } else if (c == '\'' || c == '`') {
        char quote = c;
        std::string value;
        ++i;
        bool closed = false;
        while (i < text_.size()) {
          if (text_[i] == '\\' && i + 1 < text_.size()) {
            value.push_back(text_[i + 1]);
            i += 2;
          } else if (text_[i] == quote) {
            closed = true;
            ++i;
            break;
          } else {
            value.push_back(text_[i++]);
          }
        }
        if (!closed) {
          return Error(text_.size(), std::string("a closing ") + quote +
                                         " for the one at position " +
                                         std::to_string(start));
        }
        tokens_.push_back(
            {quote == '\'' ? Tok::kString : Tok::kQuotedIdent, std::move(value), start});
      } else if (c == '(') {
        tokens_.push_back({Tok::kLParen, "(", start});
        ++i;
      } else if (c == ')') {
        tokens_.push_back({Tok::kRParen, ")", start});
        ++i;
      } else if (c == '=' || c == '!' || c == '<' || c == '>') {
        std::string op(1, c);
        ++i;
        if (i < text_.size() && text_[i] == '=') {
          op.push_back('=');
          ++i;
        }
        if (op == "!") return Error(start, "'!=' (use 'not' for negation)");
        if (op == "=") op = "==";
        tokens_.push_back({Tok::kOp, op, start});
      } else {
        // The whole character when it is one (position counts bytes).
        const size_t n = std::max<size_t>(Utf8CharLength(text_.substr(start)), 1);
        return Error(start, "a column, literal, operator or parenthesis, not '" +
                                std::string(text_.substr(start, n)) + "'");
      }
    }
    tokens_.push_back({Tok::kEnd, "", text_.size()});
    return arrow::Status::OK();
  }

  const Token& Peek() const { return tokens_[next_]; }
  const Token& Take() { return tokens_[next_++]; }
  bool PeekKeyword(const char* kw) const {
    return Peek().kind == Tok::kIdent && Lower(Peek().text) == kw;
  }

  // Combines the terms of an and/or chain pairwise, level by level, into a balanced
  // tree (depth ceil(log2(n))) in their order. A left-deep tree would be as deep as the
  // chain is long, and Arrow binds, evaluates and destroys expressions by recursion.
  static cp::Expression Balanced(std::vector<cp::Expression> terms, bool is_and) {
    while (terms.size() > 1) {
      std::vector<cp::Expression> next;
      next.reserve((terms.size() + 1) / 2);
      for (size_t i = 0; i + 1 < terms.size(); i += 2) {
        next.push_back(is_and ? cp::and_(std::move(terms[i]), std::move(terms[i + 1]))
                              : cp::or_(std::move(terms[i]), std::move(terms[i + 1])));
      }
      if (terms.size() % 2 == 1) next.push_back(std::move(terms.back()));
      terms = std::move(next);
    }
    return std::move(terms.front());
  }

  arrow::Result<cp::Expression> ParseOr() {
    std::vector<cp::Expression> terms;
    ARROW_ASSIGN_OR_RAISE(cp::Expression first, ParseAnd());
    terms.push_back(std::move(first));
    while (PeekKeyword("or")) {
      Take();
      ARROW_ASSIGN_OR_RAISE(cp::Expression next, ParseAnd());
      terms.push_back(std::move(next));
    }
    return Balanced(std::move(terms), /*is_and=*/false);
  }

  arrow::Result<cp::Expression> ParseAnd() {
    std::vector<cp::Expression> terms;
    ARROW_ASSIGN_OR_RAISE(cp::Expression first, ParseNot());
    terms.push_back(std::move(first));
    while (PeekKeyword("and")) {
      Take();
      ARROW_ASSIGN_OR_RAISE(cp::Expression next, ParseNot());
      terms.push_back(std::move(next));
    }
    return Balanced(std::move(terms), /*is_and=*/true);
  }

  // 'not' 'not' ... compare, counted in a loop (each one a level of nesting).
  arrow::Result<cp::Expression> ParseNot() {
    int nots = 0;
    while (PeekKeyword("not")) {
      ARROW_RETURN_NOT_OK(Enter(Take().pos));
      ++nots;
    }
    ARROW_ASSIGN_OR_RAISE(cp::Expression e, ParseCompare());
    for (int i = 0; i < nots; ++i) e = cp::not_(std::move(e));
    depth_ -= nots;
    return e;
  }

  arrow::Result<cp::Expression> ParseCompare() {
    ARROW_ASSIGN_OR_RAISE(cp::Expression left, ParseOperand());
    if (Peek().kind != Tok::kOp) return left;
    std::string op = Take().text;
    ARROW_ASSIGN_OR_RAISE(cp::Expression right, ParseOperand());
    if (op == "==") return cp::equal(std::move(left), std::move(right));
    if (op == "!=") return cp::not_equal(std::move(left), std::move(right));
    if (op == "<") return cp::less(std::move(left), std::move(right));
    if (op == "<=") return cp::less_equal(std::move(left), std::move(right));
    if (op == ">") return cp::greater(std::move(left), std::move(right));
    return cp::greater_equal(std::move(left), std::move(right));
  }

  arrow::Result<cp::Expression> ParseColumnInParens(const std::string& fn) {
    if (Peek().kind != Tok::kLParen) return Error(Peek().pos, "'(' after " + fn);
    Take();
    const Token& col = Peek();
    if (col.kind != Tok::kIdent && col.kind != Tok::kQuotedIdent) {
      return Error(col.pos, "a column name inside " + fn + "()");
    }
    Take();
    if (Peek().kind != Tok::kRParen) return Error(Peek().pos, "')' closing " + fn + "(");
    Take();
    return cp::field_ref(col.text);
  }

  arrow::Result<cp::Expression> ParseOperand() {
    const Token& t = Peek();
    switch (t.kind) {
      case Tok::kLParen: {
        const size_t open = Take().pos;
        ARROW_RETURN_NOT_OK(Enter(open));
        ARROW_ASSIGN_OR_RAISE(cp::Expression inner, ParseOr());
        if (Peek().kind != Tok::kRParen) {
          return Error(Peek().pos, "')' closing the '(' at position " +
                                       std::to_string(open));
        }
        Take();
        --depth_;
        return inner;
      }
      case Tok::kString:
        Take();
        return cp::literal(std::make_shared<arrow::StringScalar>(t.text));
      case Tok::kQuotedIdent:
        Take();
        return cp::field_ref(t.text);
      case Tok::kNumber: {
        Take();
        bool is_int = t.text.find_first_of(".eE") == std::string::npos;
        char* end = nullptr;
        if (is_int) {
          errno = 0;
          long long v = std::strtoll(t.text.c_str(), &end, 10);
          if (errno == 0 && end == t.text.c_str() + t.text.size()) {
            return cp::literal(static_cast<int64_t>(v));
          }
        } else {
          double v = std::strtod(t.text.c_str(), &end);
          if (end == t.text.c_str() + t.text.size()) return cp::literal(v);
        }
        return Error(t.pos, "a number, not '" + t.text + "'");
      }
      case Tok::kIdent: {
        std::string kw = Lower(t.text);
        if (kw == "true" || kw == "false") {
          Take();
          return cp::literal(kw == "true");
        }
        if (kw == "is_null" || kw == "is_valid") {
          Take();
          ARROW_ASSIGN_OR_RAISE(cp::Expression col, ParseColumnInParens(kw));
          return kw == "is_null" ? cp::is_null(std::move(col)) : cp::is_valid(std::move(col));
        }
        if (kw == "and" || kw == "or" || kw == "not") {
          return Error(t.pos, "a column or literal, not the keyword '" + t.text + "'");
        }
        Take();
        return cp::field_ref(t.text);
      }
      case Tok::kEnd:
        return Error(t.pos, "a column or literal (the expression ends early)");
      default:
        return Error(t.pos, "a column or literal, not '" + t.text + "'");
    }
  }

  std::string_view text_;
  std::vector<Token> tokens_;
  size_t next_ = 0;
  int depth_ = 0;  // levels of parentheses and 'not' around the next token
};

}  // namespace

arrow::Result<cp::Expression> ParseFilterExpression(std::string_view text) {
  return Parser(text).Parse();
}

}  // namespace dlprep::exec
