// ExampleEncoder: Arrow rows -> serialized tf.train.Example / SequenceExample bytes,
// written straight from Arrow buffers. For each slice it first computes every
// feature's list size column by column (the varint length prefixes of the enclosing
// messages need them), then writes each row's bytes into one output buffer.
#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <arrow/array.h>
#include <arrow/record_batch.h>
#include <arrow/type.h>

#include "io/crc32c.h"
#include "io/protobuf_wire.h"
#include "io/tfrecord.h"

namespace dlprep::io {
namespace {

using wire::VarintSize;
using wire::WriteVarint;

using Kind = FeatureKind;
enum class Shape { kScalar, kList, kSeq };

// Feature.kind field tags: bytes_list = 1, float_list = 2, int64_list = 3 (LEN).
char FeatureTag(Kind k) {
  switch (k) {
    case Kind::kBytes:
      return 0x0a;
    case Kind::kFloat:
      return 0x12;
    case Kind::kInt64:
      return 0x1a;
  }
  return 0;
}

bool IsListType(arrow::Type::type id) {
  return id == arrow::Type::LIST || id == arrow::Type::LARGE_LIST ||
         id == arrow::Type::FIXED_SIZE_LIST;
}

std::shared_ptr<arrow::DataType> ListValueType(const arrow::DataType& t) {
  return t.field(0)->type();
}

arrow::Result<Kind> ValueKind(const std::string& column, const arrow::DataType& type) {
  if (auto kind = FeatureKindOf(type)) return *kind;
  return arrow::Status::TypeError("column '", column, "' has type ", type.ToString(),
                                  ", which has no TFRecord mapping (expected integers, "
                                  "bool, timestamp, date, float32/float64, string/binary, "
                                  "or lists of those)");
}

/// Start/end of list `i` of a list-like array, whatever its offset width.
struct Offsets {
  const int32_t* o32 = nullptr;
  const int64_t* o64 = nullptr;
  int64_t fixed = 0;
  int64_t base = 0;

  void Bind(const arrow::Array& a) {
    o32 = nullptr;
    o64 = nullptr;
    switch (a.type_id()) {
      case arrow::Type::LIST:
        o32 = static_cast<const arrow::ListArray&>(a).raw_value_offsets();
        break;
      case arrow::Type::LARGE_LIST:
        o64 = static_cast<const arrow::LargeListArray&>(a).raw_value_offsets();
        break;
      default:
        fixed = static_cast<const arrow::FixedSizeListArray&>(a).list_type()->list_size();
        base = a.offset();
        break;
    }
  }
  int64_t begin(int64_t i) const {
    return o32 != nullptr ? o32[i] : o64 != nullptr ? o64[i] : (base + i) * fixed;
  }
  int64_t end(int64_t i) const { return begin(i + 1); }
};

std::shared_ptr<arrow::Array> ListValuesOf(const arrow::Array& a) {
  switch (a.type_id()) {
    case arrow::Type::LIST:
      return static_cast<const arrow::ListArray&>(a).values();
    case arrow::Type::LARGE_LIST:
      return static_cast<const arrow::LargeListArray&>(a).values();
    default:
      return static_cast<const arrow::FixedSizeListArray&>(a).values();
  }
}

/// Values of one leaf array, read as int64 / float / bytes. Types whose storage is not
/// already int64 or float32 are converted for the element range a slice needs.
struct Values {
  const arrow::Array* array = nullptr;  // the leaf array (validity)
  int64_t base = 0;                     // element index of owned[0]
  const int64_t* ints = nullptr;
  std::vector<int64_t> owned_ints;
  bool check_uint64 = false;
  const float* floats = nullptr;
  std::vector<float> owned_floats;
  const uint8_t* data = nullptr;
  const int32_t* o32 = nullptr;
  const int64_t* o64 = nullptr;
  int64_t width = 0;
  const int32_t* dict_index = nullptr;  // dictionary arrays: element -> dictionary index
  std::vector<int32_t> owned_index;

