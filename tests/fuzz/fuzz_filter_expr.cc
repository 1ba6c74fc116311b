// Fuzz target: filter expressions. The input is the text of a `filter` step's `expr`.
// It is parsed (exec::ParseFilterExpression), and when it parses, run as the filter
// operator on a 5-row batch (x int32, name string, flag bool, d float64, with nulls):
// binding may refuse it, but a result must be valid and no larger than the input.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <arrow/api.h>
#include <arrow/compute/expression.h>
#include <arrow/compute/initialize.h>

#include "exec/builtin_ops.h"
#include "exec/filter_expr.h"
#include "fuzz_util.h"

namespace {

constexpr char kTarget[] = "filter_expr";
using dlprep::fuzz::Fail;

std::shared_ptr<arrow::RecordBatch> Sample() {
  arrow::Int32Builder x;
  arrow::StringBuilder name;
  arrow::BooleanBuilder flag;
  arrow::DoubleBuilder d;
  arrow::Status st = x.AppendValues(std::vector<int32_t>{1, 2, 3, 0, 5},
                                    std::vector<bool>{true, true, true, false, true});
  st &= name.AppendValues(std::vector<std::string>{"a", "b"});
  st &= name.AppendNull();
  st &= name.AppendValues(std::vector<std::string>{"a", "\xc3\xa9t\xc3\xa9"});
  st &= flag.AppendValues(std::vector<bool>{true, false, true, false, false},
                          std::vector<bool>{true, true, true, false, true});
  st &= d.AppendValues(std::vector<double>{0.5, -1e300, 0.0, 2.5, 1e-300},
                       std::vector<bool>{true, true, false, true, true});
  if (!st.ok()) Fail(kTarget, st.ToString());
  auto schema = arrow::schema({arrow::field("x", arrow::int32()),
                               arrow::field("name", arrow::utf8()),
                               arrow::field("flag", arrow::boolean()),
                               arrow::field("d", arrow::float64())});
  return arrow::RecordBatch::Make(schema, 5,
                                  {x.Finish().ValueOrDie(),
                                   name.Finish().ValueOrDie(),
                                   flag.Finish().ValueOrDie(), d.Finish().ValueOrDie()});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const arrow::Status init = arrow::compute::Initialize();
  static const std::shared_ptr<arrow::RecordBatch> batch = Sample();
  if (!init.ok()) Fail(kTarget, init.ToString());
  const std::string text(reinterpret_cast<const char*>(data), size);

  auto parsed = dlprep::exec::ParseFilterExpression(text);
  auto op = dlprep::exec::MakeFilter({text});
  if (parsed.ok() != op.ok()) Fail(kTarget, "MakeFilter and ParseFilterExpression disagree");
  if (!op.ok()) {
    if (!op.status().IsInvalid()) Fail(kTarget, "not Invalid: " + op.status().ToString());
    return 0;
  }
  if (!(*op)->OutputSchema(*batch->schema()).ok()) return 0;
  auto out = (*op)->Process(batch);
  if (!out.ok()) return 0;
  if ((*out)->num_rows() > batch->num_rows()) Fail(kTarget, "the filter added rows");
  if (!(*out)->schema()->Equals(*batch->schema())) Fail(kTarget, "the filter changed the schema");
  dlprep::fuzz::CheckBatch(kTarget, **out);
  return 0;
}
