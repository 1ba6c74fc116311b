#include "exec/builtin_ops.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <unordered_map>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <arrow/compute/expression.h>
#include <arrow/util/byte_size.h>

#include "core/memory.h"
#include "core/units.h"
#include "exec/filter_expr.h"

namespace dlprep::exec {

namespace cp = arrow::compute;

namespace {

// 0.9, 1.5, 1e-12: shortest text that reads back as the same double.
std::string Num(double v) {
  char buf[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

std::string Available(const arrow::Schema& schema) {
  std::string out;
  for (const auto& f : schema.fields()) {
    if (!out.empty()) out += ", ";
    out += f->name();
  }
  return out.empty() ? "(none)" : out;
}

// TypeError "<op>: option '<option>': no column '<name>' in the input; available: ...".
arrow::Status NoColumn(const std::string& op, const std::string& option,
                       const std::string& name, const arrow::Schema& schema,
                       const std::string& where = "the input") {
  return arrow::Status::TypeError(op, ": option '", option, "': no column '", name,
                                  "' in ", where, "; available: ", Available(schema));
}

// Index of column `name` in `schema`, or the NoColumn error (also when it is ambiguous).
arrow::Result<int> FindColumn(const std::string& op, const std::string& option,
                              const std::string& name, const arrow::Schema& schema,
                              const std::string& where = "the input") {
  int i = schema.GetFieldIndex(name);
  if (i < 0) {
    if (schema.GetFieldByName(name) == nullptr && schema.GetAllFieldIndices(name).size() > 1) {
      return arrow::Status::TypeError(op, ": option '", option, "': column '", name,
                                      "' appears more than once in ", where);
    }
    return NoColumn(op, option, name, schema, where);
  }
  return i;
}

arrow::Status EnsureComputeInitialized() {
  static arrow::Status status = cp::Initialize();
  return status;
}

// ---------------------------------------------------------------------------- select

class SelectOp : public BatchOperator {
 public:
  explicit SelectOp(SelectOptions o) : options_(std::move(o)) {}
  std::string name() const override { return "select"; }
  arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(
      const arrow::Schema& input) const override {
    arrow::FieldVector fields;
    for (const auto& c : options_.columns) {
      ARROW_ASSIGN_OR_RAISE(int i, FindColumn("select", "columns", c, input));
      fields.push_back(input.field(i));
    }
    return arrow::schema(std::move(fields), input.metadata());
  }
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Process(
      const std::shared_ptr<arrow::RecordBatch>& batch) const override {
    std::vector<int> indices;
    for (const auto& c : options_.columns) {
      ARROW_ASSIGN_OR_RAISE(int i, FindColumn("select", "columns", c, *batch->schema()));
      indices.push_back(i);
    }
    return batch->SelectColumns(indices);
  }

 private:
  SelectOptions options_;
};

// ---------------------------------------------------------------------------- rename

class RenameOp : public BatchOperator {
 public:
  explicit RenameOp(RenameOptions o) : options_(std::move(o)) {}
  std::string name() const override { return "rename"; }
  arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(
      const arrow::Schema& input) const override {
    arrow::FieldVector fields = input.fields();
    for (const auto& [from, to] : options_.columns) {
      ARROW_ASSIGN_OR_RAISE(int i, FindColumn("rename", "columns", from, input));
      fields[i] = fields[i]->WithName(to);
    }
    std::set<std::string> seen;
    for (const auto& f : fields) {
      if (!seen.insert(f->name()).second) {
        return arrow::Status::TypeError("rename: option 'columns': the output would have "
                                        "two columns named '",
                                        f->name(), "'; input columns: ", Available(input));
      }
    }
    return arrow::schema(std::move(fields), input.metadata());
  }
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Process(
      const std::shared_ptr<arrow::RecordBatch>& batch) const override {
    ARROW_ASSIGN_OR_RAISE(auto schema, OutputSchema(*batch->schema()));
    return arrow::RecordBatch::Make(std::move(schema), batch->num_rows(), batch->columns());
  }

 private:
  RenameOptions options_;
};

// ------------------------------------------------------------------------------ cast

class CastOp : public BatchOperator {
 public:
  CastOp(CastOptions o, std::vector<std::shared_ptr<arrow::DataType>> types)
      : options_(std::move(o)), types_(std::move(types)) {}
  std::string name() const override { return "cast"; }
  arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(
      const arrow::Schema& input) const override {
    arrow::FieldVector fields = input.fields();
    for (size_t k = 0; k < types_.size(); ++k) {
      const std::string& col = options_.columns[k].first;
      ARROW_ASSIGN_OR_RAISE(int i, FindColumn("cast", "columns", col, input));
      if (!cp::CanCast(*fields[i]->type(), *types_[k])) {
        return arrow::Status::TypeError("cast: option 'columns': column '", col,
                                        "' of type ", fields[i]->type()->ToString(),
                                        " cannot be cast to ", types_[k]->ToString());
      }
      fields[i] = fields[i]->WithType(types_[k]);
    }
    return arrow::schema(std::move(fields), input.metadata());
  }
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Process(
      const std::shared_ptr<arrow::RecordBatch>& batch) const override {
    ARROW_ASSIGN_OR_RAISE(auto schema, OutputSchema(*batch->schema()));
    std::vector<std::shared_ptr<arrow::Array>> columns = batch->columns();
    for (size_t k = 0; k < types_.size(); ++k) {
      const std::string& col = options_.columns[k].first;
      int i = batch->schema()->GetFieldIndex(col);
      auto cast =
          cp::Cast(*columns[i], types_[k], cp::CastOptions::Safe(), EngineExecContext());
      if (!cast.ok()) return CastError(col, *columns[i], k, cast.status());
      columns[i] = *std::move(cast);
    }
    return arrow::RecordBatch::Make(std::move(schema), batch->num_rows(), std::move(columns));
  }

 private:
  // Finds the first row that fails on its own, so the message can name it.
  arrow::Status CastError(const std::string& col, const arrow::Array& values, size_t k,
                          const arrow::Status& st) const {
    for (int64_t r = 0; r < values.length(); ++r) {
      auto one = cp::Cast(*values.Slice(r, 1), types_[k], cp::CastOptions::Safe());
      if (!one.ok()) {
        std::string value = "?";
        auto scalar = values.GetScalar(r);
        if (scalar.ok()) value = (*scalar)->ToString();
        return arrow::Status::Invalid("cast: column '", col, "' row ", r, " (value ", value,
                                      ") cannot be cast to ", types_[k]->ToString(), ": ",
                                      one.status().message());
      }
    }
    return arrow::Status::Invalid("cast: column '", col, "' cannot be cast to ",
                                  types_[k]->ToString(), ": ", st.message());
  }

  CastOptions options_;
  std::vector<std::shared_ptr<arrow::DataType>> types_;
};

// ---------------------------------------------------------------------------- filter

class FilterOp : public BatchOperator {
 public:
  FilterOp(FilterOptions o, cp::Expression expr)
      : options_(std::move(o)), expr_(std::move(expr)) {}
  std::string name() const override { return "filter"; }
  arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(
      const arrow::Schema& input) const override {
    ARROW_RETURN_NOT_OK(Bind(input).status());
    return std::make_shared<arrow::Schema>(input);
  }
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Process(
      const std::shared_ptr<arrow::RecordBatch>& batch) const override {
    ARROW_ASSIGN_OR_RAISE(cp::Expression bound, Bind(*batch->schema()));
    ARROW_ASSIGN_OR_RAISE(arrow::Datum mask,
                          cp::ExecuteScalarExpression(bound, *batch->schema(), batch,
                                                      EngineExecContext()));
    if (mask.is_scalar()) {
      const auto& s = mask.scalar_as<arrow::BooleanScalar>();
      return (s.is_valid && s.value) ? batch : batch->Slice(0, 0);
    }
    // Every row kept (the usual case of a null check): the batch as it is, no copy.
    // The array must outlive `keep` (a reference into a temporary would dangle).
    const std::shared_ptr<arrow::Array> mask_array = mask.make_array();
    const auto& keep = static_cast<const arrow::BooleanArray&>(*mask_array);
    if (keep.null_count() == 0 && keep.true_count() == keep.length()) return batch;
    ARROW_ASSIGN_OR_RAISE(
        arrow::Datum out,
        cp::Filter(batch, mask, cp::FilterOptions::Defaults(), EngineExecContext()));
    return out.record_batch();
  }

 private:
  arrow::Result<cp::Expression> Bind(const arrow::Schema& input) const {
    for (const arrow::FieldRef& ref : cp::FieldsInExpression(expr_)) {
      const std::string* name = ref.name();
      if (name != nullptr && input.GetFieldIndex(*name) < 0) {
        return arrow::Status::TypeError("filter: option 'expr': '", options_.expr,
                                        "' names column '", *name,
                                        "', which the input does not have (or has twice); "
                                        "available: ",
                                        Available(input));
      }
    }
    auto bound = expr_.Bind(input);
    if (!bound.ok()) {
      return arrow::Status::TypeError("filter: option 'expr': '", options_.expr,
                                      "' does not fit the input: ",
                                      bound.status().message());
    }
    if (bound->type() == nullptr || bound->type()->id() != arrow::Type::BOOL) {
      return arrow::Status::TypeError(
          "filter: option 'expr': '", options_.expr, "' is of type ",
          bound->type() ? bound->type()->ToString() : "unknown",
          "; expected a condition (boolean), e.g. 'x > 3'");
    }
    return bound;
  }

  FilterOptions options_;
  cp::Expression expr_;
};

// --------------------------------------------------------------------- regex_extract

// Counts the capture groups of an RE2 pattern; `*unnamed_pos` gets the position of the
// '(' of the last unnamed one (or npos).
int CountCaptureGroups(const std::string& p, size_t* unnamed_pos) {
  int groups = 0;
  *unnamed_pos = std::string::npos;
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\') {
      ++i;
      continue;
    }
    if (in_class) {
      if (c == ']') in_class = false;
      continue;
    }
    if (c == '[') {
      in_class = true;
      if (i + 1 < p.size() && p[i + 1] == '^') ++i;
      if (i + 1 < p.size() && p[i + 1] == ']') ++i;  // a leading ']' is literal
      continue;
    }
    if (c != '(') continue;
    if (i + 1 < p.size() && p[i + 1] == '?') {
      bool named = p.compare(i + 1, 3, "?P<") == 0 ||
                   (p.compare(i + 1, 2, "?<") == 0 && p.compare(i + 1, 3, "?<=") != 0 &&
                    p.compare(i + 1, 3, "?<!") != 0);
      if (named) ++groups;
    } else {
      ++groups;
      *unnamed_pos = i;
    }
  }
  return groups;
}

// The regex work shared by the scalar and the stateful variant.
class RegexExtractor {
 public:
  RegexExtractor(RegexExtractOptions o, std::string arrow_pattern)
      : options_(std::move(o)), arrow_options_(std::move(arrow_pattern)) {}