  int64_t Int(int64_t i) const { return ints[i - base]; }
  float Float(int64_t i) const { return floats[i - base]; }
  std::string_view Bytes(int64_t i) const {
    if (dict_index != nullptr) i = dict_index[i - base];
    if (o32 != nullptr) {
      return {reinterpret_cast<const char*>(data) + o32[i],
              static_cast<size_t>(o32[i + 1] - o32[i])};
    }
    if (o64 != nullptr) {
      return {reinterpret_cast<const char*>(data) + o64[i],
              static_cast<size_t>(o64[i + 1] - o64[i])};
    }
    return {reinterpret_cast<const char*>(data) + i * width, static_cast<size_t>(width)};
  }
};

template <typename ArrowType>
void CopyInts(const arrow::Array& a, int64_t lo, int64_t hi, std::vector<int64_t>* out) {
  const auto* p = a.data()->GetValues<typename ArrowType::c_type>(1);
  out->resize(static_cast<size_t>(hi - lo));
  for (int64_t i = lo; i < hi; ++i) (*out)[i - lo] = static_cast<int64_t>(p[i]);
}

void BindBytes(const arrow::Array& a, Values* v) {
  switch (a.type_id()) {
    case arrow::Type::STRING:
    case arrow::Type::BINARY: {
      const auto& b = static_cast<const arrow::BinaryArray&>(a);
      v->o32 = b.raw_value_offsets();
      v->data = b.value_data() != nullptr ? b.value_data()->data() : nullptr;
      break;
    }
    case arrow::Type::LARGE_STRING:
    case arrow::Type::LARGE_BINARY: {
      const auto& b = static_cast<const arrow::LargeBinaryArray&>(a);
      v->o64 = b.raw_value_offsets();
      v->data = b.value_data() != nullptr ? b.value_data()->data() : nullptr;
      break;
    }
    default: {
      const auto& b = static_cast<const arrow::FixedSizeBinaryArray&>(a);
      v->width = b.byte_width();
      v->data = b.raw_values();
      break;
    }
  }
}

/// Points `v` at `a` for elements [lo, hi).
void BindValues(const arrow::Array& a, Kind kind, int64_t lo, int64_t hi, Values* v) {
  *v = Values();
  v->array = &a;
  switch (a.type_id()) {
    case arrow::Type::INT64:
    case arrow::Type::TIMESTAMP:
    case arrow::Type::DATE64:
      v->ints = a.data()->GetValues<int64_t>(1);
      return;
    case arrow::Type::UINT64:
      v->ints = a.data()->GetValues<int64_t>(1);
      v->check_uint64 = true;
      return;
    case arrow::Type::INT8:
      CopyInts<arrow::Int8Type>(a, lo, hi, &v->owned_ints);
      break;
    case arrow::Type::INT16:
      CopyInts<arrow::Int16Type>(a, lo, hi, &v->owned_ints);
      break;
    case arrow::Type::INT32:
    case arrow::Type::DATE32:
      CopyInts<arrow::Int32Type>(a, lo, hi, &v->owned_ints);
      break;
    case arrow::Type::UINT8:
      CopyInts<arrow::UInt8Type>(a, lo, hi, &v->owned_ints);
      break;
    case arrow::Type::UINT16:
      CopyInts<arrow::UInt16Type>(a, lo, hi, &v->owned_ints);
      break;
    case arrow::Type::UINT32:
      CopyInts<arrow::UInt32Type>(a, lo, hi, &v->owned_ints);
      break;
    case arrow::Type::BOOL: {
      const auto& b = static_cast<const arrow::BooleanArray&>(a);
      v->owned_ints.resize(static_cast<size_t>(hi - lo));
      for (int64_t i = lo; i < hi; ++i) v->owned_ints[i - lo] = b.Value(i) ? 1 : 0;
      break;
    }
    case arrow::Type::FLOAT:
      v->floats = a.data()->GetValues<float>(1);
      return;
    case arrow::Type::DOUBLE: {
      const double* p = a.data()->GetValues<double>(1);
      v->owned_floats.resize(static_cast<size_t>(hi - lo));
      for (int64_t i = lo; i < hi; ++i) v->owned_floats[i - lo] = static_cast<float>(p[i]);
      v->floats = v->owned_floats.data();
      v->base = lo;
      return;
    }
    case arrow::Type::DICTIONARY: {
      const auto& d = static_cast<const arrow::DictionaryArray&>(a);
      BindBytes(*d.dictionary(), v);
      v->owned_index.resize(static_cast<size_t>(hi - lo));
      const arrow::Array& idx = *d.indices();
      for (int64_t i = lo; i < hi; ++i) {
        int64_t k = 0;
        if (idx.IsValid(i)) k = d.GetValueIndex(i);
        v->owned_index[i - lo] = static_cast<int32_t>(k);
      }
      v->dict_index = v->owned_index.data();
      v->base = lo;
      return;
    }
    default:
      BindBytes(a, v);
      return;
  }
  // Integer types copied into owned_ints.
  v->ints = v->owned_ints.data();
  v->base = lo;
  (void)kind;
}

struct Column {
  int field_index = 0;
  std::string name;
  Kind kind = Kind::kInt64;
  Shape shape = Shape::kScalar;
  std::string key_field;  // map entry key field, pre-encoded: 0a <len> <name>
  // Per-slice binding.
  const arrow::Array* top = nullptr;
  const arrow::Array* inner = nullptr;  // kSeq: the inner list array
  std::shared_ptr<arrow::Array> inner_holder, leaf_holder;
  Offsets outer_offsets, inner_offsets;
  Values values;
};

class ExampleEncoderImpl final : public ExampleEncoder {
 public:
  arrow::Status Init(std::shared_ptr<arrow::Schema> schema, RecordType record_type) {
    schema_ = std::move(schema);
    record_type_ = record_type;
    for (int i = 0; i < schema_->num_fields(); ++i) {
      const auto& field = schema_->field(i);
      Column col;
      col.field_index = i;
      col.name = field->name();
      if (col.name.empty()) {
        return arrow::Status::TypeError("column ", i, " has an empty name; TFRecord "
                                        "features need names");
      }
      const arrow::DataType* t = field->type().get();
      std::shared_ptr<arrow::DataType> leaf = field->type();
      if (IsListType(t->id())) {
        leaf = ListValueType(*t);
        col.shape = Shape::kList;
        if (IsListType(leaf->id())) {
          if (record_type != RecordType::kSequenceExample) {
            return arrow::Status::TypeError(
                "column '", col.name, "' has type ", t->ToString(),
                " (a list of lists), which tf.train.Example cannot hold; use "
                "--record-type sequence_example to write it as a feature list");
          }
          col.shape = Shape::kSeq;
          leaf = ListValueType(*leaf);
          if (IsListType(leaf->id())) {
            return arrow::Status::TypeError("column '", col.name, "' has type ",
                                            t->ToString(),
                                            ", nested deeper than TFRecord can hold");
          }
        }
      }
      auto kind = ValueKind(col.name, *leaf);
      if (!kind.ok()) {
        return arrow::Status::TypeError("column '", col.name, "' has type ",
                                        t->ToString(),
                                        ", which has no TFRecord mapping (expected "
                                        "integers, bool, timestamp, date, "
                                        "float32/float64, string/binary, or lists of "
                                        "those)");
      }
      col.kind = *kind;
      col.key_field.push_back(0x0a);
      char buf[10];
      col.key_field.append(buf, WriteVarint(col.name.size(), buf));
      col.key_field.append(col.name);
      columns_.push_back(std::move(col));
    }
    // The order of Python protobuf's (upb) deterministic serialization, so records are
    // byte-identical to tf.train.Example.SerializeToString(deterministic=True): bytes
    // compared over the common prefix, and when one key is a prefix of the other the
    // longer key first ("maybe_text" before "maybe").
    std::sort(columns_.begin(), columns_.end(), [](const Column& a, const Column& b) {
      size_t n = std::min(a.name.size(), b.name.size());
      int c = std::memcmp(a.name.data(), b.name.data(), n);
      if (c != 0) return c < 0;
      return a.name.size() > b.name.size();
    });
    for (size_t i = 1; i < columns_.size(); ++i) {
      if (columns_[i].name == columns_[i - 1].name) {
        return arrow::Status::Invalid("column name '", columns_[i].name,
                                      "' appears twice; feature names must be unique");
      }
    }
    for (const Column& c : columns_) (c.shape == Shape::kSeq ? has_seq_ : has_ctx_) = true;
    return arrow::Status::OK();
  }

