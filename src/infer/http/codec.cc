#include "infer/http/codec.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

#include <arrow/api.h>
#include <simdjson.h>

#include "infer/http/json_writer.h"

namespace dlprep::http {

namespace {

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

// The number of values of `shape` (the product of its dimensions); false when it does not
// fit in int64 (a shape such as [8, 2^61 + 1] must not wrap around to 8).
bool CheckedProduct(const std::vector<int64_t>& shape, int64_t* product) {
  int64_t p = 1;
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(p, d, &p)) return false;
  }
  *product = p;
  return true;
}

// Parses "[a,b,...]" of positive integers whose product fits in int64; false on
// anything else.
bool ParseShape(std::string_view text, std::vector<int64_t>* shape) {
  shape->clear();
  if (text.size() < 2 || text.front() != '[' || text.back() != ']') return false;
  text = text.substr(1, text.size() - 2);
  while (!text.empty()) {
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    int64_t v = 0;
    auto r = std::from_chars(text.data(), text.data() + text.size(), v);
    if (r.ec != std::errc() || v <= 0) return false;
    shape->push_back(v);
    text.remove_prefix(r.ptr - text.data());
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    if (!text.empty()) {
      if (text.front() != ',') return false;
      text.remove_prefix(1);
    }
  }
  int64_t product = 0;
  return !shape->empty() && CheckedProduct(*shape, &product);
}

// The product of a shape that ParseShape() accepted (so it does not overflow).
int64_t Product(const std::vector<int64_t>& shape) {
  int64_t p = 1;
  for (int64_t d : shape) p *= d;
  return p;
}

// Number or bool values a request can carry (half floats are not among them).
bool IsNumericOrBool(arrow::Type::type id) {
  return arrow::is_integer(id) || id == arrow::Type::FLOAT || id == arrow::Type::DOUBLE ||
         id == arrow::Type::BOOL;
}

// KServe v2 datatype of an Arrow value type.
const char* V2Datatype(arrow::Type::type id) {
  switch (id) {
    case arrow::Type::FLOAT:
      return "FP32";
    case arrow::Type::DOUBLE:
      return "FP64";
    case arrow::Type::INT8:
      return "INT8";
    case arrow::Type::INT16:
      return "INT16";
    case arrow::Type::INT32:
      return "INT32";
    case arrow::Type::INT64:
      return "INT64";
    case arrow::Type::UINT8:
      return "UINT8";
    case arrow::Type::UINT16:
      return "UINT16";
    case arrow::Type::UINT32:
      return "UINT32";
    case arrow::Type::UINT64:
      return "UINT64";
    case arrow::Type::BOOL:
      return "BOOL";
    default:
      return "BYTES";
  }
}

}  // namespace

arrow::Result<Protocol> ParseProtocol(std::string_view text) {
  if (text == "kserve-v2") return Protocol::kKServeV2;
  if (text == "tfserving") return Protocol::kTfServing;
  if (text == "records") return Protocol::kRecords;
  return arrow::Status::Invalid("option --protocol: '", text,
                                "' is not a protocol; expected kserve-v2, tfserving or "
                                "records");
}

const char* ProtocolName(Protocol protocol) {
  switch (protocol) {
    case Protocol::kKServeV2:
      return "kserve-v2";
    case Protocol::kTfServing:
      return "tfserving";
    case Protocol::kRecords:
      return "records";
  }
  return "?";
}

std::shared_ptr<arrow::Field> OutputSpec::field() const {
  std::shared_ptr<arrow::DataType> t;
  switch (type) {
    case Type::kFloat32:
      t = arrow::float32();
      break;
    case Type::kFloat64:
      t = arrow::float64();
      break;
    case Type::kInt64:
      t = arrow::int64();
      break;
    case Type::kString:
      t = arrow::utf8();
      break;
  }
  if (!is_list) return arrow::field(name, t);
  auto f = arrow::field(name, arrow::list(t));
  if (!shape.empty()) {
    f = f->WithMetadata(arrow::key_value_metadata({"dlprep.shape"}, {ShapeText(shape)}));
  }
  return f;
}

std::string OutputSpec::ToString() const {
  static const char* kNames[] = {"float32", "float64", "int64", "string"};
  std::string s = name + ":" + kNames[static_cast<int>(type)];
  if (is_list) s += shape.empty() ? "[]" : ShapeText(shape);
  return s;
}