  const RegexExtractOptions& options() const { return options_; }

  arrow::Result<std::shared_ptr<arrow::Field>> OutputField(const arrow::Schema& input) const {
    ARROW_ASSIGN_OR_RAISE(int i, FindColumn("regex_extract", "column", options_.column, input));
    const auto& type = input.field(i)->type();
    if (type->id() != arrow::Type::STRING && type->id() != arrow::Type::LARGE_STRING) {
      return arrow::Status::TypeError("regex_extract: option 'column': column '",
                                      options_.column, "' is ", type->ToString(),
                                      "; expected string (cast it first)");
    }
    if (input.GetFieldIndex(options_.output) >= 0) {
      return arrow::Status::TypeError("regex_extract: option 'output': the input already "
                                      "has a column '",
                                      options_.output, "'; choose another name");
    }
    return arrow::field(options_.output, type);
  }

  /// The extracted values (null where the input is null or does not match).
  arrow::Result<std::shared_ptr<arrow::Array>> Extract(const arrow::RecordBatch& batch) const {
    auto values = batch.GetColumnByName(options_.column);
    if (values == nullptr) {
      return NoColumn("regex_extract", "column", options_.column, *batch.schema());
    }
    ARROW_ASSIGN_OR_RAISE(arrow::Datum out,
                          cp::CallFunction("extract_regex", {values}, &arrow_options_,
                                           EngineExecContext()));
    auto st = std::static_pointer_cast<arrow::StructArray>(out.make_array());
    return st->GetFlattenedField(0);
  }

