#include "infer/torchscript/score.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <arrow/api.h>
#include <arrow/array/concatenate.h>
#include <arrow/compute/api.h>

#include "infer/torchscript/torch_model.h"

namespace dlprep::infer {

namespace {

constexpr const char* kShapeKey = "dlprep.shape";

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

int64_t Product(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string Join(const std::vector<std::string>& items) {
  std::string s;
  for (size_t i = 0; i < items.size(); ++i) s += (i > 0 ? ", " : "") + items[i];
  return s;
}

// Where a tensor column's per-row values live: the float32 values and each row's start
// and length, for list, large_list and fixed_size_list arrays.
class TensorColumn {
 public:
  explicit TensorColumn(const arrow::Array& array) : array_(array) {
    std::shared_ptr<arrow::Array> values;
    switch (array.type_id()) {
      case arrow::Type::LIST:
        values = static_cast<const arrow::ListArray&>(array).values();
        break;
      case arrow::Type::LARGE_LIST:
        values = static_cast<const arrow::LargeListArray&>(array).values();
        break;
      default:
        values = static_cast<const arrow::FixedSizeListArray&>(array).values();
        break;
    }
    values_array_ = values;
    values_ = values->data()->GetValues<float>(1);
  }
  int64_t start(int64_t i) const {
    switch (array_.type_id()) {
      case arrow::Type::LIST:
        return static_cast<const arrow::ListArray&>(array_).value_offset(i);
      case arrow::Type::LARGE_LIST:
        return static_cast<const arrow::LargeListArray&>(array_).value_offset(i);
      default:
        return static_cast<const arrow::FixedSizeListArray&>(array_).value_offset(i);
    }
  }
  int64_t length(int64_t i) const {
    switch (array_.type_id()) {
      case arrow::Type::LIST:
        return static_cast<const arrow::ListArray&>(array_).value_length(i);
      case arrow::Type::LARGE_LIST:
        return static_cast<const arrow::LargeListArray&>(array_).value_length(i);
      default:
        return static_cast<const arrow::FixedSizeListArray&>(array_).value_length(i);
    }
  }
  const float* row(int64_t i) const { return values_ + start(i); }
  // Whether any of the `n` values from `start` is null.
  bool HasNullValue(int64_t start, int64_t n) const {
    if (values_array_->null_count() == 0) return false;
    for (int64_t k = start; k < start + n; ++k) {
      if (values_array_->IsNull(k)) return true;
    }
    return false;
  }

 private:
  const arrow::Array& array_;
  std::shared_ptr<arrow::Array> values_array_;
  const float* values_ = nullptr;
};

bool IsFloatTensorType(const arrow::DataType& type) {
  if (type.id() != arrow::Type::LIST && type.id() != arrow::Type::LARGE_LIST &&
      type.id() != arrow::Type::FIXED_SIZE_LIST) {
    return false;
  }
  return static_cast<const arrow::BaseListType&>(type).value_type()->id() ==
         arrow::Type::FLOAT;
}

struct OutputSpec {
  std::string name;
  std::vector<int64_t> row_shape;
  int64_t row_size = 0;
};

// How one input schema is scored: which columns, their shapes, what comes out.
struct Plan {
  std::shared_ptr<arrow::Schema> input;
  std::vector<int> input_index;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<int64_t> row_sizes;
  std::vector<int> keep_index;
  std::vector<OutputSpec> outputs;
  std::shared_ptr<arrow::Schema> output;
};

// State shared by the instances one factory makes: the options and the plan.
class Shared {
 public:
  Shared(ScoreOptions options, std::unique_ptr<TorchModel> probe)
      : options_(std::move(options)), probe_(std::move(probe)) {}

  const ScoreOptions& options() const { return options_; }

  // The last plan made, or null. Thread-safe.
  std::shared_ptr<const Plan> current_plan() {
    std::lock_guard<std::mutex> lock(mu_);
    return plan_;
  }

  // The plan for `input`, made on first use (running the model once on a dummy batch)
  // and then cached. Thread-safe.
  arrow::Result<std::shared_ptr<const Plan>> PlanFor(const arrow::Schema& input) {
    std::lock_guard<std::mutex> lock(mu_);
    if (plan_ != nullptr && plan_->input->Equals(input, /*check_metadata=*/true)) {
      return plan_;
    }
    if (probe_ == nullptr) {
      ARROW_ASSIGN_OR_RAISE(probe_, TorchModel::Load(options_.model, options_.device));
    }
    ARROW_ASSIGN_OR_RAISE(auto plan, MakePlan(input));
    plan_ = std::move(plan);
    // The workers load their own copies; do not hold a spare one during the run.
    probe_.reset();
    return plan_;
  }

 private:
  arrow::Result<std::shared_ptr<const Plan>> MakePlan(const arrow::Schema& input) {
    const ScoreOptions& o = options_;
    auto plan = std::make_shared<Plan>();
    plan->input = std::make_shared<arrow::Schema>(input.fields(), input.metadata());
    std::set<std::string> tensor_columns(o.columns.begin(), o.columns.end());
    for (size_t c = 0; c < o.columns.size(); ++c) {
      const std::string& name = o.columns[c];
      int index = input.GetFieldIndex(name);
      if (index < 0) {
        return arrow::Status::TypeError("--model-input: the input has no column '", name,
                                        "'; its columns are ", Join(input.field_names()));
      }
      const auto& field = input.field(index);
      if (!IsFloatTensorType(*field->type())) {
        return arrow::Status::TypeError(
            "--model-input: column '", name, "' has type ", field->type()->ToString(),
            "; expected a list<float>, large_list<float> or fixed_size_list<float> "
            "holding one tensor per row");
      }
      std::vector<int64_t> shape;
      if (c < o.shapes.size() && !o.shapes[c].empty()) {
        shape = o.shapes[c];
      } else if (field->metadata() != nullptr && field->metadata()->Contains(kShapeKey)) {
        std::string text = *field->metadata()->Get(kShapeKey);
        auto parsed = ParseShape(text, "dlprep.shape of column '" + name + "'");
        if (!parsed.ok()) return parsed.status();
        shape = *parsed;
      } else if (field->type()->id() == arrow::Type::FIXED_SIZE_LIST) {
        shape = {static_cast<const arrow::FixedSizeListType&>(*field->type()).list_size()};
      } else {
        return arrow::Status::Invalid(
            "column '", name, "' has no dlprep.shape field metadata, so the shape of "
            "its tensors is unknown; pass it with --shape (e.g. --shape 101,64; one per "
            "--model-input) or `shapes:` in a pipeline file");
      }
      if (field->type()->id() == arrow::Type::FIXED_SIZE_LIST &&
          static_cast<const arrow::FixedSizeListType&>(*field->type()).list_size() !=
              Product(shape)) {
        return arrow::Status::Invalid(
            "column '", name, "' is a ", field->type()->ToString(), " but its shape ",
            ShapeText(shape), " has ", Product(shape), " values");
      }
      plan->input_index.push_back(index);
      plan->shapes.push_back(shape);
      plan->row_sizes.push_back(Product(shape));
    }
    // Probe: a dummy batch of two rows of the declared shapes.
    constexpr int64_t kProbeRows = 2;
    std::vector<std::vector<float>> zeros;
    std::vector<TensorView> views;
    std::string shapes_text;
    for (size_t c = 0; c < o.columns.size(); ++c) {
      zeros.emplace_back(kProbeRows * plan->row_sizes[c], 0.0f);
      TensorView v;
      v.data = zeros.back().data();
      v.shape = {kProbeRows};
      v.shape.insert(v.shape.end(), plan->shapes[c].begin(), plan->shapes[c].end());
      shapes_text += (c > 0 ? ", " : "") + std::string("'") + o.columns[c] + "' " +
                     ShapeText(v.shape);
      views.push_back(std::move(v));
    }
    const auto& args = probe_->input_names();
    if (args.size() != o.columns.size()) {
      return arrow::Status::Invalid(
          "model '", o.model, "' takes ", args.size(), " input(s) (", Join(args),
          ") but ", o.columns.size(), " --model-input(s) were given (", Join(o.columns),
          "); give one --model-input per input, in order");
    }
    auto probed = probe_->Forward(views, false);
    if (!probed.ok()) {
      std::string reason = probed.status().message();
      const std::string prefix = "model '" + o.model + "' failed: ";
      if (reason.rfind(prefix, 0) == 0) reason = reason.substr(prefix.size());
      return arrow::Status::Invalid("model '", o.model,
                                    "' failed on a dummy batch of the declared input "
                                    "shape (", shapes_text, ", batch dimension first): ",
                                    reason);
    }
    const auto& outs = *probed;
    if (!o.output_names.empty() && o.output_names.size() != outs.size()) {
      return arrow::Status::Invalid("--output-names: the model returns ", outs.size(),
                                    " output(s) but ", o.output_names.size(),
                                    " name(s) were given (", Join(o.output_names), ")");
    }
    for (size_t k = 0; k < outs.size(); ++k) {
      OutputSpec spec;
      if (!o.output_names.empty()) {
        spec.name = o.output_names[k];
      } else if (!outs[k].name.empty()) {
        spec.name = outs[k].name;
      } else if (outs.size() == 1) {
        spec.name = "scores";
      } else {
        spec.name = "scores_" + std::to_string(k);
      }
      spec.row_shape.assign(outs[k].shape.begin() + 1, outs[k].shape.end());
      spec.row_size = Product(spec.row_shape);
      plan->outputs.push_back(std::move(spec));
    }
    if (o.argmax && plan->outputs[0].row_size == 0) {
      return arrow::Status::Invalid("--argmax: the model's first output has no values");
    }
    // Output schema: kept columns, one list<float32> per output, `prediction`.
    std::vector<std::shared_ptr<arrow::Field>> fields;
    std::set<std::string> names;
    if (o.keep_all) {
      for (int i = 0; i < input.num_fields(); ++i) {
        if (tensor_columns.count(input.field(i)->name()) == 0) plan->keep_index.push_back(i);
      }
    } else {
      for (const auto& name : o.keep) {
        int index = input.GetFieldIndex(name);
        if (index < 0) {
          return arrow::Status::TypeError("--keep: the input has no column '", name,
                                          "'; its columns are ",
                                          Join(input.field_names()));
        }
        plan->keep_index.push_back(index);
      }
    }
    for (int i : plan->keep_index) {
      fields.push_back(input.field(i));
      names.insert(input.field(i)->name());
    }
    for (const auto& spec : plan->outputs) {
      if (!names.insert(spec.name).second) {
        return arrow::Status::Invalid(
            "output column '", spec.name, "' has the name of another output or of a kept "
            "input column; rename outputs with --output-names or leave the input column "
            "out with --keep");
      }
      auto meta = arrow::key_value_metadata({kShapeKey}, {ShapeText(spec.row_shape)});
      fields.push_back(arrow::field(spec.name, arrow::list(arrow::float32()), true, meta));
    }
    if (o.argmax) {
      if (!names.insert("prediction").second) {
        return arrow::Status::Invalid(
            "--argmax adds column 'prediction', but another column has that name");
      }
      fields.push_back(arrow::field("prediction", arrow::int64()));
    }
    plan->output = arrow::schema(fields);
    return plan;
  }

  const ScoreOptions options_;
  std::mutex mu_;
  std::unique_ptr<TorchModel> probe_;     // GUARDED_BY(mu_)
  std::shared_ptr<const Plan> plan_;      // GUARDED_BY(mu_)
};

class ScoreOperator : public StatefulOperator {
 public:
  explicit ScoreOperator(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}

  std::string name() const override { return "score"; }

  arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(
      const arrow::Schema& input) const override {
    ARROW_ASSIGN_OR_RAISE(auto plan, shared_->PlanFor(input));
    return plan->output;
  }

  arrow::Status Open(const OperatorContext& context) override {
    const ScoreOptions& o = shared_->options();
    threads_ = o.threads_per_worker;
    if (threads_ <= 0) {
      int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
      threads_ = std::max(1, cores / std::max(1, context.num_workers));
    }
    TorchModel::SetThreads(threads_);
    thread_ = std::this_thread::get_id();
    ARROW_ASSIGN_OR_RAISE(model_, TorchModel::Load(o.model, o.device));
    return arrow::Status::OK();
  }

  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Process(
      const std::shared_ptr<arrow::RecordBatch>& batch, RowErrors* row_errors) override {
    if (model_ == nullptr) return arrow::Status::Invalid("score: Process() before Open()");
    // The plan made while the pipeline was planned (batches may lack the field
    // metadata of the declared schema); a direct caller's first batch makes one.
    if (plan_ == nullptr) plan_ = shared_->current_plan();
    if (plan_ == nullptr || !plan_->input->Equals(*batch->schema(), false)) {
      ARROW_ASSIGN_OR_RAISE(plan_, shared_->PlanFor(*batch->schema()));
    }
    const ScoreOptions& o = shared_->options();
    Segment seg;
    seg.batch = batch;
    std::vector<TensorColumn> cols;
    for (int index : plan_->input_index) cols.emplace_back(*batch->column(index));
    seg.rows.reserve(batch->num_rows());
    for (int64_t r = 0; r < batch->num_rows(); ++r) {
      std::string error;
      for (size_t c = 0; c < cols.size() && error.empty(); ++c) {
        const arrow::Array& a = *batch->column(plan_->input_index[c]);
        const int64_t want = plan_->row_sizes[c];
        if (a.IsNull(r)) {
          error = "column '" + o.columns[c] + "' is null; expected a tensor of shape " +
                  ShapeText(plan_->shapes[c]);
        } else if (cols[c].length(r) != want) {
          error = "column '" + o.columns[c] + "' has " + std::to_string(cols[c].length(r)) +
                  " values; expected " + std::to_string(want) + " (shape " +
                  ShapeText(plan_->shapes[c]) + ")";
        } else if (cols[c].HasNullValue(cols[c].start(r), want)) {
          error = "column '" + o.columns[c] + "' has a null value inside its tensor";
        }
      }
      if (error.empty()) {
        seg.rows.push_back(r);
      } else {
        row_errors->Add(r, std::move(error));
      }
    }
    if (!seg.rows.empty()) {
      pending_rows_ += static_cast<int64_t>(seg.rows.size());
      pending_.push_back(std::move(seg));
    }
    while (pending_rows_ >= o.batch_size) ARROW_RETURN_NOT_OK(ScoreChunk(o.batch_size));
    return TakeOutput();
  }

  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Flush() override {
    if (model_ == nullptr || plan_ == nullptr) return nullptr;
    const int64_t batch_size = shared_->options().batch_size;
    while (pending_rows_ > 0) {
      ARROW_RETURN_NOT_OK(ScoreChunk(std::min(pending_rows_, batch_size)));
    }
    if (out_rows_ == 0) return nullptr;
    return TakeOutput();
  }

  arrow::Status Close() override {
    model_.reset();
    pending_.clear();
    pending_rows_ = 0;
    return arrow::Status::OK();
  }

 private:
  // Good rows of one input batch that are not scored yet; rows[next...] are pending.
  struct Segment {
    std::shared_ptr<arrow::RecordBatch> batch;
    std::vector<int64_t> rows;
    size_t next = 0;
  };
  // Scored rows of one input batch, for the pass-through columns.
  struct Piece {
    std::shared_ptr<arrow::RecordBatch> batch;
    std::vector<int64_t> rows;
  };

  // Scores the first `n` pending rows (one forward() call) and appends the results to
  // the output being built.
  arrow::Status ScoreChunk(int64_t n) {
    const ScoreOptions& o = shared_->options();
    const size_t ncols = plan_->input_index.size();
    staging_.resize(ncols);
    for (size_t c = 0; c < ncols; ++c) staging_[c].resize(n * plan_->row_sizes[c]);
    int64_t filled = 0;
    while (filled < n) {
      Segment& seg = pending_.front();
      const int64_t take =
          std::min<int64_t>(n - filled, static_cast<int64_t>(seg.rows.size() - seg.next));
      std::vector<TensorColumn> cols;
      for (int index : plan_->input_index) cols.emplace_back(*seg.batch->column(index));
      for (size_t c = 0; c < ncols; ++c) {
        const int64_t size = plan_->row_sizes[c];
        float* dst = staging_[c].data() + filled * size;
        for (int64_t k = 0; k < take; ++k) {
          std::memcpy(dst + k * size, cols[c].row(seg.rows[seg.next + k]),
                      sizeof(float) * size);
        }
      }
      if (pieces_.empty() || pieces_.back().batch != seg.batch) {
        pieces_.push_back({seg.batch, {}});
      }
      auto& prow = pieces_.back().rows;
      prow.insert(prow.end(), seg.rows.begin() + seg.next, seg.rows.begin() + seg.next + take);
      seg.next += take;
      filled += take;
      if (seg.next == seg.rows.size()) pending_.pop_front();
    }
    pending_rows_ -= n;
    std::vector<TensorView> views(ncols);
    for (size_t c = 0; c < ncols; ++c) {
      views[c].data = staging_[c].data();
      views[c].shape = {n};
      views[c].shape.insert(views[c].shape.end(), plan_->shapes[c].begin(),
                            plan_->shapes[c].end());
    }
    if (std::this_thread::get_id() != thread_) {
      TorchModel::SetThreads(threads_);
      thread_ = std::this_thread::get_id();
    }
    ARROW_ASSIGN_OR_RAISE(auto outs, model_->Forward(views, o.softmax));
    if (outs.size() != plan_->outputs.size()) {
      return arrow::Status::Invalid("model '", o.model, "' returned ", outs.size(),
                                    " outputs for a batch of ", n, " rows, but ",
                                    plan_->outputs.size(), " on the probe batch");
    }
    out_values_.resize(outs.size());
    for (size_t k = 0; k < outs.size(); ++k) {
      const int64_t size = plan_->outputs[k].row_size;
      if (static_cast<int64_t>(outs[k].values.size()) != n * size) {
        return arrow::Status::Invalid(
            "model '", o.model, "' output '", plan_->outputs[k].name, "' has ",
            outs[k].values.size() / std::max<int64_t>(n, 1), " values per row for a batch of ",
            n, " rows, but ", size, " on the probe batch; outputs must have a fixed "
            "per-row shape");
      }
      out_values_[k].insert(out_values_[k].end(), outs[k].values.begin(),
                            outs[k].values.end());
    }
    if (o.argmax) {
      const int64_t size = plan_->outputs[0].row_size;
      const float* v = outs[0].values.data();
      for (int64_t r = 0; r < n; ++r) {
        const float* row = v + r * size;
        predictions_.push_back(std::max_element(row, row + size) - row);
      }
    }
    out_rows_ += n;
    return arrow::Status::OK();
  }

  // The scored rows so far as one batch of the output schema (possibly 0 rows).
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> TakeOutput() {
    const int64_t n = out_rows_;
    std::vector<std::shared_ptr<arrow::Array>> columns;
    for (int index : plan_->keep_index) {
      arrow::ArrayVector parts;
      for (const auto& piece : pieces_) {
        const auto& column = piece.batch->column(index);
        const auto& rows = piece.rows;
        if (rows.back() - rows.front() + 1 == static_cast<int64_t>(rows.size())) {
          parts.push_back(column->Slice(rows.front(), rows.size()));
        } else {
          arrow::Int64Builder ib;
          ARROW_RETURN_NOT_OK(ib.AppendValues(rows));
          ARROW_ASSIGN_OR_RAISE(auto indices, ib.Finish());
          ARROW_ASSIGN_OR_RAISE(auto taken, arrow::compute::Take(*column, *indices));
          parts.push_back(std::move(taken));
        }
      }
      if (parts.empty()) {
        ARROW_ASSIGN_OR_RAISE(auto empty,
                              arrow::MakeEmptyArray(plan_->input->field(index)->type()));
        columns.push_back(std::move(empty));
      } else if (parts.size() == 1) {
        columns.push_back(std::move(parts[0]));
      } else {
        ARROW_ASSIGN_OR_RAISE(auto joined, arrow::Concatenate(parts));
        columns.push_back(std::move(joined));
      }
    }
    for (size_t k = 0; k < plan_->outputs.size(); ++k) {
      const int64_t size = plan_->outputs[k].row_size;
      std::vector<float> values;
      if (k < out_values_.size()) values.swap(out_values_[k]);
      std::vector<int32_t> offsets(n + 1);
      for (int64_t r = 0; r <= n; ++r) offsets[r] = static_cast<int32_t>(r * size);
      // The length first: the vector is moved into the buffer below.
      const int64_t num_values = static_cast<int64_t>(values.size());
      auto value_array = std::make_shared<arrow::FloatArray>(
          num_values, arrow::Buffer::FromVector(std::move(values)));
      auto list = std::make_shared<arrow::ListArray>(
          arrow::list(arrow::float32()), n, arrow::Buffer::FromVector(std::move(offsets)),
          value_array);
      columns.push_back(std::move(list));
    }
    if (shared_->options().argmax) {
      columns.push_back(std::make_shared<arrow::Int64Array>(
          n, arrow::Buffer::FromVector(std::move(predictions_))));
      predictions_.clear();
    }
    pieces_.clear();
    out_values_.clear();
    out_rows_ = 0;
    return arrow::RecordBatch::Make(plan_->output, n, std::move(columns));
  }

  std::shared_ptr<Shared> shared_;
  std::shared_ptr<const Plan> plan_;
  std::unique_ptr<TorchModel> model_;
  int threads_ = 1;
  std::thread::id thread_;
  std::deque<Segment> pending_;
  int64_t pending_rows_ = 0;
  std::vector<std::vector<float>> staging_;
  // The output being built: rows scored since the last TakeOutput().
  std::vector<Piece> pieces_;
  std::vector<std::vector<float>> out_values_;
  std::vector<int64_t> predictions_;
  int64_t out_rows_ = 0;
};

}  // namespace

arrow::Result<std::vector<int64_t>> ParseShape(const std::string& text,
                                               const std::string& option) {
  std::string s;
  for (char ch : text) {
    if (ch != '[' && ch != ']' && ch != ' ') s += ch;
  }
  std::vector<int64_t> shape;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    long long d = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || end == nullptr || *end != '\0' || d <= 0) {
      return arrow::Status::Invalid(option, ": '", text,
                                    "' is not a shape; expected positive sizes separated "
                                    "by commas, such as 101,64");
    }
    shape.push_back(d);
  }
  if (shape.empty()) {
    return arrow::Status::Invalid(option, ": '", text,
                                  "' is not a shape; expected sizes such as 101,64");
  }
  return shape;
}

