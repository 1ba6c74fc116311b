#include "features/windows.h"

#include <algorithm>
#include <charconv>
#include <functional>
#include <utility>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <arrow/compute/initialize.h>
#include <arrow/util/bitmap_ops.h>
#include <nlohmann/json.hpp>

#include "core/memory.h"
#include "core/text.h"

namespace dlprep::features {
namespace {

// floor(a / b) for b > 0, also for negative a.
int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b) != 0 && a < 0) --q;
  return q;
}

// Divisor turning values of a time column into epoch seconds; 0 when the type is not a
// timestamp or int64.
int64_t SecondsDivisor(const arrow::DataType& type) {
  if (type.id() == arrow::Type::INT64) return 1;
  if (type.id() != arrow::Type::TIMESTAMP) return 0;
  switch (static_cast<const arrow::TimestampType&>(type).unit()) {
    case arrow::TimeUnit::SECOND: return 1;
    case arrow::TimeUnit::MILLI: return 1000;
    case arrow::TimeUnit::MICRO: return 1000000;
    case arrow::TimeUnit::NANO: return 1000000000;
  }
  return 0;
}

bool IsString(const arrow::DataType& type) {
  return type.id() == arrow::Type::STRING || type.id() == arrow::Type::LARGE_STRING;
}

bool IsNumeric(const arrow::DataType& type) {
  switch (type.id()) {
    case arrow::Type::INT8: case arrow::Type::INT16: case arrow::Type::INT32:
    case arrow::Type::INT64: case arrow::Type::UINT8: case arrow::Type::UINT16:
    case arrow::Type::UINT32: case arrow::Type::UINT64: case arrow::Type::FLOAT:
    case arrow::Type::DOUBLE:
      return true;
    default:
      return false;
  }
}

// Value `i` of a numeric array as a double (the array's type was checked by IsNumeric).
double NumericValue(const arrow::Array& a, int64_t i) {
  switch (a.type_id()) {
    case arrow::Type::INT8: return static_cast<const arrow::Int8Array&>(a).Value(i);
    case arrow::Type::INT16: return static_cast<const arrow::Int16Array&>(a).Value(i);
    case arrow::Type::INT32: return static_cast<const arrow::Int32Array&>(a).Value(i);
    case arrow::Type::INT64:
      return static_cast<double>(static_cast<const arrow::Int64Array&>(a).Value(i));
    case arrow::Type::UINT8: return static_cast<const arrow::UInt8Array&>(a).Value(i);
    case arrow::Type::UINT16: return static_cast<const arrow::UInt16Array&>(a).Value(i);
    case arrow::Type::UINT32: return static_cast<const arrow::UInt32Array&>(a).Value(i);
    case arrow::Type::UINT64:
      return static_cast<double>(static_cast<const arrow::UInt64Array&>(a).Value(i));
    case arrow::Type::FLOAT: return static_cast<const arrow::FloatArray&>(a).Value(i);
    case arrow::Type::DOUBLE: return static_cast<const arrow::DoubleArray&>(a).Value(i);
    default: return 0;
  }
}

std::string_view StringValue(const arrow::Array& a, int64_t i) {
  if (a.type_id() == arrow::Type::LARGE_STRING) {
    return static_cast<const arrow::LargeStringArray&>(a).GetView(i);
  }
  return static_cast<const arrow::StringArray&>(a).GetView(i);
}

// Raw int64 value of a timestamp or int64 array (the same layout; read from the data
// buffer, as the array object of a timestamp column is not an Int64Array).
int64_t RawTime(const arrow::Array& a, int64_t i) {
  return a.data()->GetValues<int64_t>(1)[i];
}

struct Columns {
  int key = -1, time = -1, category = -1, label = -1;
  bool category_is_code = false;  // `category` is PreGroup()'s int16 code column
  std::vector<int> values;
  int64_t time_divisor = 1, label_divisor = 1;
};