arrow::Result<OutputSpec> ParseOutputSpec(std::string_view text) {
  auto bad = [&]() {
    return arrow::Status::Invalid(
        "option --outputs: '", text,
        "' is not an output; expected NAME or NAME:TYPE with TYPE float32, float64, "
        "int64 or string, optionally followed by [] or a shape such as [4,2]");
  };
  OutputSpec spec;
  const size_t colon = text.find(':');
  spec.name = std::string(text.substr(0, colon));
  if (spec.name.empty()) return bad();
  if (colon == std::string_view::npos) return spec;
  std::string_view type = text.substr(colon + 1);
  const size_t bracket = type.find('[');
  if (bracket != std::string_view::npos) {
    std::string_view dims = type.substr(bracket);
    type = type.substr(0, bracket);
    spec.is_list = true;
    if (dims != "[]" && !ParseShape(dims, &spec.shape)) return bad();
  }
  if (type == "float32") {
    spec.type = OutputSpec::Type::kFloat32;
  } else if (type == "float64") {
    spec.type = OutputSpec::Type::kFloat64;
  } else if (type == "int64") {
    spec.type = OutputSpec::Type::kInt64;
  } else if (type == "string") {
    spec.type = OutputSpec::Type::kString;
  } else {
    return bad();
  }
  return spec;
}

// ---------------------------------------------------------------------------------
// Encoding

struct RequestEncoder::Column {
  std::string name;
  arrow::Type::type outer = arrow::Type::NA;  // the column's type id
  arrow::Type::type value = arrow::Type::NA;  // scalar type, or the list's value type
  bool is_list = false;
  std::vector<int64_t> shape;  // per-row shape from dlprep.shape; empty: none
  // Per batch (Prepare):
  std::shared_ptr<arrow::Array> array;   // the column
  std::shared_ptr<arrow::Array> values;  // the column (scalars) or its list values
  int64_t common_length = -1;            // kserve-v2 lists without shape

  // Element range of row r in `values`.
  void Range(int64_t r, int64_t* begin, int64_t* end) const {
    switch (outer) {
      case arrow::Type::LIST: {
        const auto& l = static_cast<const arrow::ListArray&>(*array);
        *begin = l.value_offset(r);
        *end = l.value_offset(r + 1);
        return;
      }
      case arrow::Type::LARGE_LIST: {
        const auto& l = static_cast<const arrow::LargeListArray&>(*array);
        *begin = l.value_offset(r);
        *end = l.value_offset(r + 1);
        return;
      }
      case arrow::Type::FIXED_SIZE_LIST: {
        const auto& l = static_cast<const arrow::FixedSizeListArray&>(*array);
        *begin = l.value_offset(r);
        *end = *begin + l.value_length();
        return;
      }
      default:
        *begin = r;
        *end = r + 1;
    }
  }

  // Whether element i of `values` is NaN or infinite.
  bool NonFinite(int64_t i) const {
    if (value == arrow::Type::FLOAT) {
      return !std::isfinite(static_cast<const arrow::FloatArray&>(*values).Value(i));
    }
    if (value == arrow::Type::DOUBLE) {
      return !std::isfinite(static_cast<const arrow::DoubleArray&>(*values).Value(i));
    }
    return false;
  }

  // Writes element i of `values` (valid, finite: Prepare checked it).
  void Write(int64_t i, JsonWriter* w) const {
    const arrow::Array& a = *values;
    if (a.IsNull(i)) {
      w->Null();
      return;
    }
    switch (value) {
      case arrow::Type::FLOAT:
        w->Float(static_cast<const arrow::FloatArray&>(a).Value(i));
        return;
      case arrow::Type::DOUBLE:
        w->Double(static_cast<const arrow::DoubleArray&>(a).Value(i));
        return;
      case arrow::Type::INT8:
        w->Int(static_cast<const arrow::Int8Array&>(a).Value(i));
        return;
      case arrow::Type::INT16:
        w->Int(static_cast<const arrow::Int16Array&>(a).Value(i));
        return;
      case arrow::Type::INT32:
        w->Int(static_cast<const arrow::Int32Array&>(a).Value(i));
        return;
      case arrow::Type::INT64:
        w->Int(static_cast<const arrow::Int64Array&>(a).Value(i));
        return;
      case arrow::Type::UINT8:
        w->UInt(static_cast<const arrow::UInt8Array&>(a).Value(i));
        return;
      case arrow::Type::UINT16:
        w->UInt(static_cast<const arrow::UInt16Array&>(a).Value(i));
        return;
      case arrow::Type::UINT32:
        w->UInt(static_cast<const arrow::UInt32Array&>(a).Value(i));
        return;
      case arrow::Type::UINT64:
        w->UInt(static_cast<const arrow::UInt64Array&>(a).Value(i));
        return;
      case arrow::Type::BOOL:
        w->Bool(static_cast<const arrow::BooleanArray&>(a).Value(i));
        return;
      case arrow::Type::STRING:
        w->String(static_cast<const arrow::StringArray&>(a).GetView(i));
        return;
      case arrow::Type::LARGE_STRING:
        w->String(static_cast<const arrow::LargeStringArray&>(a).GetView(i));
        return;
      default:
        w->Null();  // unreachable: Make() refuses other types
    }
  }