 private:
  RegexExtractOptions options_;
  cp::ExtractRegexOptions arrow_options_;
};

class RegexExtractScalar : public ScalarOperator {
 public:
  explicit RegexExtractScalar(std::shared_ptr<const RegexExtractor> ex) : ex_(std::move(ex)) {}
  std::string name() const override { return "regex_extract"; }
  arrow::Result<std::shared_ptr<arrow::Field>> OutputField(
      const arrow::Schema& input) const override {
    return ex_->OutputField(input);
  }
  arrow::Result<std::shared_ptr<arrow::Array>> Compute(
      const arrow::RecordBatch& batch) const override {
    return ex_->Extract(batch);
  }

 private:
  std::shared_ptr<const RegexExtractor> ex_;
};

class RegexExtractStateful : public StatefulOperator {
 public:
  explicit RegexExtractStateful(std::shared_ptr<const RegexExtractor> ex)
      : ex_(std::move(ex)) {}
  std::string name() const override { return "regex_extract"; }
  arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(
      const arrow::Schema& input) const override {
    ARROW_ASSIGN_OR_RAISE(auto field, ex_->OutputField(input));
    return input.AddField(input.num_fields(), std::move(field));
  }
  arrow::Status Open(const OperatorContext&) override { return arrow::Status::OK(); }
  arrow::Status Close() override { return arrow::Status::OK(); }
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Process(
      const std::shared_ptr<arrow::RecordBatch>& batch, RowErrors* row_errors) override {
    ARROW_ASSIGN_OR_RAISE(auto field, ex_->OutputField(*batch->schema()));
    ARROW_ASSIGN_OR_RAISE(auto extracted, ex_->Extract(*batch));
    auto input = batch->GetColumnByName(ex_->options().column);
    arrow::BooleanBuilder keep(EnginePool());
    ARROW_RETURN_NOT_OK(keep.Reserve(batch->num_rows()));
    for (int64_t r = 0; r < batch->num_rows(); ++r) {
      bool mismatch = input->IsValid(r) && extracted->IsNull(r);
      if (mismatch) {
        ARROW_ASSIGN_OR_RAISE(auto value, input->GetScalar(r));
        row_errors->Add(r, "regex_extract: column '" + ex_->options().column + "' value " +
                               value->ToString() + " does not match pattern '" +
                               ex_->options().pattern + "'");
      }
      keep.UnsafeAppend(!mismatch);
    }
    ARROW_ASSIGN_OR_RAISE(auto with_column,
                          batch->AddColumn(batch->num_columns(), field, extracted));
    if (row_errors->empty()) return with_column;
    ARROW_ASSIGN_OR_RAISE(auto mask, keep.Finish());
    ARROW_ASSIGN_OR_RAISE(
        arrow::Datum out,
        cp::Filter(with_column, mask, cp::FilterOptions::Defaults(),
                   EngineExecContext()));
    return out.record_batch();
  }