  arrow::Status EncodeFramed(const arrow::RecordBatch& batch, int64_t offset,
                             int64_t length, std::string* out) override {
    ARROW_RETURN_NOT_OK(Prepare(batch, offset, length));
    size_t total = 0;
    for (int64_t r = 0; r < length; ++r) total += static_cast<size_t>(msg_size_[r]) + 16;
    size_t start = out->size();
    out->resize(start + total);
    char* p = out->data() + start;
    for (int64_t r = 0; r < length; ++r) {
      const uint64_t n = static_cast<uint64_t>(msg_size_[r]);
      for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((n >> (8 * i)) & 0xff);
      StoreLE32(MaskCrc(Crc32c(p, 8)), p + 8);
      char* msg = p + 12;
      char* end = WriteRow(r, offset + r, msg);
      StoreLE32(MaskCrc(Crc32c(msg, n)), end);
      p = end + 4;
    }
    return arrow::Status::OK();
  }

  arrow::Status EncodeRow(const arrow::RecordBatch& batch, int64_t row,
                          std::string* out) override {
    ARROW_RETURN_NOT_OK(Prepare(batch, row, 1));
    out->resize(static_cast<size_t>(msg_size_[0]));
    WriteRow(0, row, out->data());
    return arrow::Status::OK();
  }