  // Writes elements [begin, end) nested by `dims` (row-major), or flat when empty.
  void WriteNested(int64_t begin, const int64_t* dims, size_t ndims,
                   JsonWriter* w) const {
    w->BeginArray();
    if (ndims == 1) {
      for (int64_t k = 0; k < dims[0]; ++k) Write(begin + k, w);
    } else {
      int64_t inner = 1;
      for (size_t d = 1; d < ndims; ++d) inner *= dims[d];
      for (int64_t k = 0; k < dims[0]; ++k)
        WriteNested(begin + k * inner, dims + 1, ndims - 1, w);
    }
    w->EndArray();
  }

  // One row's value for tfserving (nested by shape) or records (flat, as pandas).
  void WriteRow(int64_t r, bool nested, JsonWriter* w) const {
    if (array->IsNull(r)) {
      w->Null();
      return;
    }
    if (!is_list) {
      Write(r, w);
      return;
    }
    int64_t b, e;
    Range(r, &b, &e);
    if (nested && shape.size() > 1) {
      WriteNested(b, shape.data(), shape.size(), w);
      return;
    }
    w->BeginArray();
    for (int64_t i = b; i < e; ++i) Write(i, w);
    w->EndArray();
  }
};

RequestEncoder::RequestEncoder(Protocol protocol, std::vector<Column> columns)
    : protocol_(protocol), columns_(std::move(columns)) {}
RequestEncoder::~RequestEncoder() = default;

arrow::Result<std::unique_ptr<RequestEncoder>> RequestEncoder::Make(
    Protocol protocol, const std::vector<std::string>& names,
    const arrow::Schema& schema) {
  if (names.empty()) {
    return arrow::Status::Invalid(
        "option --model-input: no input column given; name the "
        "column(s) to send to the model");
  }
  std::vector<Column> columns;
  for (const auto& name : names) {
    auto field = schema.GetFieldByName(name);
    if (field == nullptr) {
      return arrow::Status::TypeError("option --model-input: the input has no column '", name,
                                      "'; it has ", schema.ToString());
    }
    Column c;
    c.name = name;
    c.outer = field->type()->id();
    c.value = c.outer;
    if (c.outer == arrow::Type::LIST || c.outer == arrow::Type::LARGE_LIST ||
        c.outer == arrow::Type::FIXED_SIZE_LIST) {
      c.is_list = true;
      c.value = field->type()->field(0)->type()->id();
      if (!IsNumericOrBool(c.value)) {
        return arrow::Status::TypeError(
            "column '", name, "' has type ", field->type()->ToString(),
            "; a list column must hold numbers or bools (a tensor per row)");
      }
      if (field->metadata() != nullptr) {
        auto shape = field->metadata()->Get("dlprep.shape");
        if (shape.ok() && !ParseShape(*shape, &c.shape)) {
          return arrow::Status::TypeError("column '", name, "': dlprep.shape metadata '",
                                          *shape, "' is not a shape such as [101,64]");
        }
      }
    } else if (!IsNumericOrBool(c.outer) && c.outer != arrow::Type::STRING &&
               c.outer != arrow::Type::LARGE_STRING) {
      return arrow::Status::TypeError(
          "column '", name, "' has type ", field->type()->ToString(),
          "; expected a number, bool, string, or a list of numbers (a tensor per row)");
    }
    columns.push_back(std::move(c));
  }
  return std::unique_ptr<RequestEncoder>(
      new RequestEncoder(protocol, std::move(columns)));
}

