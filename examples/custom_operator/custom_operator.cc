// One user-written operator of each kind, run through dlprep::Pipeline on a small
// in-memory input. Prints the result and exits 1 when a value is not what it should be.
//
//   scalar    TextLength    text -> text_len (int64)
//   batch     DropNegative  drops rows whose value < 0
//   stateful  Scale         Open() "loads a model" (a factor) once per worker, then
//                           appends scaled = value * factor; reports rows with empty
//                           text as failed (RowErrors) and leaves them out
//   grouped   MeanPerKey    mean of value per key, run with Pipeline::GroupBy
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <arrow/api.h>

#include "dlprep/operator.h"
#include "dlprep/pipeline.h"
#include "dlprep/source.h"

namespace {

int failures = 0;

void Check(bool ok, const std::string& what) {
  if (!ok) {
    std::fprintf(stderr, "WRONG: %s\n", what.c_str());
    ++failures;
  }
}

std::shared_ptr<arrow::Schema> InputSchema() {
  return arrow::schema({arrow::field("key", arrow::utf8()), arrow::field("text", arrow::utf8()),
                        arrow::field("value", arrow::float64())});
}

// Partition p has rows i = 4p .. 4p+3: key "k<i % 2>", text "x" * (i % 3), value i - 2.
arrow::Result<std::shared_ptr<arrow::RecordBatch>> MakePartition(int p) {
  arrow::StringBuilder key, text;
  arrow::DoubleBuilder value;
  for (int i = 4 * p; i < 4 * p + 4; ++i) {
    ARROW_RETURN_NOT_OK(key.Append("k" + std::to_string(i % 2)));
    ARROW_RETURN_NOT_OK(text.Append(std::string(i % 3, 'x')));
    ARROW_RETURN_NOT_OK(value.Append(i - 2.0));
  }
  ARROW_ASSIGN_OR_RAISE(auto k, key.Finish());
  ARROW_ASSIGN_OR_RAISE(auto t, text.Finish());
  ARROW_ASSIGN_OR_RAISE(auto v, value.Finish());
  return arrow::RecordBatch::Make(InputSchema(), 4, {k, t, v});
}

/// An in-memory dlprep::Source: one batch per partition.
class MemorySource : public dlprep::Source {
 public:
  explicit MemorySource(std::vector<std::shared_ptr<arrow::RecordBatch>> parts)
      : parts_(std::move(parts)) {}
  std::shared_ptr<arrow::Schema> schema() const override { return InputSchema(); }
  int64_t num_partitions() const override { return static_cast<int64_t>(parts_.size()); }
  std::string partition_name(int64_t i) const override { return "memory-" + std::to_string(i); }
  arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> OpenPartition(
      int64_t i) const override {
    return arrow::RecordBatchReader::Make({parts_[i]}, InputSchema());
  }

