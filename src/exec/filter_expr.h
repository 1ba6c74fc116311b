#pragma once

#include <string_view>

#include <arrow/result.h>

namespace arrow::compute {
class Expression;
}  // namespace arrow::compute

namespace dlprep::exec {

/// How deeply parentheses and `not` may nest in a filter expression, counted together:
/// `not (not (x))` is 3 levels. Deeper text is refused rather than parsed, since it
/// would be evaluated by recursion. Chains of `and` / `or` do not nest: any number of
/// terms is fine.
inline constexpr int kMaxFilterNesting = 256;

/// Parses the filter language of the `filter` operator into an unbound Arrow compute
/// expression:
///
///     expr    := or
///     or      := and ('or' and)*
///     and     := not ('and' not)*
///     not     := 'not' not | compare
///     compare := operand (('==' | '!=' | '<' | '<=' | '>' | '>=') operand)?
///     operand := column | literal | 'is_null' '(' column ')' | 'is_valid' '(' column ')'
///              | '(' expr ')'
///     column  := identifier ([A-Za-z_][A-Za-z0-9_.]*) | `any text in backquotes`
///     literal := number (123, -4, 2.5, 1e-3) | 'single-quoted string' | true | false
///
/// `a and b and c ...` and `a or b or c ...` with any number of terms (machine-written
/// filters have thousands) become a balanced tree of and/or calls, about log2(terms)
/// deep, built without recursion: Kleene and/or are associative, so the result is the
/// same as the left-to-right reading. Parentheses and `not` may nest kMaxFilterNesting
/// levels deep.
///
/// Keywords (`and`, `or`, `not`, `true`, `false`, `is_null`, `is_valid`) are
/// case-insensitive; `=` is accepted for `==`. In strings, `\'` is a quote and `\\` a
/// backslash. Integers become int64 literals, other numbers float64; Bind() inserts the
/// casts to the column's type.
///
/// Errors: Invalid, naming the 0-based character position in `text` and what was
/// expected there ("filter expression 'x >': expected a column or literal at position
/// 3"; text longer than 200 characters is abbreviated there). Nesting deeper than
/// kMaxFilterNesting is Invalid naming the limit and the position of the first token
/// beyond it. Empty text is an error. Whether the columns exist and the result is
/// boolean is checked later, when the expression is bound to a schema. Thread-safe
/// (pure).
arrow::Result<arrow::compute::Expression> ParseFilterExpression(std::string_view text);

}  // namespace dlprep::exec