arrow::Status RequestEncoder::Prepare(const arrow::RecordBatch& batch,
                                      std::vector<int64_t>* ok_rows, RowErrors* errors) {
  const bool v2 = protocol_ == Protocol::kKServeV2;
  for (auto& c : columns_) {
    c.array = batch.GetColumnByName(c.name);
    if (c.array == nullptr) {
      return arrow::Status::TypeError("the batch has no column '", c.name, "'");
    }
    c.values = c.array;
    if (c.outer == arrow::Type::LIST) {
      c.values = static_cast<const arrow::ListArray&>(*c.array).values();
    } else if (c.outer == arrow::Type::LARGE_LIST) {
      c.values = static_cast<const arrow::LargeListArray&>(*c.array).values();
    } else if (c.outer == arrow::Type::FIXED_SIZE_LIST) {
      c.values = static_cast<const arrow::FixedSizeListArray&>(*c.array).values();
    }
    c.common_length = c.shape.empty() ? -1 : Product(c.shape);
  }
  ok_rows->clear();
  std::string why;
  for (int64_t r = 0; r < batch.num_rows(); ++r) {
    why.clear();
    for (auto& c : columns_) {
      if (c.array->IsNull(r)) {
        if (v2)
          why = "column '" + c.name + "' is null (a kserve-v2 tensor cannot hold null)";
        if (!why.empty()) break;
        continue;
      }
      int64_t b, e;
      c.Range(r, &b, &e);
      if (c.is_list) {
        const int64_t len = e - b;
        if (!c.shape.empty() && len != c.common_length) {
          why = "column '" + c.name + "' has " + std::to_string(len) +
                " values; its dlprep.shape " + ShapeText(c.shape) + " needs " +
                std::to_string(c.common_length);
          break;
        }
        if (v2 && c.shape.empty() && c.common_length >= 0 && len != c.common_length) {
          why = "column '" + c.name + "' has " + std::to_string(len) +
                " values where the batch's first row has " +
                std::to_string(c.common_length) +
                " (a kserve-v2 tensor is rectangular; set dlprep.shape to check lengths)";
          break;
        }
        if (c.values->null_count() > 0) {
          for (int64_t i = b; i < e; ++i) {
            if (c.values->IsNull(i)) {
              why = "column '" + c.name + "' has a null at position " +
                    std::to_string(i - b) + " of its list";
              break;
            }
          }
          if (!why.empty()) break;
        }
      }
      for (int64_t i = b; i < e; ++i) {
        if (c.NonFinite(i)) {
          why = "column '" + c.name + "' holds NaN or infinity" +
                (c.is_list ? " at position " + std::to_string(i - b) : std::string()) +
                ", which JSON cannot represent";
          break;
        }
      }
      if (!why.empty()) break;
    }
    if (!why.empty()) {
      errors->Add(r, std::move(why));
      why = std::string();
      continue;
    }
    // The first good row fixes the length of shapeless kserve-v2 tensors.
    if (v2) {
      for (auto& c : columns_) {
        if (c.is_list && c.common_length < 0) {
          int64_t b, e;
          c.Range(r, &b, &e);
          c.common_length = e - b;
        }
      }
    }
    ok_rows->push_back(r);
  }
  return arrow::Status::OK();
}

void RequestEncoder::Encode(const int64_t* rows, int64_t n, std::string* body) const {
  JsonWriter w(body);
  switch (protocol_) {
    case Protocol::kKServeV2: {
      // {"inputs":[{"name":..,"shape":[n,..],"datatype":..,"data":[flat]}, ...]}
      w.BeginObject();
      w.Key("inputs");
      w.BeginArray();
      for (const auto& c : columns_) {
        w.BeginObject();
        w.Key("name");
        w.String(c.name);
        w.Key("shape");
        w.BeginArray();
        w.Int(n);
        if (c.is_list) {
          if (c.shape.empty()) {
            w.Int(c.common_length < 0 ? 0 : c.common_length);
          } else {
            for (int64_t d : c.shape) w.Int(d);
          }
        }
        w.EndArray();
        w.Key("datatype");
        w.String(V2Datatype(c.value));
        w.Key("data");
        w.BeginArray();
        for (int64_t k = 0; k < n; ++k) {
          int64_t b, e;
          c.Range(rows[k], &b, &e);
          for (int64_t i = b; i < e; ++i) c.Write(i, &w);
        }
        w.EndArray();
        w.EndObject();
      }
      w.EndArray();
      w.EndObject();
      return;
    }
    case Protocol::kTfServing: {
      // {"instances":[value, ...]} with one column, [{"col": value, ...}, ...] with more.
      w.BeginObject();
      w.Key("instances");
      w.BeginArray();
      for (int64_t k = 0; k < n; ++k) {
        if (columns_.size() == 1) {
          columns_[0].WriteRow(rows[k], /*nested=*/true, &w);
          continue;
        }
        w.BeginObject();
        for (const auto& c : columns_) {
          w.Key(c.name);
          c.WriteRow(rows[k], /*nested=*/true, &w);
        }
        w.EndObject();
      }
      w.EndArray();
      w.EndObject();
      return;
    }
    case Protocol::kRecords: {
      // [{"col": value, ...}, ...] as pandas DataFrame.to_json(orient='records').
      w.BeginArray();
      for (int64_t k = 0; k < n; ++k) {
        w.BeginObject();
        for (const auto& c : columns_) {
          w.Key(c.name);
          c.WriteRow(rows[k], /*nested=*/false, &w);
        }
        w.EndObject();
      }
      w.EndArray();
      return;
    }
  }
}