 private:
  std::vector<std::shared_ptr<arrow::RecordBatch>> parts_;
};

class TextLength : public dlprep::ScalarOperator {
 public:
  std::string name() const override { return "text_length"; }
  arrow::Result<std::shared_ptr<arrow::Field>> OutputField(
      const arrow::Schema& input) const override {
    auto f = input.GetFieldByName("text");
    if (f == nullptr || f->type()->id() != arrow::Type::STRING) {
      return arrow::Status::TypeError("text_length: needs a string column 'text'");
    }
    return arrow::field("text_len", arrow::int64());
  }
  arrow::Result<std::shared_ptr<arrow::Array>> Compute(
      const arrow::RecordBatch& batch) const override {
    auto text = std::static_pointer_cast<arrow::StringArray>(batch.GetColumnByName("text"));
    arrow::Int64Builder out;
    ARROW_RETURN_NOT_OK(out.Reserve(batch.num_rows()));
    for (int64_t i = 0; i < batch.num_rows(); ++i) {
      out.UnsafeAppend(static_cast<int64_t>(text->GetView(i).size()));
    }
    return out.Finish();
  }
};

// Rebuilds `batch` with only the rows where keep[i] is true (no arrow::compute needed).
arrow::Result<std::shared_ptr<arrow::RecordBatch>> KeepRows(
    const std::shared_ptr<arrow::RecordBatch>& batch, const std::vector<bool>& keep) {
  std::vector<std::shared_ptr<arrow::RecordBatch>> rows;
  for (int64_t i = 0; i < batch->num_rows(); ++i) {
    if (keep[i]) rows.push_back(batch->Slice(i, 1));
  }
  if (rows.empty()) return batch->Slice(0, 0);
  ARROW_ASSIGN_OR_RAISE(auto table, arrow::Table::FromRecordBatches(batch->schema(), rows));
  return table->CombineChunksToBatch();
}

class DropNegative : public dlprep::BatchOperator {
 public:
  std::string name() const override { return "drop_negative"; }
  arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(
      const arrow::Schema& input) const override {
    return std::make_shared<arrow::Schema>(input);
  }
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Process(
      const std::shared_ptr<arrow::RecordBatch>& batch) const override {
    auto value = std::static_pointer_cast<arrow::DoubleArray>(batch->GetColumnByName("value"));
    std::vector<bool> keep(batch->num_rows());
    for (int64_t i = 0; i < batch->num_rows(); ++i) keep[i] = value->Value(i) >= 0;
    return KeepRows(batch, keep);
  }
};

std::atomic<int> g_opens{0};

class Scale : public dlprep::StatefulOperator {
 public:
  std::string name() const override { return "scale"; }
  arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(
      const arrow::Schema& input) const override {
    return input.AddField(input.num_fields(), arrow::field("scaled", arrow::float64()));
  }
  arrow::Status Open(const dlprep::OperatorContext&) override {
    factor_ = 10.0;  // the expensive part: load a model, open a connection
    g_opens.fetch_add(1);
    return arrow::Status::OK();
  }
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Process(
      const std::shared_ptr<arrow::RecordBatch>& batch, dlprep::RowErrors* errors) override {
    auto text = std::static_pointer_cast<arrow::StringArray>(batch->GetColumnByName("text"));
    auto value = std::static_pointer_cast<arrow::DoubleArray>(batch->GetColumnByName("value"));
    arrow::DoubleBuilder scaled;
    std::vector<bool> keep(batch->num_rows());
    for (int64_t i = 0; i < batch->num_rows(); ++i) {
      ARROW_RETURN_NOT_OK(scaled.Append(value->Value(i) * factor_));
      keep[i] = text->GetView(i).size() > 0;
      if (!keep[i]) errors->Add(i, "empty text");
    }
    ARROW_ASSIGN_OR_RAISE(auto col, scaled.Finish());
    ARROW_ASSIGN_OR_RAISE(auto schema, OutputSchema(*batch->schema()));
    auto columns = batch->columns();
    columns.push_back(col);
    return KeepRows(arrow::RecordBatch::Make(schema, batch->num_rows(), columns), keep);
  }
  arrow::Status Close() override { return arrow::Status::OK(); }