 private:
  static void StoreLE32(uint32_t v, char* p) {
    for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  }

  arrow::Status Prepare(const arrow::RecordBatch& batch, int64_t offset, int64_t length) {
    if (!batch.schema()->Equals(*schema_, /*check_metadata=*/false)) {
      return arrow::Status::TypeError("batch schema ", batch.schema()->ToString(),
                                      " differs from the encoder's schema ",
                                      schema_->ToString());
    }
    if (offset < 0 || length < 0 || offset + length > batch.num_rows()) {
      return arrow::Status::IndexError("rows [", offset, ", ", offset + length,
                                       ") out of a batch of ", batch.num_rows());
    }
    const size_t ncols = columns_.size();
    sizes_.assign(ncols * static_cast<size_t>(length), -1);
    for (size_t c = 0; c < ncols; ++c) {
      Column& col = columns_[c];
      ARROW_RETURN_NOT_OK(Bind(batch, offset, length, &col));
      ARROW_RETURN_NOT_OK(SizeColumn(col, offset, length, &sizes_[c * length]));
    }
    msg_size_.assign(static_cast<size_t>(length), 0);
    for (int64_t r = 0; r < length; ++r) {
      int64_t ctx = 0, fls = 0;
      for (size_t c = 0; c < ncols; ++c) {
        const int64_t s = sizes_[c * length + r];
        if (s < 0) continue;
        const Column& col = columns_[c];
        int64_t value = col.shape == Shape::kSeq ? s : FeatureSize(s);
        int64_t entry = static_cast<int64_t>(col.key_field.size()) + 1 + VarintSize(value) + value;
        (col.shape == Shape::kSeq ? fls : ctx) += 1 + VarintSize(entry) + entry;
      }
      int64_t msg = 0;
      if (record_type_ == RecordType::kExample) {
        msg = 1 + VarintSize(ctx) + ctx;
      } else {
        if (has_ctx_) msg += 1 + VarintSize(ctx) + ctx;
        if (has_seq_) msg += 1 + VarintSize(fls) + fls;
      }
      msg_size_[r] = msg;
    }
    return arrow::Status::OK();
  }