// ---------------------------------------------------------------------------------
// Decoding

namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

const char* TypeName(element_type t) {
  switch (t) {
    case element_type::ARRAY:
      return "an array";
    case element_type::OBJECT:
      return "an object";
    case element_type::INT64:
    case element_type::UINT64:
    case element_type::DOUBLE:
      return "a number";
    case element_type::STRING:
      return "a string";
    case element_type::BOOL:
      return "a bool";
    case element_type::NULL_VALUE:
      return "null";
  }
  return "?";
}

// Appends the leaves of `e` (arrays flattened, row-major) to `out`.
void Flatten(element e, std::vector<element>* out) {
  if (e.type() == element_type::ARRAY) {
    simdjson::dom::array items = e.get_array().value_unsafe();
    for (element x : items) Flatten(x, out);
  } else {
    out->push_back(e);
  }
}

// What `spec` expects for one value ("a number", "a string").
const char* ExpectedValue(const OutputSpec& spec) {
  return spec.type == OutputSpec::Type::kString ? "a string" : "a number";
}

// Appends one leaf value of row `row` to `col` as `spec` says. Anything that is not a
// value of the output's type is an error, never a score: null, a bool, a number outside
// float32's range for a float32 output (it would become infinity), a fraction or a number
// beyond int64 for an int64 output.
arrow::Status AppendLeaf(const OutputSpec& spec, element e, int64_t row,
                         DecodedColumn* col) {
  const element_type t = e.type();
  auto wrong_type = [&]() {
    return arrow::Status::Invalid("output '", spec.name, "', row ", row, ": expected ",
                                  ExpectedValue(spec), ", got ", TypeName(t));
  };
  if (spec.type == OutputSpec::Type::kString) {
    if (t != element_type::STRING) return wrong_type();
    col->strings.emplace_back(e.get_string().value_unsafe());
    return arrow::Status::OK();
  }
  double d = 0;
  int64_t i = 0;
  switch (t) {
    case element_type::INT64:
      i = e.get_int64().value_unsafe();
      d = static_cast<double>(i);
      break;
    case element_type::UINT64: {
      uint64_t u = e.get_uint64().value_unsafe();
      if (spec.type == OutputSpec::Type::kInt64) {
        return arrow::Status::Invalid("output '", spec.name, "', row ", row, ": ", u,
                                      " does not fit in int64");
      }
      d = static_cast<double>(u);
      break;
    }
    case element_type::DOUBLE:
      d = e.get_double().value_unsafe();
      if (spec.type == OutputSpec::Type::kInt64) {
        if (d != std::floor(d) || std::fabs(d) > 9.2e18) {
          return arrow::Status::Invalid("output '", spec.name, "', row ", row,
                                        ": expected an integer, got ", d);
        }
        i = static_cast<int64_t>(d);
      }
      break;
    default:  // bool, null, array, object
      return wrong_type();
  }
  if (spec.type == OutputSpec::Type::kFloat32 && std::isinf(static_cast<float>(d))) {
    char text[96];
    std::snprintf(text, sizeof(text), "%.9g is out of the range of float32 (+-%.9g)", d,
                  static_cast<double>(std::numeric_limits<float>::max()));
    return arrow::Status::Invalid("output '", spec.name, "', row ", row, ": ", text,
                                  "; declare the output as ", spec.name,
                                  ":float64 for such scores");
  }
  if (spec.type == OutputSpec::Type::kInt64) {
    col->ints.push_back(i);
  } else {
    col->doubles.push_back(d);
  }
  return arrow::Status::OK();
}

int64_t ValueCount(const OutputSpec& spec, const DecodedColumn& col) {
  switch (spec.type) {
    case OutputSpec::Type::kString:
      return static_cast<int64_t>(col.strings.size());
    case OutputSpec::Type::kInt64:
      return static_cast<int64_t>(col.ints.size());
    default:
      return static_cast<int64_t>(col.doubles.size());
  }
}