arrow::Result<Columns> ResolveColumns(const WindowOptions& o, const arrow::Schema& s) {
  Columns c;
  auto find = [&](const std::string& name, const char* option) -> arrow::Result<int> {
    int i = s.GetFieldIndex(name);
    if (i < 0) {
      return arrow::Status::TypeError("windows: ", option, " column '", name,
                                      "' not found in the input (columns: ",
                                      s.ToString(), ")");
    }
    return i;
  };
  ARROW_ASSIGN_OR_RAISE(c.key, find(o.key, "--key"));
  const auto& kt = *s.field(c.key)->type();
  if (kt.id() != arrow::Type::INT64 && !IsString(kt)) {
    return arrow::Status::TypeError("windows: --key column '", o.key,
                                    "' must be int64 or string, got ", kt.ToString());
  }
  ARROW_ASSIGN_OR_RAISE(c.time, find(o.time, "--time"));
  c.time_divisor = SecondsDivisor(*s.field(c.time)->type());
  if (c.time_divisor == 0) {
    return arrow::Status::TypeError("windows: --time column '", o.time,
                                    "' must be a timestamp or int64 epoch seconds, got ",
                                    s.field(c.time)->type()->ToString());
  }
  const int code = s.GetFieldIndex(WindowsOperator::kCategoryCodeColumn);
  if (!o.category.empty() && code >= 0 && s.field(code)->type()->id() == arrow::Type::INT16) {
    c.category = code;
    c.category_is_code = true;
  } else if (!o.category.empty()) {
    ARROW_ASSIGN_OR_RAISE(c.category, find(o.category, "--category"));
    if (!IsString(*s.field(c.category)->type())) {
      return arrow::Status::TypeError("windows: --category column '", o.category,
                                      "' must be a string, got ",
                                      s.field(c.category)->type()->ToString());
    }
  }
  if (!o.label_time.empty()) {
    ARROW_ASSIGN_OR_RAISE(c.label, find(o.label_time, "--label-time"));
    c.label_divisor = SecondsDivisor(*s.field(c.label)->type());
    if (c.label_divisor == 0) {
      return arrow::Status::TypeError(
          "windows: --label-time column '", o.label_time,
          "' must be a timestamp or int64 epoch seconds, got ",
          s.field(c.label)->type()->ToString());
    }
  }
  for (const auto& v : o.values) {
    ARROW_ASSIGN_OR_RAISE(int i, find(v, "--values"));
    if (!IsNumeric(*s.field(i)->type())) {
      return arrow::Status::TypeError("windows: --values column '", v,
                                      "' must be numeric, got ",
                                      s.field(i)->type()->ToString());
    }
    c.values.push_back(i);
  }
  return c;
}

}  // namespace

namespace {

// PreGroup(): one pass over each input batch on the workers, so that the shuffle holds
// fixed-width columns only and Apply() does no string lookups or unit conversions.
class PrepareOp : public BatchOperator {
 public:
  PrepareOp(std::shared_ptr<const WindowsOperator> parent,
            std::function<void(int64_t)> count_dropped)
      : parent_(std::move(parent)), count_dropped_(std::move(count_dropped)) {}

  std::string name() const override { return "windows.prepare"; }

  arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(
      const arrow::Schema& input) const override {
    ARROW_ASSIGN_OR_RAISE(Columns c, ResolveColumns(parent_->options(), input));
    arrow::FieldVector fields = {input.field(c.key),
                                 arrow::field(input.field(c.time)->name(), arrow::int64())};
    if (c.category >= 0) {
      fields.push_back(arrow::field(WindowsOperator::kCategoryCodeColumn, arrow::int16(),
                                    /*nullable=*/false));
    }
    if (c.label >= 0) {
      fields.push_back(arrow::field(input.field(c.label)->name(), arrow::int64()));
    }
    for (int v : c.values) fields.push_back(input.field(v));
    return arrow::schema(std::move(fields));
  }

  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Process(
      const std::shared_ptr<arrow::RecordBatch>& batch) const override {
    ARROW_ASSIGN_OR_RAISE(auto schema, OutputSchema(*batch->schema()));
    ARROW_ASSIGN_OR_RAISE(Columns c, ResolveColumns(parent_->options(), *batch->schema()));
    const int64_t n = batch->num_rows();
    std::vector<std::shared_ptr<arrow::Array>> columns = {batch->column(c.key)};
    ARROW_ASSIGN_OR_RAISE(auto time, ToSeconds(*batch->column(c.time), c.time_divisor));
    columns.push_back(time);
    if (c.category_is_code) {
      // Already this step's output (a second pass, as when rows prepared before a
      // Spark shuffle reach the engine's own grouped executor): keep the codes.
      columns.push_back(batch->column(c.category));
    } else if (c.category >= 0) {
      const arrow::Array& ca = *batch->column(c.category);
      ARROW_ASSIGN_OR_RAISE(auto buf,
                            arrow::AllocateBuffer(n * sizeof(int16_t), EnginePool()));
      auto* out = reinterpret_cast<int16_t*>(buf->mutable_data());
      // Events of one category often come in runs: remember the last lookup.
      std::string_view last;
      int16_t last_code = -1;
      bool have_last = false;
      for (int64_t i = 0; i < n; ++i) {
        if (ca.IsNull(i)) {
          out[i] = -1;
          continue;
        }
        std::string_view v = StringValue(ca, i);
        if (!have_last || v != last) {
          last = v;
          last_code = static_cast<int16_t>(parent_->CategoryIndex(v));
          have_last = true;
        }
        out[i] = last_code;
      }
      columns.push_back(std::make_shared<arrow::Int16Array>(n, std::move(buf)));
    }
    if (c.label >= 0) {
      ARROW_ASSIGN_OR_RAISE(auto label, ToSeconds(*batch->column(c.label), c.label_divisor));
      columns.push_back(label);
    }
    for (int v : c.values) columns.push_back(batch->column(v));
    auto out = arrow::RecordBatch::Make(std::move(schema), n, std::move(columns));
    const int64_t null_times = batch->column(c.time)->null_count();
    if (null_times == 0) return out;
    count_dropped_(null_times);
    ARROW_ASSIGN_OR_RAISE(auto valid, arrow::compute::IsValid(batch->column(c.time),
                                                              EngineExecContext()));
    ARROW_ASSIGN_OR_RAISE(
        arrow::Datum kept,
        arrow::compute::Filter(out, valid, arrow::compute::FilterOptions::Defaults(),
                               EngineExecContext()));
    return kept.record_batch();
  }

 private:
  // Epoch seconds (floored) of a timestamp or int64 column, nulls kept.
  static arrow::Result<std::shared_ptr<arrow::Array>> ToSeconds(const arrow::Array& a,
                                                                int64_t divisor) {
    const auto& data = *a.data();
    if (divisor == 1 && a.type_id() == arrow::Type::INT64) return a.Slice(0);
    const int64_t n = a.length();
    ARROW_ASSIGN_OR_RAISE(auto buf,
                          arrow::AllocateBuffer(n * sizeof(int64_t), EnginePool()));
    auto* out = reinterpret_cast<int64_t*>(buf->mutable_data());
    const int64_t* in = data.GetValues<int64_t>(1);
    for (int64_t i = 0; i < n; ++i) out[i] = FloorDiv(in[i], divisor);
    std::shared_ptr<arrow::Buffer> validity;
    if (a.null_count() > 0) {
      ARROW_ASSIGN_OR_RAISE(validity, arrow::internal::CopyBitmap(
                                          EnginePool(),
                                          data.buffers[0]->data(), data.offset, n));
    }
    return std::make_shared<arrow::Int64Array>(n, std::move(buf), std::move(validity),
                                                a.null_count());
  }

  std::shared_ptr<const WindowsOperator> parent_;
  std::function<void(int64_t)> count_dropped_;
};

}  // namespace

std::shared_ptr<BatchOperator> WindowsOperator::PreGroup() const {
  auto self = shared_from_this();
  return std::make_shared<PrepareOp>(
      self, [self](int64_t n) { self->dropped_rows_.fetch_add(n); });
}

int32_t WindowsOperator::CategoryIndex(std::string_view category) const {
  auto it = category_index_.find(category);
  return it == category_index_.end() ? -1 : it->second;
}

WindowsOperator::WindowsOperator(WindowOptions options) : options_(std::move(options)) {}