 private:
  std::shared_ptr<const RegexExtractor> ex_;
};

// ------------------------------------------------------------------------ key bytes

bool IsHashableKeyType(const arrow::DataType& type) {
  switch (type.id()) {
    case arrow::Type::BOOL:
    case arrow::Type::STRING:
    case arrow::Type::LARGE_STRING:
    case arrow::Type::BINARY:
    case arrow::Type::LARGE_BINARY:
    case arrow::Type::DATE32:
    case arrow::Type::DATE64:
    case arrow::Type::TIMESTAMP:
      return true;
    default:
      return arrow::is_integer(type.id());
  }
}

// The bytes of row `r` of `array` (not null) as SplitHash and the join see them.
// `scratch` holds the value for bool. Little-endian hosts only (x86-64, aarch64).
std::string_view KeyBytes(const arrow::Array& array, int64_t r, uint8_t* scratch) {
  switch (array.type_id()) {
    case arrow::Type::BOOL:
      *scratch = static_cast<const arrow::BooleanArray&>(array).Value(r) ? 1 : 0;
      return {reinterpret_cast<const char*>(scratch), 1};
    case arrow::Type::STRING:
    case arrow::Type::BINARY:
      return static_cast<const arrow::BinaryArray&>(array).GetView(r);
    case arrow::Type::LARGE_STRING:
    case arrow::Type::LARGE_BINARY:
      return static_cast<const arrow::LargeBinaryArray&>(array).GetView(r);
    default: {
      int width = array.type()->byte_width();
      const uint8_t* base = array.data()->buffers[1]->data();
      return {reinterpret_cast<const char*>(base + (array.offset() + r) * width),
              static_cast<size_t>(width)};
    }
  }
}

// ----------------------------------------------------------------------------- split

class SplitOp : public ScalarOperator {
 public:
  explicit SplitOp(SplitOptions o) : options_(std::move(o)) {
    double cum = 0;
    for (const auto& [name, f] : options_.fractions) {
      cum += f;
      cumulative_.push_back(cum);
    }
  }
  std::string name() const override { return "split"; }
  arrow::Result<std::shared_ptr<arrow::Field>> OutputField(
      const arrow::Schema& input) const override {
    ARROW_ASSIGN_OR_RAISE(int i, FindColumn("split", "key", options_.key, input));
    if (!IsHashableKeyType(*input.field(i)->type())) {
      return arrow::Status::TypeError(
          "split: option 'key': column '", options_.key, "' is ",
          input.field(i)->type()->ToString(),
          "; expected an integer, bool, string, binary, date or timestamp column");
    }
    if (input.GetFieldIndex(options_.output) >= 0) {
      return arrow::Status::TypeError("split: option 'output': the input already has a "
                                      "column '",
                                      options_.output, "'; choose another name");
    }
    return arrow::field(options_.output, arrow::utf8());
  }
  arrow::Result<std::shared_ptr<arrow::Array>> Compute(
      const arrow::RecordBatch& batch) const override {
    auto key = batch.GetColumnByName(options_.key);
    if (key == nullptr) return NoColumn("split", "key", options_.key, *batch.schema());
    arrow::StringBuilder out(EnginePool());
    ARROW_RETURN_NOT_OK(out.Reserve(batch.num_rows()));
    uint8_t scratch = 0;
    for (int64_t r = 0; r < batch.num_rows(); ++r) {
      if (key->IsNull(r)) {
        ARROW_RETURN_NOT_OK(out.AppendNull());
        continue;
      }
      std::string_view bytes = KeyBytes(*key, r, &scratch);
      uint64_t h = SplitHash(bytes.data(), bytes.size(), options_.seed);
      double u = static_cast<double>(h >> 11) * 0x1.0p-53;  // [0, 1)
      size_t k = 0;
      while (k + 1 < cumulative_.size() && u >= cumulative_[k]) ++k;
      ARROW_RETURN_NOT_OK(out.Append(options_.fractions[k].first));
    }
    return out.Finish();
  }