// Appends one row made of `leaves` (already flattened).
arrow::Status AppendRow(const OutputSpec& spec, const element* leaves, int64_t count,
                        int64_t row, DecodedColumn* col) {
  if (!spec.is_list && count != 1) {
    return arrow::Status::Invalid(
        "output '", spec.name, "': row ", row, " has ", count,
        " values; a scalar output needs 1 (declare it as a list, "
        "e.g. ",
        spec.name, ":float32[])");
  }
  if (spec.is_list && !spec.shape.empty() && count != Product(spec.shape)) {
    return arrow::Status::Invalid("output '", spec.name, "': row ", row, " has ", count,
                                  " values; the declared shape ", ShapeText(spec.shape),
                                  " needs ", Product(spec.shape));
  }
  for (int64_t k = 0; k < count; ++k)
    ARROW_RETURN_NOT_OK(AppendLeaf(spec, leaves[k], row, col));
  col->rows += 1;
  if (spec.is_list) col->offsets.push_back(ValueCount(spec, *col));
  return arrow::Status::OK();
}

// Invalid when object `obj` has a key twice: JSON parsers differ in which value they
// take, so neither is trusted. `what` names the object ("the response", "row 3").
arrow::Status CheckUniqueKeys(simdjson::dom::object obj, const std::string& what,
                              std::vector<std::string_view>* keys) {
  if (obj.size() < 2) return arrow::Status::OK();
  keys->clear();
  for (auto field : obj) keys->push_back(field.key);
  std::sort(keys->begin(), keys->end());
  auto dup = std::adjacent_find(keys->begin(), keys->end());
  if (dup == keys->end()) return arrow::Status::OK();
  return arrow::Status::Invalid(what, " has the key \"", *dup,
                                "\" twice; expected each key once");
}

}  // namespace

struct ResponseDecoder::Impl {
  Protocol protocol;
  std::vector<OutputSpec> outputs;
  simdjson::dom::parser parser;
  std::vector<element> leaves;         // reused
  std::vector<std::string_view> keys;  // reused by CheckUniqueKeys

  // One row's value (tfserving / records): a value, or an object with the outputs.
  arrow::Status DecodeRow(element e, int64_t row, std::vector<DecodedColumn>* out) {
    const bool is_object = e.type() == element_type::OBJECT;
    if (!is_object && outputs.size() > 1) {
      return arrow::Status::Invalid("row ", row, " is ", TypeName(e.type()),
                                    "; with several outputs each row must be an object "
                                    "with them by name");
    }
    if (is_object) {
      ARROW_RETURN_NOT_OK(CheckUniqueKeys(e.get_object().value_unsafe(),
                                          "row " + std::to_string(row), &keys));
    }
    for (size_t o = 0; o < outputs.size(); ++o) {
      const OutputSpec& spec = outputs[o];
      element v = e;
      if (is_object) {
        auto field = e.get_object().value_unsafe()[spec.name];
        if (field.error()) {
          return arrow::Status::Invalid("row ", row, " has no output '", spec.name, "'");
        }
        v = field.value_unsafe();
      }
      if (v.type() == element_type::NULL_VALUE) {
        // A null is no score: the model did not answer for this row.
        const bool strings = spec.type == OutputSpec::Type::kString;
        return arrow::Status::Invalid(
            "output '", spec.name, "', row ", row, ": expected ",
            spec.is_list ? (strings ? "a list of strings" : "a list of numbers")
                         : ExpectedValue(spec),
            ", got null");
      }
      leaves.clear();
      Flatten(v, &leaves);
      ARROW_RETURN_NOT_OK(AppendRow(
          spec, leaves.data(), static_cast<int64_t>(leaves.size()), row, &(*out)[o]));
    }
    return arrow::Status::OK();
  }

  arrow::Status DecodeRows(element rows_array, const char* what, int64_t n,
                           std::vector<DecodedColumn>* out) {
    if (rows_array.type() != element_type::ARRAY) {
      return arrow::Status::Invalid(what, " is ", TypeName(rows_array.type()),
                                    ", expected an array with one entry per row");
    }
    simdjson::dom::array array = rows_array.get_array().value_unsafe();
    const int64_t got = static_cast<int64_t>(array.size());
    if (got != n) {
      return arrow::Status::Invalid("wrong number of rows: ", what, " has ", got,
                                    " entries for a request of ", n, " rows");
    }
    int64_t row = 0;
    for (element e : array) ARROW_RETURN_NOT_OK(DecodeRow(e, row++, out));
    return arrow::Status::OK();
  }