  static int64_t FeatureSize(int64_t content) { return 1 + VarintSize(content) + content; }

  arrow::Status Bind(const arrow::RecordBatch& batch, int64_t offset, int64_t length,
                     Column* col) {
    const auto& arr = batch.column(col->field_index);
    col->top = arr.get();
    if (length == 0) {
      BindValues(*arr, col->kind, 0, 0, &col->values);
      return arrow::Status::OK();
    }
    if (col->shape == Shape::kScalar) {
      BindValues(*arr, col->kind, offset, offset + length, &col->values);
      return arrow::Status::OK();
    }
    col->outer_offsets.Bind(*arr);
    int64_t lo = col->outer_offsets.begin(offset);
    int64_t hi = col->outer_offsets.end(offset + length - 1);
    std::shared_ptr<arrow::Array> child = ListValuesOf(*arr);
    if (col->shape == Shape::kSeq) {
      col->inner_holder = child;
      col->inner = child.get();
      col->inner_offsets.Bind(*child);
      child = ListValuesOf(*child);
      if (hi > lo) {
        int64_t lo2 = col->inner_offsets.begin(lo);
        hi = col->inner_offsets.end(hi - 1);
        lo = lo2;
      } else {
        hi = lo = 0;
      }
    }
    col->leaf_holder = child;
    BindValues(*child, col->kind, lo, hi, &col->values);
    return arrow::Status::OK();
  }

  static arrow::Status NullElement(const Column& col, int64_t row) {
    return arrow::Status::Invalid("column '", col.name, "' row ", row,
                                  ": a list holds a null element; TFRecord lists cannot "
                                  "hold nulls (drop or fill them first)");
  }

  // Size of the BytesList / FloatList / Int64List message for elements [b, e).
  arrow::Result<int64_t> ListContentSize(const Column& col, int64_t b, int64_t e,
                                         int64_t row) const {
    const Values& v = col.values;
    if (v.array->null_count() > 0 && col.shape != Shape::kScalar) {
      for (int64_t i = b; i < e; ++i) {
        if (v.array->IsNull(i)) return NullElement(col, row);
      }
    }
    switch (col.kind) {
      case Kind::kFloat:
        return e > b ? FeatureSize(4 * (e - b)) : 0;
      case Kind::kInt64: {
        int64_t s = 0;
        for (int64_t i = b; i < e; ++i) {
          const int64_t x = v.Int(i);
          if (v.check_uint64 && x < 0) {
            return arrow::Status::Invalid(
                "column '", col.name, "' row ", row, ": uint64 value ",
                static_cast<uint64_t>(x),
                " is above the int64 maximum, which TFRecord int64_list cannot hold");
          }
          s += VarintSize(static_cast<uint64_t>(x));
        }
        return e > b ? FeatureSize(s) : 0;
      }
      case Kind::kBytes: {
        int64_t s = 0;
        for (int64_t i = b; i < e; ++i) {
          const int64_t len = static_cast<int64_t>(v.Bytes(i).size());
          s += 1 + VarintSize(len) + len;
        }
        return s;
      }
    }
    return 0;
  }

  arrow::Status SizeColumn(const Column& col, int64_t offset, int64_t length,
                           int64_t* sizes) const {
    const arrow::Array& top = *col.top;
    const bool nulls = top.null_count() > 0;
    for (int64_t r = 0; r < length; ++r) {
      const int64_t row = offset + r;
      if (nulls && top.IsNull(row)) continue;
      switch (col.shape) {
        case Shape::kScalar: {
          ARROW_ASSIGN_OR_RAISE(sizes[r], ListContentSize(col, row, row + 1, row));
          break;
        }
        case Shape::kList: {
          ARROW_ASSIGN_OR_RAISE(sizes[r], ListContentSize(col, col.outer_offsets.begin(row),
                                                          col.outer_offsets.end(row), row));
          break;
        }
        case Shape::kSeq: {
          int64_t fl = 0;
          for (int64_t j = col.outer_offsets.begin(row); j < col.outer_offsets.end(row);
               ++j) {
            if (col.inner->IsNull(j)) {
              return arrow::Status::Invalid("column '", col.name, "' row ", row,
                                            ": inner list ", j - col.outer_offsets.begin(row),
                                            " is null; a feature list cannot hold nulls");
            }
            ARROW_ASSIGN_OR_RAISE(int64_t content,
                                  ListContentSize(col, col.inner_offsets.begin(j),
                                                  col.inner_offsets.end(j), row));
            const int64_t f = FeatureSize(content);
            fl += 1 + VarintSize(f) + f;
          }
          sizes[r] = fl;
          break;
        }
      }
    }
    return arrow::Status::OK();
  }