arrow::Result<std::shared_ptr<WindowsOperator>> WindowsOperator::Make(
    WindowOptions options) {
  // PreGroup() filters with Arrow compute functions.
  static const arrow::Status compute_ready = arrow::compute::Initialize();
  ARROW_RETURN_NOT_OK(compute_ready);
  if (options.key.empty()) return arrow::Status::Invalid("windows: --key is required");
  if (options.time.empty()) return arrow::Status::Invalid("windows: --time is required");
  const std::pair<const char*, int64_t> durations[] = {{"--window", options.window_s},
                                                       {"--stride", options.stride_s},
                                                       {"--step", options.step_s}};
  for (const auto& [opt, v] : durations) {
    if (v <= 0) {
      return arrow::Status::Invalid("windows: ", opt, " must be positive, got ", v, "s");
    }
  }
  if (options.horizon_s < 0) {
    return arrow::Status::Invalid("windows: --horizon must not be negative, got ",
                                  options.horizon_s, "s");
  }
  if (options.window_s % options.step_s != 0) {
    return arrow::Status::Invalid("windows: --window (", options.window_s,
                                  "s) must be a multiple of --step (", options.step_s,
                                  "s)");
  }
  if (options.stride_s % options.step_s != 0) {
    return arrow::Status::Invalid("windows: --stride (", options.stride_s,
                                  "s) must be a multiple of --step (", options.step_s,
                                  "s)");
  }
  if (options.until_s == std::numeric_limits<int64_t>::min()) {
    return arrow::Status::Invalid("windows: --until is required by the operator");
  }
  if (!options.category.empty() && options.categories.empty()) {
    return arrow::Status::Invalid("windows: --categories must list the categories of "
                                  "--category column '", options.category, "'");
  }
  if (options.categories.size() > 32767) {
    return arrow::Status::Invalid("windows: --categories lists ", options.categories.size(),
                                  " categories; at most 32767 are supported");
  }
  if (options.category.empty() && !options.categories.empty()) {
    return arrow::Status::Invalid("windows: --categories given without --category");
  }
  if (!options.values.empty() && options.aggs.empty()) {
    return arrow::Status::Invalid("windows: --aggs is required with --values");
  }
  // Aggregation names are matched in any case and kept lower-case (feature names).
  for (auto& a : options.aggs) {
    for (const char* name : {"sum", "mean", "min", "max"}) {
      if (EqualsIgnoreCase(a, name)) a = name;
    }
  }
  std::unique_ptr<WindowsOperator> op(new WindowsOperator(std::move(options)));
  const WindowOptions& o = op->options_;
  for (const auto& a : o.aggs) {
    if (a == "sum") op->aggs_.push_back(Agg::kSum);
    else if (a == "mean") op->aggs_.push_back(Agg::kMean);
    else if (a == "min") op->aggs_.push_back(Agg::kMin);
    else if (a == "max") op->aggs_.push_back(Agg::kMax);
    else {
      return arrow::Status::Invalid("windows: --aggs: unknown aggregation '", a,
                                    "' (expected sum, mean, min or max)");
    }
  }
  op->feature_names_.push_back("count");
  for (size_t i = 0; i < o.categories.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (o.categories[i] == o.categories[j]) {
        return arrow::Status::Invalid("windows: --categories lists '", o.categories[i],
                                      "' twice");
      }
    }
    op->feature_names_.push_back("count_" + o.categories[i]);
    // Views into op->options_, which lives (unmoved) as long as the operator.
    op->category_index_.emplace(o.categories[i], static_cast<int32_t>(i));
  }
  for (const auto& v : o.values) {
    for (const auto& a : o.aggs) op->feature_names_.push_back(a + "_" + v);
  }
  op->names_json_ = DumpJson(nlohmann::json(op->feature_names_));
  return std::shared_ptr<WindowsOperator>(std::move(op));
}

arrow::Result<std::shared_ptr<arrow::Schema>> WindowsOperator::OutputSchema(
    const arrow::Schema& input) const {
  ARROW_ASSIGN_OR_RAISE(Columns c, ResolveColumns(options_, input));
  const int64_t steps = options_.window_s / options_.step_s;
  auto meta = arrow::key_value_metadata(
      {"dlprep.shape", "dlprep.names"},
      {"[" + std::to_string(steps) + "," + std::to_string(feature_names_.size()) + "]",
       names_json_});
  auto ts = arrow::timestamp(arrow::TimeUnit::SECOND, "UTC");
  return arrow::schema({input.field(c.key), arrow::field("window_start", ts),
                        arrow::field("window_end", ts),
                        arrow::field("label", arrow::int64()),
                        arrow::field("features", arrow::list(arrow::float32()))
                            ->WithMetadata(meta)});
}