arrow::Result<StatefulOperatorFactory> MakeScoreFactory(const ScoreOptions& options) {
  if (options.model.empty()) return arrow::Status::Invalid("--model is required");
  if (options.columns.empty()) {
    return arrow::Status::Invalid("--model-input is required (the tensor input column)");
  }
  if (options.batch_size <= 0) {
    return arrow::Status::Invalid("--batch-size must be positive, got ",
                                  options.batch_size);
  }
  if (!options.shapes.empty() && options.shapes.size() != options.columns.size()) {
    return arrow::Status::Invalid("--shape: ", options.shapes.size(),
                                  " shape(s) for ", options.columns.size(),
                                  " --model-input(s); give one --shape per --model-input, in order");
  }
  if (options.threads_per_worker < 0) {
    return arrow::Status::Invalid("--threads-per-worker must be >= 0 (0: automatic)");
  }
  ARROW_RETURN_NOT_OK(CheckTorchDevice(options.device));
  ARROW_ASSIGN_OR_RAISE(auto probe, TorchModel::Load(options.model, options.device));
  auto shared = std::make_shared<Shared>(options, std::move(probe));
  return StatefulOperatorFactory(
      [shared]() -> arrow::Result<std::unique_ptr<StatefulOperator>> {
        return std::make_unique<ScoreOperator>(shared);
      });
}

std::string TorchBackendDescription() {
  return "libtorch " + TorchVersion() + (TorchHasCuda() ? " (CUDA)" : " (CPU only)");
}

}  // namespace dlprep::infer

extern "C" const dlprep::infer::TorchBackendApi* dlprep_torch_backend_v1() {
  static const dlprep::infer::TorchBackendApi api = {
      &dlprep::infer::ParseShape, &dlprep::infer::MakeScoreFactory,
      &dlprep::infer::TorchBackendDescription};
  return &api;
}