 private:
  SplitOptions options_;
  std::vector<double> cumulative_;
};

// ------------------------------------------------------------------------------ join

// Appends the key of row `r` (all of `columns`) to `out`; false when a key is null.
bool EncodeKey(const std::vector<std::shared_ptr<arrow::Array>>& columns, int64_t r,
               std::string* out) {
  out->clear();
  uint8_t scratch = 0;
  for (const auto& c : columns) {
    if (c->IsNull(r)) return false;
    std::string_view b = KeyBytes(*c, r, &scratch);
    uint64_t n = b.size();
    out->append(reinterpret_cast<const char*>(&n), sizeof(n));
    out->append(b.data(), b.size());
  }
  return true;
}

std::string DescribeKey(const std::vector<std::string>& names,
                        const std::vector<std::shared_ptr<arrow::Array>>& columns, int64_t r) {
  std::string s;
  for (size_t k = 0; k < names.size(); ++k) {
    if (k > 0) s += ", ";
    auto scalar = columns[k]->GetScalar(r);
    s += names[k] + "=" + (scalar.ok() ? (*scalar)->ToString() : "?");
  }
  return s;
}

// The side table, loaded once and shared by every worker's instance.
struct SideTable {
  BroadcastJoinOptions options;
  std::shared_ptr<arrow::Schema> schema;  // of the side source
  std::vector<int> key_index;             // in `schema`
  std::vector<int> value_index;           // the non-key columns, in `schema` order

  std::mutex mu;
  bool loaded = false;                // guarded by mu
  arrow::Status load_status;          // guarded by mu
  std::shared_ptr<arrow::RecordBatch> table;  // immutable once loaded
  std::unordered_map<std::string, int64_t> index;  // immutable once loaded
  // One int64 key column: looked up by value, without encoding (the common case).
  bool int64_key = false;
  std::unordered_map<int64_t, int64_t> int64_index;  // immutable once loaded

  arrow::Status Load() {
    std::lock_guard<std::mutex> lock(mu);
    if (!loaded) {
      load_status = DoLoad();
      loaded = true;
    }
    return load_status;
  }

  arrow::Status DoLoad() {
    const Source& src = *options.side;
    std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
    int64_t bytes = 0;
    for (int64_t p = 0; p < src.num_partitions(); ++p) {
      ARROW_ASSIGN_OR_RAISE(auto reader, src.OpenPartition(p));
      while (true) {
        std::shared_ptr<arrow::RecordBatch> b;
        ARROW_RETURN_NOT_OK(reader->ReadNext(&b));
        if (b == nullptr) break;
        bytes += arrow::util::TotalBufferSize(*b);
        if (bytes > options.max_bytes) {
          return arrow::Status::Invalid(
              "join: side table '", options.side_name, "' is larger than max_bytes (",
              FormatBytes(static_cast<double>(options.max_bytes)), "): it reached ",
              FormatBytes(static_cast<double>(bytes)), " (", bytes,
              " bytes) in memory while reading '", src.partition_name(p),
              "'; raise max_bytes or use a smaller side table");
        }
        batches.push_back(std::move(b));
      }
    }
    ARROW_ASSIGN_OR_RAISE(auto t, arrow::Table::FromRecordBatches(schema, batches));
    ARROW_ASSIGN_OR_RAISE(table, t->CombineChunksToBatch());
    std::vector<std::shared_ptr<arrow::Array>> keys;
    for (int i : key_index) keys.push_back(table->column(i));
    int64_key = keys.size() == 1 && keys[0]->type_id() == arrow::Type::INT64;
    std::string key;
    if (int64_key) {
      int64_index.reserve(static_cast<size_t>(table->num_rows()));
    } else {
      index.reserve(static_cast<size_t>(table->num_rows()));
    }
    for (int64_t r = 0; r < table->num_rows(); ++r) {
      if (int64_key) {
        const auto& k = static_cast<const arrow::Int64Array&>(*keys[0]);
        if (k.IsNull(r)) continue;
        auto [it, inserted] = int64_index.emplace(k.Value(r), r);
        if (inserted) continue;
        return arrow::Status::Invalid("join: side table '", options.side_name,
                                      "' has the key (", DescribeKey(options.on, keys, r),
                                      ") twice (rows ", it->second, " and ", r,
                                      "); keys of a side table must be unique");
      }
      if (!EncodeKey(keys, r, &key)) continue;  // a null key never matches
      auto [it, inserted] = index.emplace(key, r);
      if (!inserted) {
        return arrow::Status::Invalid("join: side table '", options.side_name,
                                      "' has the key (", DescribeKey(options.on, keys, r),
                                      ") twice (rows ", it->second, " and ", r,
                                      "); keys of a side table must be unique");
      }
    }
    return arrow::Status::OK();
  }
};

class BroadcastJoinOp : public StatefulOperator {
 public:
  explicit BroadcastJoinOp(std::shared_ptr<SideTable> side) : side_(std::move(side)) {}
  std::string name() const override { return "join"; }

  arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(
      const arrow::Schema& input) const override {
    const auto& opts = side_->options;
    for (size_t k = 0; k < opts.on.size(); ++k) {
      ARROW_ASSIGN_OR_RAISE(int i, FindColumn("join", "on", opts.on[k], input));
      const auto& side_type = side_->schema->field(side_->key_index[k])->type();
      if (!input.field(i)->type()->Equals(*side_type)) {
        return arrow::Status::TypeError(
            "join: option 'on': key column '", opts.on[k], "' is ",
            input.field(i)->type()->ToString(), " in the input but ", side_type->ToString(),
            " in side table '", opts.side_name, "'; cast one of them first");
      }
    }
    arrow::FieldVector fields = input.fields();
    for (int i : side_->value_index) {
      const auto& f = side_->schema->field(i);
      if (input.GetFieldIndex(f->name()) >= 0 || !input.GetAllFieldIndices(f->name()).empty()) {
        return arrow::Status::TypeError("join: column '", f->name(), "' of side table '",
                                        opts.side_name,
                                        "' is already in the input; rename or select "
                                        "columns first");
      }
      fields.push_back(f->WithNullable(true));
    }
    return arrow::schema(std::move(fields), input.metadata());
  }

  arrow::Status Open(const OperatorContext&) override { return side_->Load(); }
  arrow::Status Close() override { return arrow::Status::OK(); }

  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Process(
      const std::shared_ptr<arrow::RecordBatch>& batch, RowErrors*) override {
    ARROW_ASSIGN_OR_RAISE(auto schema, OutputSchema(*batch->schema()));
    std::vector<std::shared_ptr<arrow::Array>> keys;
    for (const auto& k : side_->options.on) keys.push_back(batch->GetColumnByName(k));
    arrow::Int64Builder indices(EnginePool());
    ARROW_RETURN_NOT_OK(indices.Reserve(batch->num_rows()));
    if (side_->int64_key) {
      const auto& k = static_cast<const arrow::Int64Array&>(*keys[0]);
      const auto& index = side_->int64_index;
      for (int64_t r = 0; r < batch->num_rows(); ++r) {
        auto it = k.IsNull(r) ? index.end() : index.find(k.Value(r));
        if (it == index.end()) {
          indices.UnsafeAppendNull();
        } else {
          indices.UnsafeAppend(it->second);
        }
      }
    } else {
      std::string key;
      for (int64_t r = 0; r < batch->num_rows(); ++r) {
        auto it = EncodeKey(keys, r, &key) ? side_->index.find(key) : side_->index.end();
        if (it == side_->index.end()) {
          indices.UnsafeAppendNull();
        } else {
          indices.UnsafeAppend(it->second);
        }
      }
    }
    ARROW_ASSIGN_OR_RAISE(auto idx, indices.Finish());
    std::vector<std::shared_ptr<arrow::Array>> columns = batch->columns();
    for (int i : side_->value_index) {
      ARROW_ASSIGN_OR_RAISE(arrow::Datum taken, cp::Take(side_->table->column(i), idx,
                                                          cp::TakeOptions::Defaults(),
                                                          EngineExecContext()));
      columns.push_back(taken.make_array());
    }
    return arrow::RecordBatch::Make(std::move(schema), batch->num_rows(), std::move(columns));
  }