namespace {

// Events of one key in time order, as the window loop reads them: seconds, category
// index (-1: none) and V values with validity per event. The streaming path drops
// events from the front once no later window can contain them.
struct EventBuffer {
  size_t V = 0;
  size_t head = 0;  // events before `head` are dropped
  std::vector<int64_t> t;
  std::vector<int32_t> cat;
  std::vector<double> vals;
  std::vector<uint8_t> valid;

  size_t size() const { return t.size() - head; }
  int64_t time(size_t e) const { return t[head + e]; }

  // Drops the events before time `start`; compacts when half the storage is dead.
  void DropBefore(int64_t start) {
    while (head < t.size() && t[head] < start) ++head;
    if (head > 4096 && head * 2 > t.size()) {
      t.erase(t.begin(), t.begin() + static_cast<std::ptrdiff_t>(head));
      if (!cat.empty()) cat.erase(cat.begin(), cat.begin() + static_cast<std::ptrdiff_t>(head));
      vals.erase(vals.begin(), vals.begin() + static_cast<std::ptrdiff_t>(head * V));
      valid.erase(valid.begin(), valid.begin() + static_cast<std::ptrdiff_t>(head * V));
      head = 0;
    }
  }
};

}  // namespace

// Builds the output rows of one key, window by window.
class WindowsOperator::Emitter {
 public:
  Emitter(const WindowsOperator& op, size_t num_values)
      : op_(op), V_(num_values), steps_(op.options_.window_s / op.options_.step_s),
        F_(op.feature_names_.size()), A_(op.aggs_.size()),
        value_base_(1 + op.options_.categories.size()),
        row_len_(steps_ * static_cast<int64_t>(F_)),
        counts_(steps_ * value_base_), sum_(steps_ * V_), mn_(steps_ * V_),
        mx_(steps_ * V_), nn_(steps_ * V_),
        starts_(arrow::timestamp(arrow::TimeUnit::SECOND, "UTC"),
                EnginePool()),
        ends_(arrow::timestamp(arrow::TimeUnit::SECOND, "UTC"),
              EnginePool()) {}

  int64_t rows() const { return rows_; }

  arrow::Status Reserve(int64_t windows) {
    if ((rows_ + windows) * row_len_ > std::numeric_limits<int32_t>::max()) {
      return arrow::Status::Invalid("windows: key has too many windows (", rows_ + windows,
                                    " of ", row_len_, " values) for one list array");
    }
    ARROW_RETURN_NOT_OK(starts_.Reserve(windows));
    ARROW_RETURN_NOT_OK(ends_.Reserve(windows));
    ARROW_RETURN_NOT_OK(labels_.Reserve(windows));
    ARROW_RETURN_NOT_OK(offsets_.Reserve(windows + 1));
    return values_.Reserve(windows * row_len_);
  }

