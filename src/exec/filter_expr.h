#pragma once

#include <string_view>

#include <arrow/result.h>

namespace arrow::compute {
class Expression;
}  // namespace arrow::compute

namespace dlprep::exec {

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
/// Keywords (`and`, `or`, `not`, `true`, `false`, `is_null`, `is_valid`) are
/// case-insensitive; `=` is accepted for `==`. In strings, `\'` is a quote and `\\` a
/// backslash. Integers become int64 literals, other numbers float64; Bind() inserts the
/// casts to the column's type.
///
/// Errors: Invalid, naming the 0-based character position in `text` and what was
/// expected there ("filter expression 'x >': expected a column or literal at position
/// 3"). Empty text is an error. Whether the columns exist and the result is boolean is
/// checked later, when the expression is bound to a schema. Thread-safe (pure).
arrow::Result<arrow::compute::Expression> ParseFilterExpression(std::string_view text);

}  // namespace dlprep::exec