 private:
  double factor_ = 0;
};

class MeanPerKey : public dlprep::GroupedOperator {
 public:
  std::string name() const override { return "mean_per_key"; }
  std::vector<std::string> key_columns() const override { return {"key"}; }
  arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(
      const arrow::Schema&) const override {
    return arrow::schema(
        {arrow::field("key", arrow::utf8()), arrow::field("mean", arrow::float64())});
  }
  arrow::Result<std::shared_ptr<arrow::Table>> Apply(const arrow::Table& group) const override {
    ARROW_ASSIGN_OR_RAISE(auto batch, group.CombineChunksToBatch());
    auto key = std::static_pointer_cast<arrow::StringArray>(batch->GetColumnByName("key"));
    auto value = std::static_pointer_cast<arrow::DoubleArray>(batch->GetColumnByName("value"));
    double sum = 0;
    for (int64_t i = 0; i < batch->num_rows(); ++i) sum += value->Value(i);
    arrow::StringBuilder k;
    arrow::DoubleBuilder m;
    ARROW_RETURN_NOT_OK(k.Append(key->GetView(0)));
    ARROW_RETURN_NOT_OK(m.Append(sum / static_cast<double>(batch->num_rows())));
    ARROW_ASSIGN_OR_RAISE(auto schema, OutputSchema(*group.schema()));
    ARROW_ASSIGN_OR_RAISE(auto ka, k.Finish());
    ARROW_ASSIGN_OR_RAISE(auto ma, m.Finish());
    return arrow::Table::Make(schema, {ka, ma});
  }
};

arrow::Status Main() {
  std::vector<std::shared_ptr<arrow::RecordBatch>> parts;
  for (int p = 0; p < 4; ++p) {
    ARROW_ASSIGN_OR_RAISE(auto b, MakePartition(p));
    parts.push_back(b);
  }
  auto source = std::make_shared<MemorySource>(parts);
  auto pipeline = dlprep::Pipeline::Read(source)
                      .Map(std::make_shared<TextLength>())
                      .Map(std::make_shared<DropNegative>())
                      .MapStateful([]() -> arrow::Result<std::unique_ptr<dlprep::StatefulOperator>> {
                        return std::make_unique<Scale>();
                      });
  dlprep::RunStats stats;
  ARROW_ASSIGN_OR_RAISE(auto table, pipeline.Collect({.workers = 2}, &stats));
  ARROW_ASSIGN_OR_RAISE(auto out, table->CombineChunksToBatch());
  std::printf("%s\n", out->ToString().c_str());
  std::printf("rows read %lld, written %lld, row errors %lld, opens %d\n",
              static_cast<long long>(stats.rows_read), static_cast<long long>(out->num_rows()),
              static_cast<long long>(stats.row_errors), g_opens.load());

  // Expected: rows i = 2..15 (value >= 0) whose text is not empty (i % 3 != 0).
  std::vector<int> want;
  for (int i = 2; i < 16; ++i) {
    if (i % 3 != 0) want.push_back(i);
  }
  Check(out->schema()->field_names() ==
            std::vector<std::string>({"key", "text", "value", "text_len", "scaled"}),
        "output columns");
  Check(out->num_rows() == static_cast<int64_t>(want.size()), "row count");
  Check(stats.row_errors == 5, "row errors (i = 3, 6, 9, 12, 15)");
  Check(g_opens.load() >= 1 && g_opens.load() <= 2, "Open() once per worker at most");
  if (out->num_rows() == static_cast<int64_t>(want.size())) {
    auto len = std::static_pointer_cast<arrow::Int64Array>(out->GetColumnByName("text_len"));
    auto scaled = std::static_pointer_cast<arrow::DoubleArray>(out->GetColumnByName("scaled"));
    for (size_t r = 0; r < want.size(); ++r) {
      int i = want[r];
      Check(len->Value(r) == i % 3, "text_len of row " + std::to_string(i));
      Check(scaled->Value(r) == (i - 2.0) * 10.0, "scaled of row " + std::to_string(i));
    }
  }

  // The grouped operator through Pipeline::GroupBy: mean of value per key over all
  // 16 rows (k0: i = 0, 2, ..., 14 -> values -2 .. 12, mean 5; k1: mean 6).
  auto grouped = dlprep::Pipeline::Read(source)
                     .GroupBy({"key"})
                     .Apply(std::make_shared<MeanPerKey>());
  ARROW_ASSIGN_OR_RAISE(auto means_table, grouped.Collect({.workers = 2}));
  ARROW_ASSIGN_OR_RAISE(auto means, means_table->CombineChunksToBatch());
  std::printf("%s\n", means->ToString().c_str());
  Check(means->num_rows() == 2, "one row per key");
  if (means->num_rows() == 2) {
    auto k = std::static_pointer_cast<arrow::StringArray>(means->column(0));
    auto m = std::static_pointer_cast<arrow::DoubleArray>(means->column(1));
    for (int64_t r = 0; r < 2; ++r) {
      double want_mean = k->GetView(r) == "k0" ? 5.0 : 6.0;
      Check(m->Value(r) == want_mean, "mean of " + std::string(k->GetView(r)));
    }
  }
  return arrow::Status::OK();
}

}  // namespace

int main() {
  arrow::Status st = Main();
  if (!st.ok()) {
    std::fprintf(stderr, "custom_operator: error: %s\n", st.ToString().c_str());
    return 1;
  }
  if (failures > 0) {
    std::fprintf(stderr, "custom_operator: %d wrong value(s)\n", failures);
    return 1;
  }
  std::printf("custom_operator: all values as expected\n");
  return 0;
}