  // One window [start, end) over the buffer's events from index *lo on (advanced past
  // the events before start).
  void Window(const EventBuffer& ev, size_t* lo, int64_t start, int64_t end, int64_t label) {
    const int64_t P = op_.options_.step_s;
    const size_t m = ev.size();
    while (*lo < m && ev.time(*lo) < start) ++*lo;
    std::fill(counts_.begin(), counts_.end(), 0.0);
    std::fill(sum_.begin(), sum_.end(), 0.0);
    std::fill(nn_.begin(), nn_.end(), 0);
    for (size_t e = *lo; e < m && ev.time(e) < end; ++e) {
      const size_t x = ev.head + e;
      const int64_t s = (ev.t[x] - start) / P;
      counts_[s * value_base_] += 1;
      if (!ev.cat.empty() && ev.cat[x] >= 0) counts_[s * value_base_ + 1 + ev.cat[x]] += 1;
      for (size_t v = 0; v < V_; ++v) {
        if (!ev.valid[x * V_ + v]) continue;
        const double val = ev.vals[x * V_ + v];
        const size_t j = s * V_ + v;
        sum_[j] += val;
        if (nn_[j] == 0) {
          mn_[j] = val;
          mx_[j] = val;
        } else {
          mn_[j] = std::min(mn_[j], val);
          mx_[j] = std::max(mx_[j], val);
        }
        ++nn_[j];
      }
    }
    if (rows_ == 0) offsets_.UnsafeAppend(0);
    for (int64_t s = 0; s < steps_; ++s) {
      for (size_t f = 0; f < value_base_; ++f) {
        values_.UnsafeAppend(static_cast<float>(counts_[s * value_base_ + f]));
      }
      for (size_t v = 0; v < V_; ++v) {
        const size_t j = s * V_ + v;
        for (size_t a = 0; a < A_; ++a) {
          double x = 0;
          if (nn_[j] > 0) {
            switch (op_.aggs_[a]) {
              case Agg::kSum: x = sum_[j]; break;
              case Agg::kMean: x = sum_[j] / static_cast<double>(nn_[j]); break;
              case Agg::kMin: x = mn_[j]; break;
              case Agg::kMax: x = mx_[j]; break;
            }
          }
          values_.UnsafeAppend(static_cast<float>(x));
        }
      }
    }
    starts_.UnsafeAppend(start);
    ends_.UnsafeAppend(end);
    labels_.UnsafeAppend(label);
    ++rows_;
    offsets_.UnsafeAppend(static_cast<int32_t>(rows_ * row_len_));
  }

  // The rows so far as a batch of `schema` with `key` in every row; starts over.
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Finish(
      const std::shared_ptr<arrow::Schema>& schema, const arrow::Scalar& key) {
    if (rows_ == 0) offsets_.UnsafeAppend(0);
    std::shared_ptr<arrow::Array> start_arr, end_arr, label_arr, value_arr, offset_arr;
    ARROW_RETURN_NOT_OK(starts_.Finish(&start_arr));
    ARROW_RETURN_NOT_OK(ends_.Finish(&end_arr));
    ARROW_RETURN_NOT_OK(labels_.Finish(&label_arr));
    ARROW_RETURN_NOT_OK(values_.Finish(&value_arr));
    ARROW_RETURN_NOT_OK(offsets_.Finish(&offset_arr));
    ARROW_ASSIGN_OR_RAISE(auto features,
                          arrow::ListArray::FromArrays(*offset_arr, *value_arr));
    ARROW_ASSIGN_OR_RAISE(auto key_arr,
                          arrow::MakeArrayFromScalar(key, rows_, EnginePool()));
    auto out = arrow::RecordBatch::Make(
        schema, rows_, {key_arr, start_arr, end_arr, label_arr, features});
    rows_ = 0;
    return out;
  }

 private:
  const WindowsOperator& op_;
  const size_t V_;
  const int64_t steps_;
  const size_t F_, A_, value_base_;
  const int64_t row_len_;
  // Scratch reused across windows: counts per step and feature, and per (step, value)
  // the sum, min, max and non-null count.
  std::vector<double> counts_, sum_, mn_, mx_;
  std::vector<int64_t> nn_;
  arrow::TimestampBuilder starts_, ends_;
  arrow::Int64Builder labels_{EnginePool()};
  arrow::FloatBuilder values_{EnginePool()};
  arrow::Int32Builder offsets_{EnginePool()};
  int64_t rows_ = 0;
};

namespace {

// Appends the rows of `batch` with a non-null time to `ev` (they arrive sorted by time;
// `sort_needed` is set when they are not). Returns the number of rows skipped.
int64_t AppendEvents(const arrow::RecordBatch& batch, const Columns& c,
                     const std::function<int32_t(std::string_view)>& category_index,
                     EventBuffer* ev, bool* sort_needed) {
  const int64_t n = batch.num_rows();
  const arrow::Array& time = *batch.column(c.time);
  const arrow::Array* ca = c.category >= 0 ? batch.column(c.category).get() : nullptr;
  std::vector<const arrow::Array*> vs;
  for (int v : c.values) vs.push_back(batch.column(v).get());
  int64_t skipped = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (time.IsNull(i)) {
      ++skipped;
      continue;
    }
    const int64_t t = FloorDiv(RawTime(time, i), c.time_divisor);
    if (!ev->t.empty() && t < ev->t.back()) *sort_needed = true;
    ev->t.push_back(t);
    if (ca != nullptr) {
      int32_t code = -1;
      if (c.category_is_code) {
        code = static_cast<const arrow::Int16Array&>(*ca).Value(i);
      } else if (ca->IsValid(i)) {
        code = category_index(StringValue(*ca, i));
      }
      ev->cat.push_back(code);
    }
    for (const arrow::Array* a : vs) {
      const bool ok = a->IsValid(i);
      ev->vals.push_back(ok ? NumericValue(*a, i) : 0.0);
      ev->valid.push_back(ok ? 1 : 0);
    }
  }
  return skipped;
}