  arrow::Status DecodeV2(element doc, int64_t n, std::vector<DecodedColumn>* out) {
    ARROW_RETURN_NOT_OK(
        CheckUniqueKeys(doc.get_object().value_unsafe(), "the response", &keys));
    auto outs = doc["outputs"];
    if (outs.error() || outs.value_unsafe().type() != element_type::ARRAY) {
      return arrow::Status::Invalid("the response has no \"outputs\" array");
    }
    simdjson::dom::array arr = outs.value_unsafe().get_array().value_unsafe();
    size_t index = 0;
    for (element t : arr) {
      if (t.is_object()) {
        ARROW_RETURN_NOT_OK(CheckUniqueKeys(
            t.get_object().value_unsafe(),
            "output entry " + std::to_string(index) + " of \"outputs\"", &keys));
      }
      ++index;
    }
    for (size_t o = 0; o < outputs.size(); ++o) {
      const OutputSpec& spec = outputs[o];
      element found;
      int named = 0;
      for (element t : arr) {
        auto name = t["name"];
        if (!name.error() && name.value_unsafe().is_string() &&
            name.value_unsafe().get_string().value_unsafe() == spec.name) {
          if (named++ == 0) found = t;
        }
      }
      if (named > 1) {
        return arrow::Status::Invalid("the response has ", named, " outputs named '",
                                      spec.name, "'; expected one");
      }
      bool have = named == 1;
      // A single declared output takes the only output whatever its name.
      if (!have && outputs.size() == 1 && arr.size() == 1) {
        found = arr.at(0).value_unsafe();
        have = true;
      }
      if (!have)
        return arrow::Status::Invalid("the response has no output '", spec.name, "'");
      auto shape = found["shape"];
      if (shape.error() || !shape.value_unsafe().is_array()) {
        return arrow::Status::Invalid("output '", spec.name, "' has no \"shape\" array");
      }
      std::vector<int64_t> dims;
      simdjson::dom::array shape_items = shape.value_unsafe().get_array().value_unsafe();
      for (element d : shape_items) {
        if (!d.is_int64() || d.get_int64().value_unsafe() < 0) {
          return arrow::Status::Invalid("output '", spec.name,
                                        "': shape must hold non-negative integers");
        }
        dims.push_back(d.get_int64().value_unsafe());
      }
      if (dims.empty() || dims[0] != n) {
        return arrow::Status::Invalid("wrong number of rows: output '", spec.name,
                                      "' has shape ", ShapeText(dims),
                                      " for a request of ", n, " rows");
      }
      auto data = found["data"];
      if (data.error()) {
        return arrow::Status::Invalid("output '", spec.name, "' has no \"data\"");
      }
      int64_t total = 0;
      if (!CheckedProduct(dims, &total)) {
        return arrow::Status::Invalid("output '", spec.name, "': shape ", ShapeText(dims),
                                      " holds more values than int64 can count; expected "
                                      "the shape of its data");
      }
      leaves.clear();
      Flatten(data.value_unsafe(), &leaves);
      if (static_cast<int64_t>(leaves.size()) != total) {
        return arrow::Status::Invalid("output '", spec.name, "' has ", leaves.size(),
                                      " values; its shape ", ShapeText(dims), " needs ",
                                      total);
      }
      const int64_t per_row = n == 0 ? 0 : total / n;
      for (int64_t r = 0; r < n; ++r) {
        ARROW_RETURN_NOT_OK(
            AppendRow(spec, leaves.data() + r * per_row, per_row, r, &(*out)[o]));
      }
    }
    return arrow::Status::OK();
  }
};

ResponseDecoder::ResponseDecoder(Protocol protocol, std::vector<OutputSpec> outputs)
    : impl_(std::make_unique<Impl>()) {
  impl_->protocol = protocol;
  impl_->outputs = std::move(outputs);
}
ResponseDecoder::~ResponseDecoder() = default;