  // Writes the Feature message for elements [b, e) (content size already known).
  static char* WriteFeature(const Column& col, int64_t b, int64_t e, int64_t content,
                            char* p) {
    const Values& v = col.values;
    *p++ = FeatureTag(col.kind);
    p = WriteVarint(static_cast<uint64_t>(content), p);
    switch (col.kind) {
      case Kind::kFloat:
        if (e > b) {
          *p++ = 0x0a;
          p = WriteVarint(static_cast<uint64_t>(4 * (e - b)), p);
          std::memcpy(p, v.floats + (b - v.base), static_cast<size_t>(4 * (e - b)));
          p += 4 * (e - b);
        }
        break;
      case Kind::kInt64:
        if (e > b) {
          *p++ = 0x0a;
          // Packed payload size = content - tag - varint(payload); recompute directly.
          int64_t s = 0;
          for (int64_t i = b; i < e; ++i) s += VarintSize(static_cast<uint64_t>(v.Int(i)));
          p = WriteVarint(static_cast<uint64_t>(s), p);
          for (int64_t i = b; i < e; ++i) p = WriteVarint(static_cast<uint64_t>(v.Int(i)), p);
        }
        break;
      case Kind::kBytes:
        for (int64_t i = b; i < e; ++i) {
          std::string_view s = v.Bytes(i);
          *p++ = 0x0a;
          p = WriteVarint(s.size(), p);
          if (!s.empty()) std::memcpy(p, s.data(), s.size());
          p += s.size();
        }
        break;
    }
    return p;
  }

  static int64_t ContentSizeNoCheck(const Column& col, int64_t b, int64_t e) {
    const Values& v = col.values;
    switch (col.kind) {
      case Kind::kFloat:
        return e > b ? FeatureSize(4 * (e - b)) : 0;
      case Kind::kInt64: {
        int64_t s = 0;
        for (int64_t i = b; i < e; ++i) s += VarintSize(static_cast<uint64_t>(v.Int(i)));
        return e > b ? FeatureSize(s) : 0;
      }
      case Kind::kBytes: {
        int64_t s = 0;
        for (int64_t i = b; i < e; ++i) {
          const int64_t len = static_cast<int64_t>(v.Bytes(i).size());
          s += 1 + VarintSize(len) + len;
        }
        return s;
      }
    }
    return 0;
  }

  char* WriteEntries(int64_t r, int64_t row, bool seq, char* p) const {
    const size_t length = msg_size_.size();
    for (size_t c = 0; c < columns_.size(); ++c) {
      const Column& col = columns_[c];
      if ((col.shape == Shape::kSeq) != seq) continue;
      const int64_t s = sizes_[c * length + r];
      if (s < 0) continue;
      const int64_t value = seq ? s : FeatureSize(s);
      const int64_t entry = static_cast<int64_t>(col.key_field.size()) + 1 + VarintSize(value) + value;
      *p++ = 0x0a;
      p = WriteVarint(static_cast<uint64_t>(entry), p);
      std::memcpy(p, col.key_field.data(), col.key_field.size());
      p += col.key_field.size();
      *p++ = 0x12;
      p = WriteVarint(static_cast<uint64_t>(value), p);
      switch (col.shape) {
        case Shape::kScalar:
          p = WriteFeature(col, row, row + 1, s, p);
          break;
        case Shape::kList:
          p = WriteFeature(col, col.outer_offsets.begin(row), col.outer_offsets.end(row), s,
                           p);
          break;
        case Shape::kSeq:
          for (int64_t j = col.outer_offsets.begin(row); j < col.outer_offsets.end(row);
               ++j) {
            const int64_t b = col.inner_offsets.begin(j), e = col.inner_offsets.end(j);
            const int64_t content = ContentSizeNoCheck(col, b, e);
            *p++ = 0x0a;
            p = WriteVarint(static_cast<uint64_t>(FeatureSize(content)), p);
            p = WriteFeature(col, b, e, content, p);
          }
          break;
      }
    }
    return p;
  }