// The key's churn time (the first non-null value of the label column), if any.
bool FindChurn(const arrow::RecordBatch& batch, const Columns& c, int64_t* churn) {
  if (c.label < 0) return false;
  const arrow::Array& label = *batch.column(c.label);
  for (int64_t i = 0; i < batch.num_rows(); ++i) {
    if (label.IsValid(i)) {
      *churn = FloorDiv(RawTime(label, i), c.label_divisor);
      return true;
    }
  }
  return false;
}

// Sorts the buffer's events by time, stably (only when the input was not sorted).
void SortEvents(EventBuffer* ev) {
  const size_t m = ev->t.size(), V = ev->V;
  std::vector<size_t> order(m);
  for (size_t i = 0; i < m; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return ev->t[a] < ev->t[b]; });
  EventBuffer sorted;
  sorted.V = V;
  for (size_t i : order) {
    sorted.t.push_back(ev->t[i]);
    if (!ev->cat.empty()) sorted.cat.push_back(ev->cat[i]);
    for (size_t v = 0; v < V; ++v) {
      sorted.vals.push_back(ev->vals[i * V + v]);
      sorted.valid.push_back(ev->valid[i * V + v]);
    }
  }
  *ev = std::move(sorted);
}

}  // namespace

int64_t WindowsOperator::NumWindows(int64_t origin, bool churned, int64_t churn) const {
  const int64_t limit = churned ? std::min(options_.until_s, churn) : options_.until_s;
  // Number of windows with origin + k*S + W <= limit (in 128 bits: no overflow).
  const __int128 room = static_cast<__int128>(limit) - origin - options_.window_s;
  return room < 0 ? 0 : static_cast<int64_t>(room / options_.stride_s) + 1;
}

arrow::Result<std::shared_ptr<arrow::Table>> WindowsOperator::Apply(
    const arrow::Table& group) const {
  ARROW_ASSIGN_OR_RAISE(auto schema, OutputSchema(*group.schema()));
  ARROW_ASSIGN_OR_RAISE(Columns c, ResolveColumns(options_, *group.schema()));
  ARROW_ASSIGN_OR_RAISE(auto batch, group.CombineChunksToBatch(EnginePool()));
  const int64_t n = batch->num_rows();
  // A null key is not a customer: its rows are dropped like null times.
  if (n == 0 || batch->column(c.key)->IsNull(0)) {
    dropped_rows_.fetch_add(n);
    return arrow::Table::MakeEmpty(schema);
  }
  EventBuffer ev;
  ev.V = c.values.size();
  ev.t.reserve(n);
  bool unsorted = false;
  auto index = [this](std::string_view s) { return CategoryIndex(s); };
  const int64_t skipped = AppendEvents(*batch, c, index, &ev, &unsorted);
  if (skipped > 0) dropped_rows_.fetch_add(skipped);
  if (ev.size() == 0) return arrow::Table::MakeEmpty(schema);
  // Normally sorted already: the executor sorts each group by the time column.
  if (unsorted) SortEvents(&ev);
  int64_t churn = 0;
  const bool churned = FindChurn(*batch, c, &churn);
  const int64_t S = options_.stride_s, W = options_.window_s, H = options_.horizon_s;
  const int64_t origin = FloorDiv(ev.time(0), options_.step_s) * options_.step_s;
  const int64_t num_windows = NumWindows(origin, churned, churn);
  Emitter out(*this, ev.V);
  ARROW_RETURN_NOT_OK(out.Reserve(num_windows));
  size_t lo = 0;
  for (int64_t k = 0; k < num_windows; ++k) {
    const int64_t start = origin + k * S, end = start + W;
    out.Window(ev, &lo, start, end, churned && churn < end + H ? 1 : 0);
  }
  ARROW_ASSIGN_OR_RAISE(auto key, batch->column(c.key)->GetScalar(0));
  ARROW_ASSIGN_OR_RAISE(auto rows, out.Finish(schema, *key));
  return arrow::Table::FromRecordBatches(schema, {rows});
}