arrow::Status ResponseDecoder::Decode(std::string_view body, int64_t n,
                                      std::vector<DecodedColumn>* out) {
  out->assign(impl_->outputs.size(), DecodedColumn{});
  for (size_t o = 0; o < out->size(); ++o) {
    if (impl_->outputs[o].is_list) (*out)[o].offsets.push_back(0);
  }
  element doc;
  auto error =
      impl_->parser.parse(body.data(), body.size(), /*realloc_if_needed=*/true).get(doc);
  if (error) {
    out->clear();
    return arrow::Status::Invalid("the response is not valid JSON (",
                                  simdjson::error_message(error), ")");
  }
  arrow::Status st;
  switch (impl_->protocol) {
    case Protocol::kKServeV2:
      if (doc.type() != element_type::OBJECT) {
        st = arrow::Status::Invalid("the response is ", TypeName(doc.type()),
                                    ", expected an object with \"outputs\"");
      } else {
        st = impl_->DecodeV2(doc, n, out);
      }
      break;
    case Protocol::kTfServing: {
      auto p = doc["predictions"];
      if (doc.type() != element_type::OBJECT || p.error()) {
        st = arrow::Status::Invalid("the response has no \"predictions\"");
      } else {
        st = CheckUniqueKeys(doc.get_object().value_unsafe(), "the response",
                             &impl_->keys);
        if (st.ok()) st = impl_->DecodeRows(p.value_unsafe(), "\"predictions\"", n, out);
      }
      break;
    }
    case Protocol::kRecords:
      st = impl_->DecodeRows(doc, "the response", n, out);
      break;
  }
  if (!st.ok()) out->clear();
  return st;
}

arrow::Result<std::vector<std::shared_ptr<arrow::Array>>> BuildOutputArrays(
    const std::vector<OutputSpec>& outputs,
    const std::vector<const std::vector<DecodedColumn>*>& parts) {
  std::vector<std::shared_ptr<arrow::Array>> arrays;
  for (size_t o = 0; o < outputs.size(); ++o) {
    const OutputSpec& spec = outputs[o];
    std::unique_ptr<arrow::ArrayBuilder> values;
    switch (spec.type) {
      case OutputSpec::Type::kFloat32:
        values = std::make_unique<arrow::FloatBuilder>();
        break;
      case OutputSpec::Type::kFloat64:
        values = std::make_unique<arrow::DoubleBuilder>();
        break;
      case OutputSpec::Type::kInt64:
        values = std::make_unique<arrow::Int64Builder>();
        break;
      case OutputSpec::Type::kString:
        values = std::make_unique<arrow::StringBuilder>();
        break;
    }
    // Appends values [b, e) of `col`.
    auto append_values = [&](arrow::ArrayBuilder* builder, const DecodedColumn& col,
                             int64_t b, int64_t e) -> arrow::Status {
      // Nothing to append; also, the values of an output with no values at all may have
      // no storage, and Arrow's AppendValues must not be given a null pointer.
      if (e == b) return arrow::Status::OK();
      switch (spec.type) {
        case OutputSpec::Type::kFloat32: {
          auto* fb = static_cast<arrow::FloatBuilder*>(builder);
          ARROW_RETURN_NOT_OK(fb->Reserve(e - b));
          for (int64_t k = b; k < e; ++k)
            fb->UnsafeAppend(static_cast<float>(col.doubles[k]));
          return arrow::Status::OK();
        }
        case OutputSpec::Type::kFloat64:
          return static_cast<arrow::DoubleBuilder*>(builder)->AppendValues(
              col.doubles.data() + b, e - b);
        case OutputSpec::Type::kInt64:
          return static_cast<arrow::Int64Builder*>(builder)->AppendValues(
              col.ints.data() + b, e - b);
        case OutputSpec::Type::kString: {
          auto* sb = static_cast<arrow::StringBuilder*>(builder);
          for (int64_t k = b; k < e; ++k) ARROW_RETURN_NOT_OK(sb->Append(col.strings[k]));
          return arrow::Status::OK();
        }
      }
      return arrow::Status::OK();
    };
    if (!spec.is_list) {
      for (const auto* part : parts) {
        const DecodedColumn& col = (*part)[o];
        ARROW_RETURN_NOT_OK(append_values(values.get(), col, 0, col.rows));
      }
      std::shared_ptr<arrow::Array> array;
      ARROW_RETURN_NOT_OK(values->Finish(&array));
      arrays.push_back(array);
      continue;
    }
    auto list_type = spec.field()->type();
    arrow::ListBuilder lb(arrow::default_memory_pool(), std::move(values), list_type);
    for (const auto* part : parts) {
      const DecodedColumn& col = (*part)[o];
      for (int64_t r = 0; r < col.rows; ++r) {
        ARROW_RETURN_NOT_OK(lb.Append());
        ARROW_RETURN_NOT_OK(
            append_values(lb.value_builder(), col, col.offsets[r], col.offsets[r + 1]));
      }
    }
    std::shared_ptr<arrow::Array> array;
    ARROW_RETURN_NOT_OK(lb.Finish(&array));
    arrays.push_back(array);
  }
  return arrays;
}

}  // namespace dlprep::http