  // Writes row r of the prepared slice (batch row `row`); returns the end.
  char* WriteRow(int64_t r, int64_t row, char* p) const {
    const size_t length = msg_size_.size();
    int64_t ctx = 0, fls = 0;
    for (size_t c = 0; c < columns_.size(); ++c) {
      const int64_t s = sizes_[c * length + r];
      if (s < 0) continue;
      const Column& col = columns_[c];
      int64_t value = col.shape == Shape::kSeq ? s : FeatureSize(s);
      int64_t entry = static_cast<int64_t>(col.key_field.size()) + 1 + VarintSize(value) + value;
      (col.shape == Shape::kSeq ? fls : ctx) += 1 + VarintSize(entry) + entry;
    }
    if (record_type_ == RecordType::kExample || has_ctx_) {
      *p++ = 0x0a;  // Example.features / SequenceExample.context
      p = WriteVarint(static_cast<uint64_t>(ctx), p);
      p = WriteEntries(r, row, false, p);
    }
    if (record_type_ == RecordType::kSequenceExample && has_seq_) {
      *p++ = 0x12;  // SequenceExample.feature_lists
      p = WriteVarint(static_cast<uint64_t>(fls), p);
      p = WriteEntries(r, row, true, p);
    }
    return p;
  }

  std::shared_ptr<arrow::Schema> schema_;
  RecordType record_type_ = RecordType::kExample;
  std::vector<Column> columns_;  // sorted by name
  bool has_ctx_ = false, has_seq_ = false;
  std::vector<int64_t> sizes_;     // [column][row of slice]: list content size, -1 absent
  std::vector<int64_t> msg_size_;  // per row of slice
};

}  // namespace

arrow::Result<std::unique_ptr<ExampleEncoder>> ExampleEncoder::Make(
    std::shared_ptr<arrow::Schema> schema, RecordType record_type) {
  auto enc = std::make_unique<ExampleEncoderImpl>();
  ARROW_RETURN_NOT_OK(enc->Init(std::move(schema), record_type));
  return enc;
}

std::optional<FeatureKind> FeatureKindOf(const arrow::DataType& type) {
  switch (type.id()) {
    case arrow::Type::INT8:
    case arrow::Type::INT16:
    case arrow::Type::INT32:
    case arrow::Type::INT64:
    case arrow::Type::UINT8:
    case arrow::Type::UINT16:
    case arrow::Type::UINT32:
    case arrow::Type::UINT64:
    case arrow::Type::BOOL:
    case arrow::Type::TIMESTAMP:
    case arrow::Type::DATE32:
    case arrow::Type::DATE64:
      return FeatureKind::kInt64;
    case arrow::Type::FLOAT:
    case arrow::Type::DOUBLE:
      return FeatureKind::kFloat;
    case arrow::Type::STRING:
    case arrow::Type::LARGE_STRING:
    case arrow::Type::BINARY:
    case arrow::Type::LARGE_BINARY:
    case arrow::Type::FIXED_SIZE_BINARY:
      return FeatureKind::kBytes;
    case arrow::Type::DICTIONARY: {
      auto kind = FeatureKindOf(*static_cast<const arrow::DictionaryType&>(type).value_type());
      if (kind == FeatureKind::kBytes) return kind;
      return std::nullopt;
    }
    default:
      return std::nullopt;
  }
}

}  // namespace dlprep::io