 private:
  std::shared_ptr<SideTable> side_;
};

}  // namespace

// ---------------------------------------------------------------------- factories

arrow::Result<std::shared_ptr<BatchOperator>> MakeSelect(SelectOptions options) {
  if (options.columns.empty()) {
    return arrow::Status::Invalid("select: option 'columns' is empty; expected at least "
                                  "one column");
  }
  std::set<std::string> seen;
  for (const auto& c : options.columns) {
    if (!seen.insert(c).second) {
      return arrow::Status::Invalid("select: option 'columns' names column '", c,
                                    "' twice");
    }
  }
  return std::make_shared<SelectOp>(std::move(options));
}

arrow::Result<std::shared_ptr<BatchOperator>> MakeRename(RenameOptions options) {
  if (options.columns.empty()) {
    return arrow::Status::Invalid("rename: option 'columns' is empty; expected old: new "
                                  "pairs");
  }
  std::set<std::string> seen;
  for (const auto& [from, to] : options.columns) {
    if (to.empty()) {
      return arrow::Status::Invalid("rename: option 'columns': empty new name for column '",
                                    from, "'");
    }
    if (!seen.insert(from).second) {
      return arrow::Status::Invalid("rename: option 'columns' renames column '", from,
                                    "' twice");
    }
  }
  return std::make_shared<RenameOp>(std::move(options));
}

arrow::Result<std::shared_ptr<arrow::DataType>> ParseTypeName(const std::string& name) {
  const std::pair<const char*, std::shared_ptr<arrow::DataType>> kSimple[] = {
      {"bool", arrow::boolean()},        {"boolean", arrow::boolean()},
      {"int8", arrow::int8()},           {"int16", arrow::int16()},
      {"int32", arrow::int32()},         {"int64", arrow::int64()},
      {"uint8", arrow::uint8()},         {"uint16", arrow::uint16()},
      {"uint32", arrow::uint32()},       {"uint64", arrow::uint64()},
      {"float16", arrow::float16()},     {"float32", arrow::float32()},
      {"float", arrow::float32()},       {"float64", arrow::float64()},
      {"double", arrow::float64()},      {"string", arrow::utf8()},
      {"utf8", arrow::utf8()},           {"large_string", arrow::large_utf8()},
      {"binary", arrow::binary()},       {"large_binary", arrow::large_binary()},
      {"date32", arrow::date32()},       {"date64", arrow::date64()},
  };
  for (const auto& [n, type] : kSimple) {
    if (name == n) return type;
  }
  const std::string prefix = "timestamp[";
  if (name.rfind(prefix, 0) == 0 && name.back() == ']') {
    std::string inner = name.substr(prefix.size(), name.size() - prefix.size() - 1);
    std::string unit_text = inner, tz;
    size_t comma = inner.find(',');
    if (comma != std::string::npos) {
      unit_text = inner.substr(0, comma);
      tz = inner.substr(comma + 1);
      while (!tz.empty() && tz.front() == ' ') tz.erase(tz.begin());
      while (!tz.empty() && tz.back() == ' ') tz.pop_back();
    }
    arrow::TimeUnit::type unit;
    if (unit_text == "s") {
      unit = arrow::TimeUnit::SECOND;
    } else if (unit_text == "ms") {
      unit = arrow::TimeUnit::MILLI;
    } else if (unit_text == "us") {
      unit = arrow::TimeUnit::MICRO;
    } else if (unit_text == "ns") {
      unit = arrow::TimeUnit::NANO;
    } else {
      return arrow::Status::Invalid("type '", name, "': unit '", unit_text,
                                    "' is not one of s, ms, us, ns");
    }
    return arrow::timestamp(unit, tz);
  }
  return arrow::Status::Invalid(
      "'", name,
      "' is not a type name; expected one of bool, int8, int16, int32, int64, uint8, "
      "uint16, uint32, uint64, float16, float32, float64, string, large_string, binary, "
      "large_binary, date32, date64, timestamp[s|ms|us|ns] or timestamp[us, UTC]");
}

arrow::Result<std::shared_ptr<BatchOperator>> MakeCast(CastOptions options) {
  ARROW_RETURN_NOT_OK(EnsureComputeInitialized());
  if (options.columns.empty()) {
    return arrow::Status::Invalid("cast: option 'columns' is empty; expected column: type "
                                  "pairs");
  }
  std::vector<std::shared_ptr<arrow::DataType>> types;
  std::set<std::string> seen;
  for (const auto& [col, type_name] : options.columns) {
    if (!seen.insert(col).second) {
      return arrow::Status::Invalid("cast: option 'columns' names column '", col, "' twice");
    }
    auto t = ParseTypeName(type_name);
    if (!t.ok()) {
      return arrow::Status::Invalid("cast: option 'columns', column '", col, "': ",
                                    t.status().message());
    }
    types.push_back(*t);
  }
  return std::make_shared<CastOp>(std::move(options), std::move(types));
}

arrow::Result<std::shared_ptr<BatchOperator>> MakeFilter(FilterOptions options) {
  ARROW_RETURN_NOT_OK(EnsureComputeInitialized());
  auto expr = ParseFilterExpression(options.expr);
  if (!expr.ok()) {
    return arrow::Status::Invalid("filter: option 'expr': ", expr.status().message());
  }
  return std::make_shared<FilterOp>(std::move(options), *std::move(expr));
}

arrow::Result<PipelineStep> MakeRegexExtract(RegexExtractOptions options) {
  ARROW_RETURN_NOT_OK(EnsureComputeInitialized());
  for (const auto& [name, value] : {std::pair<const char*, const std::string*>{
                                        "column", &options.column},
                                    {"pattern", &options.pattern},
                                    {"output", &options.output}}) {
    if (value->empty()) {
      return arrow::Status::Invalid("regex_extract: option '", name, "' is empty");
    }
  }
  size_t unnamed = std::string::npos;
  int groups = CountCaptureGroups(options.pattern, &unnamed);
  if (groups != 1) {
    return arrow::Status::Invalid("regex_extract: option 'pattern': '", options.pattern,
                                  "' has ", groups,
                                  " capture groups; expected exactly one, around the part "
                                  "to extract (use (?:...) for other groups)");
  }
  // Arrow's extract_regex needs a named group.
  std::string arrow_pattern = options.pattern;
  if (unnamed != std::string::npos) arrow_pattern.insert(unnamed + 1, "?P<value>");
  auto ex = std::make_shared<RegexExtractor>(options, arrow_pattern);
  // Compile it now, so a bad pattern fails before the run.
  arrow::StringBuilder empty;
  ARROW_ASSIGN_OR_RAISE(auto empty_array, empty.Finish());
  cp::ExtractRegexOptions check(arrow_pattern);
  auto compiled = cp::CallFunction("extract_regex", {empty_array}, &check);
  if (!compiled.ok()) {
    return arrow::Status::Invalid("regex_extract: option 'pattern': '", options.pattern,
                                  "' is not a valid RE2 pattern: ",
                                  compiled.status().message());
  }
  PipelineStep step;
  if (options.on_mismatch == OnMismatch::kNull) {
    step.kind = PipelineStep::Kind::kScalar;
    step.scalar = std::make_shared<RegexExtractScalar>(ex);
  } else {
    step.kind = PipelineStep::Kind::kStateful;
    step.stateful = [ex]() -> arrow::Result<std::unique_ptr<StatefulOperator>> {
      return std::make_unique<RegexExtractStateful>(ex);
    };
  }
  return step;
}

uint64_t SplitHash(const void* data, size_t size, uint64_t seed) {
  constexpr uint64_t kOffset = 14695981039346656037ULL;
  constexpr uint64_t kPrime = 1099511628211ULL;
  uint64_t h = kOffset;
  for (int i = 0; i < 8; ++i) {
    h ^= (seed >> (8 * i)) & 0xff;
    h *= kPrime;
  }
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < size; ++i) {
    h ^= p[i];
    h *= kPrime;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

arrow::Result<std::shared_ptr<ScalarOperator>> MakeSplit(SplitOptions options) {
  if (options.key.empty()) return arrow::Status::Invalid("split: option 'key' is empty");
  if (options.output.empty()) return arrow::Status::Invalid("split: option 'output' is empty");
  if (options.fractions.empty()) {
    return arrow::Status::Invalid("split: option 'fractions' is empty; expected e.g. "
                                  "train: 0.8, validation: 0.1, test: 0.1");
  }
  double sum = 0;
  std::set<std::string> seen;
  for (const auto& [name, f] : options.fractions) {
    if (name.empty()) return arrow::Status::Invalid("split: option 'fractions': empty name");
    if (!seen.insert(name).second) {
      return arrow::Status::Invalid("split: option 'fractions' names split '", name,
                                    "' twice");
    }
    if (!(f >= 0 && f <= 1)) {
      return arrow::Status::Invalid("split: option 'fractions': '", name, "' is ", Num(f),
                                    "; expected a fraction in [0, 1]");
    }
    sum += f;
  }
  if (std::fabs(sum - 1.0) > 1e-9) {
    return arrow::Status::Invalid("split: option 'fractions' sums to ", Num(sum),
                                  "; expected 1 (within 1e-9)");
  }
  return std::make_shared<SplitOp>(std::move(options));
}

arrow::Result<StatefulOperatorFactory> MakeBroadcastJoin(BroadcastJoinOptions options) {
  ARROW_RETURN_NOT_OK(EnsureComputeInitialized());
  if (options.side == nullptr) {
    return arrow::Status::Invalid("join: option 'source': no side table given");
  }
  if (options.on.empty()) {
    return arrow::Status::Invalid("join: option 'on' is empty; expected the key column(s)");
  }
  if (options.max_bytes <= 0) {
    return arrow::Status::Invalid("join: option 'max_bytes': expected a positive size");
  }
  auto side = std::make_shared<SideTable>();
  side->schema = options.side->schema();
  const std::string where = "side table '" + options.side_name + "'";
  std::set<int> keys;
  for (const auto& k : options.on) {
    ARROW_ASSIGN_OR_RAISE(int i, FindColumn("join", "on", k, *side->schema, where));
    if (!keys.insert(i).second) {
      return arrow::Status::Invalid("join: option 'on' names column '", k, "' twice");
    }
    if (!IsHashableKeyType(*side->schema->field(i)->type())) {
      return arrow::Status::TypeError(
          "join: option 'on': key column '", k, "' of ", where, " is ",
          side->schema->field(i)->type()->ToString(),
          "; expected an integer, bool, string, binary, date or timestamp column");
    }
    side->key_index.push_back(i);
  }
  for (int i = 0; i < side->schema->num_fields(); ++i) {
    if (keys.count(i) == 0) side->value_index.push_back(i);
  }
  side->options = std::move(options);
  return StatefulOperatorFactory(
      [side]() -> arrow::Result<std::unique_ptr<StatefulOperator>> {
        return std::make_unique<BroadcastJoinOp>(side);
      });
}

Pipeline& AddStep(Pipeline& pipeline, PipelineStep step) {
  switch (step.kind) {
    case PipelineStep::Kind::kScalar:
      return pipeline.Map(std::move(step.scalar));
    case PipelineStep::Kind::kBatch:
      return pipeline.Map(std::move(step.batch));
    case PipelineStep::Kind::kStateful:
      return pipeline.MapStateful(std::move(step.stateful));
    case PipelineStep::Kind::kGrouped:
      return pipeline.GroupBy(std::move(step.group_keys), std::move(step.group_sort_by))
          .Apply(std::move(step.grouped));
  }
  return pipeline;
}

}  // namespace dlprep::exec