arrow::Status WindowsOperator::ApplyStream(
    arrow::RecordBatchReader* group,
    const std::function<arrow::Status(std::shared_ptr<arrow::RecordBatch>)>& emit) const {
  constexpr int64_t kWindowsPerBatch = 4096;
  ARROW_ASSIGN_OR_RAISE(auto schema, OutputSchema(*group->schema()));
  ARROW_ASSIGN_OR_RAISE(Columns c, ResolveColumns(options_, *group->schema()));
  const int64_t S = options_.stride_s, W = options_.window_s, H = options_.horizon_s;
  auto index = [this](std::string_view s) { return CategoryIndex(s); };
  EventBuffer ev;
  ev.V = c.values.size();
  Emitter out(*this, ev.V);
  std::shared_ptr<arrow::Scalar> key;
  bool started = false, churned = false, null_key = false;
  int64_t churn = 0, origin = 0, num_windows = 0, k = 0;
  size_t lo = 0;
  // Emits windows while their end is known to be covered: `upto` is a time every
  // later event is at or after (the last time seen; INT64_MAX at the end).
  auto flush = [&](int64_t upto) -> arrow::Status {
    while (k < num_windows) {
      const int64_t start = origin + k * S, end = start + W;
      if (end > upto) break;
      if (out.rows() == 0) ARROW_RETURN_NOT_OK(out.Reserve(kWindowsPerBatch));
      out.Window(ev, &lo, start, end, churned && churn < end + H ? 1 : 0);
      ++k;
      // Later windows start at or after origin + k*S: older events are done.
      ev.DropBefore(origin + k * S);
      lo = 0;  // the first event left is the first the next window may contain
      if (out.rows() == kWindowsPerBatch) {
        ARROW_ASSIGN_OR_RAISE(auto rows, out.Finish(schema, *key));
        ARROW_RETURN_NOT_OK(emit(std::move(rows)));
      }
    }
    return arrow::Status::OK();
  };
  while (true) {
    std::shared_ptr<arrow::RecordBatch> batch;
    ARROW_RETURN_NOT_OK(group->ReadNext(&batch));
    if (batch == nullptr) break;
    if (batch->num_rows() == 0) continue;
    if (key == nullptr) {
      ARROW_ASSIGN_OR_RAISE(key, batch->column(c.key)->GetScalar(0));
      null_key = !key->is_valid;
    }
    if (null_key) {
      dropped_rows_.fetch_add(batch->num_rows());
      continue;
    }
    if (!churned) churned = FindChurn(*batch, c, &churn);
    bool unsorted = false;
    const size_t had = ev.t.size();
    const int64_t skipped = AppendEvents(*batch, c, index, &ev, &unsorted);
    if (skipped > 0) dropped_rows_.fetch_add(skipped);
    if (unsorted) {
      return arrow::Status::Invalid("windows: a streamed group must arrive sorted by '",
                                    options_.time, "'");
    }
    if (ev.t.size() == had) continue;
    if (!started) {
      started = true;
      origin = FloorDiv(ev.t[had], options_.step_s) * options_.step_s;
      num_windows = NumWindows(origin, churned, churn);
    }
    ARROW_RETURN_NOT_OK(flush(ev.t.back()));
  }
  if (started) ARROW_RETURN_NOT_OK(flush(std::numeric_limits<int64_t>::max()));
  if (out.rows() > 0) {
    ARROW_ASSIGN_OR_RAISE(auto rows, out.Finish(schema, *key));
    ARROW_RETURN_NOT_OK(emit(std::move(rows)));
  }
  return arrow::Status::OK();
}

}  // namespace dlprep::features
