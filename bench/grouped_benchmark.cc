// Group-by + sort + per-group function with dlprep's Pipeline, for
// bench/grouped_vs_pandas.py: per key, the count and sum of `value` over the rows
// sorted by `ts`, and the last `value` in ts order.
//
//   grouped_benchmark DATA.parquet [--workers N] [--memory-limit BYTES] [--repeat R]
//
// Prints one line per repetition: "seconds=<wall> rows=<out rows> groups=<n>
// peak_tracked=<bytes> spilled=<bytes>".

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include <arrow/api.h>

#include "dlprep/pipeline.h"
#include "dlprep/source.h"

namespace {

class SumCountLast : public dlprep::GroupedOperator {
 public:
  std::string name() const override { return "sum_count_last"; }
  std::vector<std::string> key_columns() const override { return {"key"}; }
  std::string sort_column() const override { return "ts"; }
  arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(
      const arrow::Schema&) const override {
    return arrow::schema({arrow::field("key", arrow::int64()),
                          arrow::field("count", arrow::int64()),
                          arrow::field("sum", arrow::float64()),
                          arrow::field("last", arrow::float64())});
  }
  arrow::Result<std::shared_ptr<arrow::Table>> Apply(
      const arrow::Table& group) const override {
    int64_t count = group.num_rows();
    double sum = 0, last = 0;
    for (const auto& chunk : group.GetColumnByName("value")->chunks()) {
      const auto& v = static_cast<const arrow::DoubleArray&>(*chunk);
      for (int64_t i = 0; i < v.length(); ++i) sum += v.Value(i);
      if (v.length() > 0) last = v.Value(v.length() - 1);
    }
    auto key_chunk = group.GetColumnByName("key")->chunk(0);
    int64_t key = static_cast<const arrow::Int64Array&>(*key_chunk).Value(0);
    arrow::Int64Builder kb, cb;
    arrow::DoubleBuilder sb, lb;
    ARROW_RETURN_NOT_OK(kb.Append(key));
    ARROW_RETURN_NOT_OK(cb.Append(count));
    ARROW_RETURN_NOT_OK(sb.Append(sum));
    ARROW_RETURN_NOT_OK(lb.Append(last));
    ARROW_ASSIGN_OR_RAISE(auto schema, OutputSchema(*group.schema()));
    std::vector<std::shared_ptr<arrow::Array>> cols(4);
    ARROW_RETURN_NOT_OK(kb.Finish(&cols[0]));
    ARROW_RETURN_NOT_OK(cb.Finish(&cols[1]));
    ARROW_RETURN_NOT_OK(sb.Finish(&cols[2]));
    ARROW_RETURN_NOT_OK(lb.Finish(&cols[3]));
    return arrow::Table::Make(schema, cols, 1);
  }
};

arrow::Status Main(int argc, char** argv) {
  if (argc < 2) return arrow::Status::Invalid("usage: grouped_benchmark DATA.parquet");
  dlprep::RunOptions options;
  int repeat = 1;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--workers") == 0) options.workers = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--memory-limit") == 0) {
      options.memory_limit = std::atoll(argv[i + 1]);
    }
    if (std::strcmp(argv[i], "--repeat") == 0) repeat = std::atoi(argv[i + 1]);
  }
  dlprep::TableSourceOptions so;
  so.paths = {argv[1]};
  ARROW_ASSIGN_OR_RAISE(auto source, dlprep::OpenTableSource(so));
  auto op = std::make_shared<SumCountLast>();
  for (int r = 0; r < repeat; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    dlprep::RunStats stats;
    ARROW_ASSIGN_OR_RAISE(auto out,
                          dlprep::Pipeline::Read(source).GroupBy({}).Apply(op).Collect(
                              options, &stats));
    double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("seconds=%.3f rows=%lld groups=%lld peak_tracked=%lld spilled=%lld\n", s,
                static_cast<long long>(out->num_rows()),
                static_cast<long long>(stats.stages[1].groups),
                static_cast<long long>(stats.peak_tracked_bytes),
                static_cast<long long>(stats.spilled_bytes));
    std::fflush(stdout);
  }
  return arrow::Status::OK();
}

}  // namespace

int main(int argc, char** argv) {
  arrow::Status st = Main(argc, argv);
  if (!st.ok()) {
    std::fprintf(stderr, "grouped_benchmark: %s\n", st.ToString().c_str());
    return 1;
  }
  return 0;
}
