// ExampleDecoder and InferExampleSchema: serialized tf.train.Example /
// SequenceExample -> Arrow. Each record is parsed twice: once to find and validate the
// features of every column (so that a bad record appends nothing), once to append the
// values to per-column staging vectors, which Flush() turns into Arrow buffers.
#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include <arrow/array.h>
#include <arrow/buffer.h>
#include <arrow/record_batch.h>
#include <arrow/type.h>
#include <arrow/util/utf8.h>

#include "core/memory.h"
#include "core/text.h"
#include "io/protobuf_wire.h"
#include "io/tfrecord.h"

namespace dlprep::io {
namespace {

using wire::ReadVarint;

enum class Kind { kNone, kBytes, kFloat, kInt64 };  // Feature.kind field number = index

const char* KindName(Kind k) {
  switch (k) {
    case Kind::kBytes:
      return "bytes_list";
    case Kind::kFloat:
      return "float_list";
    case Kind::kInt64:
      return "int64_list";
    case Kind::kNone:
      break;
  }
  return "no value list";
}

/// A cursor over protobuf bytes.
struct Cursor {
  const uint8_t* p;
  const uint8_t* end;

  explicit Cursor(std::string_view s)
      : p(reinterpret_cast<const uint8_t*>(s.data())), end(p + s.size()) {}
  bool done() const { return p >= end; }

  bool Tag(uint32_t* field, uint32_t* wt) {
    uint64_t t;
    if (!ReadVarint(&p, end, &t) || (t >> 3) == 0 || (t >> 3) > 0x1fffffff) return false;
    *field = static_cast<uint32_t>(t >> 3);
    *wt = static_cast<uint32_t>(t & 7);
    return true;
  }
  bool Bytes(std::string_view* out) {
    uint64_t n;
    if (!ReadVarint(&p, end, &n) || n > static_cast<uint64_t>(end - p)) return false;
    *out = std::string_view(reinterpret_cast<const char*>(p), n);
    p += n;
    return true;
  }
  // Skips the value of a field nobody asked for, as protobuf keeps an unknown field:
  // a group up to its matching end-group tag. False when malformed (an end-group tag
  // outside a group, wire types 6 and 7, truncation).
  bool Skip(uint32_t field, uint32_t wt, int depth = 0) {
    uint64_t v;
    std::string_view s;
    switch (wt) {
      case wire::kVarint:
        return ReadVarint(&p, end, &v);
      case wire::kFixed64:
        if (end - p < 8) return false;
        p += 8;
        return true;
      case wire::kLengthDelimited:
        return Bytes(&s);
      case wire::kFixed32:
        if (end - p < 4) return false;
        p += 4;
        return true;
      case wire::kStartGroup:
        if (depth >= wire::kMaxGroupDepth) return false;
        while (true) {
          uint32_t f, w;
          if (!Tag(&f, &w)) return false;
          if (w == wire::kEndGroup) return f == field;
          if (!Skip(f, w, depth + 1)) return false;
        }
      default:
        return false;
    }
  }
};

arrow::Status Malformed(const char* what) {
  return arrow::Status::Invalid("malformed record: cannot parse ", what,
                                " (not a serialized tf.train.Example?)");
}

/// A message as protobuf assembles it. A singular message field that occurs more than
/// once is merged, which gives the same message as parsing the concatenation of the
/// occurrences. `field` 0: `bytes` is the message; else the message is the
/// concatenation of the length-delimited occurrences of field `field` in the message
/// `bytes` (a map entry whose value field occurs more than once).
struct Merged {
  std::string_view bytes;
  uint32_t field = 0;
};

/// Calls `fn(piece)` (returning false to stop) for each piece of `m` in order.
template <typename Fn>
bool ForEachPiece(const Merged& m, Fn&& fn) {
  if (m.field == 0) return fn(m.bytes);
  Cursor c(m.bytes);
  while (!c.done()) {
    uint32_t field, wt;
    if (!c.Tag(&field, &wt)) return false;
    if (field == m.field && wt == wire::kLengthDelimited) {
      std::string_view piece;
      if (!c.Bytes(&piece) || !fn(piece)) return false;
    } else if (!c.Skip(field, wt)) {
      return false;
    }
  }
  return true;
}

/// True when `key` is valid UTF-8; keys are short and mostly ASCII, so that is checked
/// first, inline.
inline bool KeyIsUtf8(std::string_view key) {
  unsigned char any = 0;
  for (char ch : key) any |= static_cast<unsigned char>(ch);
  return any < 0x80 || arrow::util::ValidateUTF8(key);
}

/// Calls `fn(key, value)` for each entry of a protobuf map<string, Message> field 1 of
/// message `msg` (Features.feature or FeatureLists.feature_list), in wire order; a key
/// that occurs again replaces the entry before it (the caller keeps the last). Within an
/// entry the last key field names it and value fields that occur more than once merge.
/// A key that is not UTF-8 makes the record invalid, as protobuf refuses it (proto3
/// strings).
template <typename Fn>
arrow::Status ForEachMapEntry(std::string_view msg, const char* what, Fn&& fn) {
  Cursor c(msg);
  while (!c.done()) {
    uint32_t field, wt;
    if (!c.Tag(&field, &wt)) return Malformed(what);
    if (field == 1 && wt == wire::kLengthDelimited) {
      std::string_view entry;
      if (!c.Bytes(&entry)) return Malformed(what);
      std::string_view key, value;
      int values = 0;
      Cursor e(entry);
      while (!e.done()) {
        uint32_t f2, w2;
        if (!e.Tag(&f2, &w2)) return Malformed(what);
        if (f2 == 1 && w2 == wire::kLengthDelimited) {
          if (!e.Bytes(&key)) return Malformed(what);
          if (!KeyIsUtf8(key)) {
            return arrow::Status::Invalid(
                "feature key '", EscapeInvalidUtf8(key),
                "' is not valid UTF-8 (protobuf refuses such a record: map keys are "
                "proto3 strings)");
          }
        } else if (f2 == 2 && w2 == wire::kLengthDelimited) {
          if (!e.Bytes(&value)) return Malformed(what);
          ++values;
        } else if (!e.Skip(f2, w2)) {
          return Malformed(what);
        }
      }
      // One value field (the usual case) is the message itself.
      ARROW_RETURN_NOT_OK(fn(key, values > 1 ? Merged{entry, 2} : Merged{value, 0}));
    } else if (!c.Skip(field, wt)) {
      return Malformed(what);
    }
  }
  return arrow::Status::OK();
}

/// Calls `ctx(features_msg)` for Example.features / SequenceExample.context and
/// `fls(feature_lists_msg)` for SequenceExample.feature_lists, once per occurrence: the
/// maps of occurrences that protobuf merges are visited one after the other.
template <typename Ctx, typename Fls>
arrow::Status ForEachSection(std::string_view record, RecordType type, Ctx&& ctx,
                             Fls&& fls) {
  Cursor c(record);
  while (!c.done()) {
    uint32_t field, wt;
    if (!c.Tag(&field, &wt)) return Malformed("the record");
    if (field == 1 && wt == wire::kLengthDelimited) {
      std::string_view s;
      if (!c.Bytes(&s)) return Malformed("the record");
      ARROW_RETURN_NOT_OK(ctx(s));
    } else if (type == RecordType::kSequenceExample && field == 2 &&
               wt == wire::kLengthDelimited) {
      std::string_view s;
      if (!c.Bytes(&s)) return Malformed("the record");
      ARROW_RETURN_NOT_OK(fls(s));
    } else if (!c.Skip(field, wt)) {
      return Malformed("the record");
    }
  }
  return arrow::Status::OK();
}

/// The value list of a Feature message. Feature.kind is a oneof: a value list of the
/// kind already set merges into it (its values are appended), one of another kind
/// replaces it. So the values are those of the lists of the last kind from where the
/// kind last changed.
struct FeatureView {
  Kind kind = Kind::kNone;
  Merged feature;
  int lists = 0;                   // value lists of `kind` since the last change
  std::string_view list;           // the list when there is exactly one
  const uint8_t* first = nullptr;  // the tag of the first of them
  bool replaced = false;           // lists of another kind came before (still parsed)
};

// Adds the value lists of one piece of a Feature to `*out`.
bool ParseFeaturePiece(std::string_view piece, FeatureView* out) {
  Cursor c(piece);
  while (!c.done()) {
    const uint8_t* tag = c.p;
    uint32_t field, wt;
    if (!c.Tag(&field, &wt)) return false;
    if (field >= 1 && field <= 3 && wt == wire::kLengthDelimited) {
      std::string_view list;
      if (!c.Bytes(&list)) return false;
      const auto kind = static_cast<Kind>(field);
      if (kind != out->kind) {
        out->replaced = out->replaced || out->kind != Kind::kNone;
        out->kind = kind;
        out->lists = 0;
        out->first = tag;
      }
      ++out->lists;
      out->list = list;
    } else if (!c.Skip(field, wt)) {
      return false;
    }
  }
  return true;
}

bool ParseFeature(const Merged& feature, FeatureView* out) {
  out->kind = Kind::kNone;
  out->feature = feature;
  out->lists = 0;
  out->replaced = false;
  if (feature.field == 0) return ParseFeaturePiece(feature.bytes, out);
  return ForEachPiece(feature,
                      [out](std::string_view piece) { return ParseFeaturePiece(piece, out); });
}

/// Calls `fn(kind, list)` for the value lists of `f` that hold its values (`current`),
/// or for those the oneof replaced (`!current`).
template <typename Fn>
bool ForEachList(const FeatureView& f, bool current, Fn&& fn) {
  if (current && f.lists == 1) return fn(f.kind, f.list);
  return ForEachPiece(f.feature, [&](std::string_view piece) {
    Cursor c(piece);
    while (!c.done()) {
      const uint8_t* tag = c.p;
      uint32_t field, wt;
      if (!c.Tag(&field, &wt)) return false;
      if (field >= 1 && field <= 3 && wt == wire::kLengthDelimited) {
        std::string_view list;
        if (!c.Bytes(&list)) return false;
        const auto kind = static_cast<Kind>(field);
        // Pieces lie in order in one record, so addresses order the lists.
        const bool holds = kind == f.kind && tag >= f.first;
        if (holds == current && !fn(kind, list)) return false;
      } else if (!c.Skip(field, wt)) {
        return false;
      }
    }
    return true;
  });
}

/// Visits the values of one value list message of `kind`: `on_bytes(string_view)`,
/// `on_float(float)`, `on_int(int64)`. Packed and unpacked encodings are both
/// accepted; a value field with another wire type is an unknown field, as in protobuf.
template <typename OnBytes, typename OnFloat, typename OnInt>
bool ForEachListValue(Kind kind, std::string_view list, OnBytes&& on_bytes,
                      OnFloat&& on_float, OnInt&& on_int) {
  Cursor c(list);
  while (!c.done()) {
    uint32_t field, wt;
    if (!c.Tag(&field, &wt)) return false;
    if (field == 1) {
      std::string_view s;
      uint64_t v;
      switch (kind) {
        case Kind::kBytes:
          if (wt == wire::kLengthDelimited) {
            if (!c.Bytes(&s)) return false;
            on_bytes(s);
            continue;
          }
          break;
        case Kind::kFloat:
          if (wt == wire::kLengthDelimited) {
            if (!c.Bytes(&s) || s.size() % 4 != 0) return false;
            for (size_t i = 0; i < s.size(); i += 4) {
              float f;
              std::memcpy(&f, s.data() + i, 4);
              on_float(f);
            }
            continue;
          }
          if (wt == wire::kFixed32) {
            if (c.end - c.p < 4) return false;
            float f;
            std::memcpy(&f, c.p, 4);
            c.p += 4;
            on_float(f);
            continue;
          }
          break;
        case Kind::kInt64:
          if (wt == wire::kLengthDelimited) {
            if (!c.Bytes(&s)) return false;
            Cursor q(s);
            while (!q.done()) {
              if (!ReadVarint(&q.p, q.end, &v)) return false;
              on_int(static_cast<int64_t>(v));
            }
            continue;
          }
          if (wt == wire::kVarint) {
            if (!ReadVarint(&c.p, c.end, &v)) return false;
            on_int(static_cast<int64_t>(v));
            continue;
          }
          break;
        case Kind::kNone:
          break;
      }
    }
    if (!c.Skip(field, wt)) return false;  // an unknown field, or another wire type
  }
  return true;
}

/// Visits the values of a Feature (see ForEachListValue).
template <typename OnBytes, typename OnFloat, typename OnInt>
bool ForEachValue(const FeatureView& f, OnBytes&& on_bytes, OnFloat&& on_float,
                  OnInt&& on_int) {
  return ForEachList(f, /*current=*/true, [&](Kind kind, std::string_view list) {
    return ForEachListValue(kind, list, on_bytes, on_float, on_int);
  });
}

/// True when the value lists a oneof change replaced parse (protobuf parses them before
/// it drops them, so a malformed one makes the record malformed).
bool ReplacedListsParse(const FeatureView& f) {
  if (!f.replaced) return true;
  auto ignore = [](auto) {};
  return ForEachList(f, /*current=*/false, [&](Kind kind, std::string_view list) {
    return ForEachListValue(kind, list, ignore, ignore, ignore);
  });
}

/// Calls `fn(feature)` (returning false to stop) for each Feature of a FeatureList.
template <typename Fn>
bool ForEachListFeature(const Merged& feature_list, Fn&& fn) {
  return ForEachPiece(feature_list, [&](std::string_view piece) {
    Cursor c(piece);
    while (!c.done()) {
      uint32_t field, wt;
      if (!c.Tag(&field, &wt)) return false;
      if (field == 1 && wt == wire::kLengthDelimited) {
        std::string_view f;
        if (!c.Bytes(&f)) return false;
        if (!fn(Merged{f, 0})) return false;
      } else if (!c.Skip(field, wt)) {
        return false;
      }
    }
    return true;
  });
}

bool IsListType(arrow::Type::type id) {
  return id == arrow::Type::LIST || id == arrow::Type::LARGE_LIST ||
         id == arrow::Type::FIXED_SIZE_LIST;
}

enum class Shape { kScalar, kList, kSeq };

struct ListLayer {
  arrow::Type::type id = arrow::Type::LIST;
  int32_t fixed_size = 0;  // FIXED_SIZE_LIST only
};

struct Column {
  int index = 0;
  std::string name;
  std::shared_ptr<arrow::DataType> type, leaf;
  Shape shape = Shape::kScalar;
  ListLayer outer, inner;
  Kind kind = Kind::kNone;
  int64_t min = 0, max = 0;  // integer targets: allowed range
  bool whole_days = false;    // date64: milliseconds that are whole days (Arrow's rule)
  bool utf8 = false;
  int32_t byte_width = -1;  // fixed_size_binary
  // Staging for the current batch.
  std::vector<uint8_t> valid;
  std::vector<int64_t> offsets{0}, inner_offsets{0};
  std::vector<int64_t> ints;
  std::vector<float> floats;
  std::vector<int64_t> byte_offsets{0};
  std::string bytes;
  // Per-record: the feature (or feature list) found for the column, and for scalar and
  // list columns its value list (parsed by Check(), used by AppendColumn()).
  Merged found;
  FeatureView view;
  bool present = false;

  int64_t num_values() const {
    return kind == Kind::kBytes ? static_cast<int64_t>(byte_offsets.size()) - 1
           : kind == Kind::kFloat ? static_cast<int64_t>(floats.size())
                                  : static_cast<int64_t>(ints.size());
  }
};

arrow::Status IntRange(const arrow::DataType& t, int64_t* lo, int64_t* hi) {
  switch (t.id()) {
#define DLPREP_RANGE(ID, CT)                            \
  case arrow::Type::ID:                                 \
    *lo = static_cast<int64_t>(std::numeric_limits<CT>::min()); \
    *hi = static_cast<int64_t>(std::numeric_limits<CT>::max()); \
    return arrow::Status::OK();
    DLPREP_RANGE(INT8, int8_t)
    DLPREP_RANGE(INT16, int16_t)
    DLPREP_RANGE(INT32, int32_t)
    DLPREP_RANGE(UINT8, uint8_t)
    DLPREP_RANGE(UINT16, uint16_t)
    DLPREP_RANGE(UINT32, uint32_t)
    DLPREP_RANGE(DATE32, int32_t)
#undef DLPREP_RANGE
    case arrow::Type::UINT64:
      *lo = 0;
      *hi = std::numeric_limits<int64_t>::max();
      return arrow::Status::OK();
    case arrow::Type::BOOL:
      *lo = 0;
      *hi = 1;
      return arrow::Status::OK();
    default:
      *lo = std::numeric_limits<int64_t>::min();
      *hi = std::numeric_limits<int64_t>::max();
      return arrow::Status::OK();
  }
}

arrow::Result<Kind> LeafKind(const Column& col) {
  // Dictionary leaves are decoded as their value type before this point.
  if (col.leaf->id() != arrow::Type::DICTIONARY) {
    if (auto kind = FeatureKindOf(*col.leaf)) return static_cast<Kind>(*kind);
  }
  return arrow::Status::TypeError("column '", col.name, "' has type ", col.type->ToString(),
                                  ", which cannot be read from TFRecord features (expected "
                                  "integers, bool, timestamp, date, float32/float64, "
                                  "string/binary, or lists of those)");
}

arrow::Result<std::shared_ptr<arrow::Buffer>> MakeValidity(const std::vector<uint8_t>& valid,
                                                           int64_t* null_count) {
  const int64_t n = static_cast<int64_t>(valid.size());
  *null_count = n - std::count(valid.begin(), valid.end(), uint8_t{1});
  if (*null_count == 0) return nullptr;
  ARROW_ASSIGN_OR_RAISE(auto buf, arrow::AllocateBuffer((n + 7) / 8, EnginePool()));
  uint8_t* bits = buf->mutable_data();
  std::memset(bits, 0, static_cast<size_t>(buf->size()));
  for (int64_t i = 0; i < n; ++i) {
    if (valid[i]) bits[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
  }
  return std::shared_ptr<arrow::Buffer>(std::move(buf));
}

template <typename T, typename Src>
arrow::Result<std::shared_ptr<arrow::Buffer>> CastBuffer(const std::vector<Src>& src) {
  ARROW_ASSIGN_OR_RAISE(
      auto buf,
      arrow::AllocateBuffer(static_cast<int64_t>(src.size() * sizeof(T)), EnginePool()));
  T* out = reinterpret_cast<T*>(buf->mutable_data());
  for (size_t i = 0; i < src.size(); ++i) out[i] = static_cast<T>(src[i]);
  return std::shared_ptr<arrow::Buffer>(std::move(buf));
}

arrow::Result<std::shared_ptr<arrow::Buffer>> OffsetsBuffer(const std::vector<int64_t>& off,
                                                            bool large,
                                                            const std::string& column) {
  if (large) return CastBuffer<int64_t>(off);
  if (off.back() > std::numeric_limits<int32_t>::max()) {
    return arrow::Status::Invalid("column '", column, "': more than 2^31 values or bytes in "
                                  "one batch; use a large_ type or smaller batches");
  }
  return CastBuffer<int32_t>(off);
}

class ExampleDecoderImpl final : public ExampleDecoder {
 public:
  arrow::Status Init(std::shared_ptr<arrow::Schema> schema, RecordType record_type) {
    schema_ = std::move(schema);
    record_type_ = record_type;
    for (int i = 0; i < schema_->num_fields(); ++i) {
      Column col;
      col.index = i;
      col.name = schema_->field(i)->name();
      col.type = schema_->field(i)->type();
      col.leaf = col.type;
      if (IsListType(col.leaf->id())) {
        col.shape = Shape::kList;
        col.outer.id = col.leaf->id();
        if (col.outer.id == arrow::Type::FIXED_SIZE_LIST) {
          col.outer.fixed_size =
              static_cast<const arrow::FixedSizeListType&>(*col.leaf).list_size();
        }
        col.leaf = col.leaf->field(0)->type();
        if (IsListType(col.leaf->id())) {
          if (record_type != RecordType::kSequenceExample) {
            return arrow::Status::TypeError(
                "column '", col.name, "' has type ", col.type->ToString(),
                " (a list of lists), which only a SequenceExample feature list can fill; "
                "use --record-type sequence_example");
          }
          col.shape = Shape::kSeq;
          col.inner.id = col.leaf->id();
          if (col.inner.id == arrow::Type::FIXED_SIZE_LIST) {
            col.inner.fixed_size =
                static_cast<const arrow::FixedSizeListType&>(*col.leaf).list_size();
          }
          col.leaf = col.leaf->field(0)->type();
        }
      }
      ARROW_ASSIGN_OR_RAISE(col.kind, LeafKind(col));
      ARROW_RETURN_NOT_OK(IntRange(*col.leaf, &col.min, &col.max));
      col.whole_days = col.leaf->id() == arrow::Type::DATE64;
      col.utf8 = col.leaf->id() == arrow::Type::STRING ||
                 col.leaf->id() == arrow::Type::LARGE_STRING;
      if (col.leaf->id() == arrow::Type::FIXED_SIZE_BINARY) {
        col.byte_width = static_cast<const arrow::FixedSizeBinaryType&>(*col.leaf).byte_width();
      }
      if (!lookup_.emplace(col.name, i).second) {
        return arrow::Status::Invalid("column name '", col.name, "' appears twice");
      }
      columns_.push_back(std::move(col));
    }
    return arrow::Status::OK();
  }

  arrow::Status Append(std::string_view record) override {
    for (Column& c : columns_) c.present = false;
    auto on_features = [&](std::string_view msg) {
      return ForEachMapEntry(msg, "Features", [&](std::string_view key, Merged v) {
        Column* c = Find(key);
        if (c != nullptr && c->shape != Shape::kSeq) {
          c->found = v;
          c->present = true;
        }
        return arrow::Status::OK();
      });
    };
    auto on_lists = [&](std::string_view msg) {
      return ForEachMapEntry(msg, "FeatureLists",
                             [&](std::string_view key, Merged v) {
                               Column* c = Find(key);
                               if (c != nullptr && c->shape == Shape::kSeq) {
                                 c->found = v;
                                 c->present = true;
                               }
                               return arrow::Status::OK();
                             });
    };
    ARROW_RETURN_NOT_OK(ForEachSection(record, record_type_, on_features, on_lists));
    // Validate everything before appending anything.
    for (Column& c : columns_) {
      if (c.present) ARROW_RETURN_NOT_OK(Check(&c));
    }
    for (Column& c : columns_) AppendColumn(&c);
    ++rows_;
    return arrow::Status::OK();
  }

  int64_t num_rows() const override { return rows_; }

  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Flush() override {
    std::vector<std::shared_ptr<arrow::Array>> arrays;
    for (Column& c : columns_) {
      ARROW_ASSIGN_OR_RAISE(auto data, Build(c));
      arrays.push_back(arrow::MakeArray(data));
      c.valid.clear();
      c.offsets.assign(1, 0);
      c.inner_offsets.assign(1, 0);
      c.ints.clear();
      c.floats.clear();
      c.byte_offsets.assign(1, 0);
      c.bytes.clear();
    }
    auto batch = arrow::RecordBatch::Make(schema_, rows_, std::move(arrays));
    rows_ = 0;
    return batch;
  }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  Column* Find(std::string_view key) {
    auto it = lookup_.find(key);
    return it == lookup_.end() ? nullptr : &columns_[it->second];
  }

  arrow::Status FeatureError(const Column& c, const std::string& what) const {
    return arrow::Status::Invalid(EscapeInvalidUtf8("feature '" + c.name + "': " + what));
  }

  // Validates one Feature for column `c` and parses it into `*view`; `fixed` is the
  // required value count or -1.
  arrow::Status CheckFeature(const Column& c, const Merged& feature, bool scalar,
                             int64_t fixed, FeatureView* view) const {
    FeatureView& f = *view;
    if (!ParseFeature(feature, &f)) return FeatureError(c, "malformed Feature message");
    if (!ReplacedListsParse(f)) return FeatureError(c, "malformed value list");
    if (f.kind != Kind::kNone && f.kind != c.kind) {
      return FeatureError(c, std::string("holds a ") + KindName(f.kind) + " but column '" +
                                 c.name + "' (" + c.type->ToString() + ") needs a " +
                                 KindName(c.kind));
    }
    int64_t n = 0;
    std::string bad;
    bool ok = ForEachValue(
        f,
        [&](std::string_view s) {
          ++n;
          if (!bad.empty()) return;
          if (c.utf8 && !arrow::util::ValidateUTF8(s)) {
            bad = "value " + std::to_string(n - 1) + " is not valid UTF-8 (column '" + c.name +
                  "' is " + c.leaf->ToString() + "; use binary)";
          } else if (c.byte_width >= 0 && static_cast<int64_t>(s.size()) != c.byte_width) {
            bad = "value " + std::to_string(n - 1) + " has " + std::to_string(s.size()) +
                  " bytes but column '" + c.name + "' is " + c.leaf->ToString();
          }
        },
        [&](float) { ++n; },
        [&](int64_t v) {
          ++n;
          if (bad.empty() && (v < c.min || v > c.max)) {
            bad = "value " + std::to_string(v) + " does not fit column '" + c.name +
                  "' of type " + c.leaf->ToString();
          } else if (bad.empty() && c.whole_days && v % 86400000 != 0) {
            bad = "value " + std::to_string(v) + " is not a whole number of days in "
                  "milliseconds, as column '" + c.name + "' (" + c.leaf->ToString() +
                  ") needs";
          }
        });
    if (!ok) return FeatureError(c, std::string("malformed ") + KindName(f.kind));
    if (!bad.empty()) return FeatureError(c, bad);
    if (scalar && n != 1) {
      return FeatureError(c, "has " + std::to_string(n) + " values but column '" + c.name +
                                 "' (" + c.type->ToString() + ") holds exactly one per row");
    }
    if (fixed >= 0 && n != fixed) {
      return FeatureError(c, "has " + std::to_string(n) + " values but column '" + c.name +
                                 "' (" + c.type->ToString() + ") holds exactly " +
                                 std::to_string(fixed));
    }
    return arrow::Status::OK();
  }

  arrow::Status Check(Column* col) const {
    const Column& c = *col;
    switch (c.shape) {
      case Shape::kScalar:
        return CheckFeature(c, c.found, true, -1, &col->view);
      case Shape::kList:
        return CheckFeature(c, c.found, false,
                            c.outer.id == arrow::Type::FIXED_SIZE_LIST ? c.outer.fixed_size : -1,
                            &col->view);
      case Shape::kSeq: {
        arrow::Status st;
        int64_t count = 0;
        FeatureView view;
        bool ok = ForEachListFeature(c.found, [&](const Merged& f) {
          ++count;
          st = CheckFeature(c, f, false,
                            c.inner.id == arrow::Type::FIXED_SIZE_LIST ? c.inner.fixed_size : -1,
                            &view);
          return st.ok();
        });
        ARROW_RETURN_NOT_OK(st);
        if (!ok) return FeatureError(c, "malformed FeatureList message");
        if (c.outer.id == arrow::Type::FIXED_SIZE_LIST && count != c.outer.fixed_size) {
          return FeatureError(c, "has " + std::to_string(count) + " features in its list "
                                 "but column '" + c.name + "' (" + c.type->ToString() +
                                 ") holds exactly " + std::to_string(c.outer.fixed_size));
        }
        return arrow::Status::OK();
      }
    }
    return arrow::Status::OK();
  }

  static void AppendValues(Column* c, const FeatureView& f) {
    ForEachValue(
        f,
        [&](std::string_view s) {
          c->bytes.append(s);
          c->byte_offsets.push_back(static_cast<int64_t>(c->bytes.size()));
        },
        [&](float v) { c->floats.push_back(v); }, [&](int64_t v) { c->ints.push_back(v); });
  }

  static void AppendDefaults(Column* c, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      switch (c->kind) {
        case Kind::kBytes:
          c->bytes.append(static_cast<size_t>(std::max(c->byte_width, 0)), '\0');
          c->byte_offsets.push_back(static_cast<int64_t>(c->bytes.size()));
          break;
        case Kind::kFloat:
          c->floats.push_back(0);
          break;
        default:
          c->ints.push_back(0);
          break;
      }
    }
  }

  static void AppendColumn(Column* c) {
    c->valid.push_back(c->present ? 1 : 0);
    switch (c->shape) {
      case Shape::kScalar:
        if (c->present) {
          AppendValues(c, c->view);
        } else {
          AppendDefaults(c, 1);
        }
        break;
      case Shape::kList:
        if (c->present) {
          AppendValues(c, c->view);
        } else if (c->outer.id == arrow::Type::FIXED_SIZE_LIST) {
          AppendDefaults(c, c->outer.fixed_size);
        }
        c->offsets.push_back(c->num_values());
        break;
      case Shape::kSeq:
        if (c->present) {
          ForEachListFeature(c->found, [&](const Merged& feature) {
            FeatureView f;
            ParseFeature(feature, &f);  // checked in Check()
            AppendValues(c, f);
            c->inner_offsets.push_back(c->num_values());
            return true;
          });
        } else if (c->outer.id == arrow::Type::FIXED_SIZE_LIST) {
          for (int32_t j = 0; j < c->outer.fixed_size; ++j) {
            if (c->inner.id == arrow::Type::FIXED_SIZE_LIST) AppendDefaults(c, c->inner.fixed_size);
            c->inner_offsets.push_back(c->num_values());
          }
        }
        c->offsets.push_back(static_cast<int64_t>(c->inner_offsets.size()) - 1);
        break;
    }
  }

  arrow::Result<std::shared_ptr<arrow::ArrayData>> BuildLeaf(Column& c, int64_t length,
                                                             std::shared_ptr<arrow::Buffer> validity,
                                                             int64_t null_count) {
    const auto& t = c.leaf;
    arrow::Result<std::shared_ptr<arrow::Buffer>> values_r;
    switch (t->id()) {
      case arrow::Type::INT8:
        values_r = CastBuffer<int8_t>(c.ints);
        break;
      case arrow::Type::INT16:
        values_r = CastBuffer<int16_t>(c.ints);
        break;
      case arrow::Type::INT32:
      case arrow::Type::DATE32:
        values_r = CastBuffer<int32_t>(c.ints);
        break;
      case arrow::Type::UINT8:
        values_r = CastBuffer<uint8_t>(c.ints);
        break;
      case arrow::Type::UINT16:
        values_r = CastBuffer<uint16_t>(c.ints);
        break;
      case arrow::Type::UINT32:
        values_r = CastBuffer<uint32_t>(c.ints);
        break;
      case arrow::Type::INT64:
      case arrow::Type::UINT64:
      case arrow::Type::TIMESTAMP:
      case arrow::Type::DATE64:
        values_r = CastBuffer<int64_t>(c.ints);
        break;
      case arrow::Type::BOOL: {
        ARROW_ASSIGN_OR_RAISE(auto buf,
                              arrow::AllocateBuffer((length + 7) / 8, EnginePool()));
        std::memset(buf->mutable_data(), 0, static_cast<size_t>(buf->size()));
        for (int64_t i = 0; i < length; ++i) {
          if (c.ints[i] != 0) buf->mutable_data()[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
        }
        values_r = std::shared_ptr<arrow::Buffer>(std::move(buf));
        break;
      }
      case arrow::Type::FLOAT:
        values_r = CastBuffer<float>(c.floats);
        break;
      case arrow::Type::DOUBLE:
        values_r = CastBuffer<double>(c.floats);
        break;
      case arrow::Type::FIXED_SIZE_BINARY:
        values_r = arrow::Buffer::FromString(std::move(c.bytes));
        break;
      default: {  // string, binary and their large variants
        const bool large =
            t->id() == arrow::Type::LARGE_STRING || t->id() == arrow::Type::LARGE_BINARY;
        ARROW_ASSIGN_OR_RAISE(auto offsets, OffsetsBuffer(c.byte_offsets, large, c.name));
        auto data = arrow::Buffer::FromString(std::move(c.bytes));
        return arrow::ArrayData::Make(t, length, {validity, offsets, data}, null_count);
      }
    }
    ARROW_ASSIGN_OR_RAISE(auto values, std::move(values_r));
    return arrow::ArrayData::Make(t, length, {validity, values}, null_count);
  }

  arrow::Result<std::shared_ptr<arrow::ArrayData>> WrapList(
      const std::shared_ptr<arrow::DataType>& type, const ListLayer& layer,
      const std::vector<int64_t>& offsets, std::shared_ptr<arrow::ArrayData> child,
      std::shared_ptr<arrow::Buffer> validity, int64_t null_count, const std::string& name) {
    const int64_t length = static_cast<int64_t>(offsets.size()) - 1;
    if (layer.id == arrow::Type::FIXED_SIZE_LIST) {
      return arrow::ArrayData::Make(type, length, {validity}, {child}, null_count);
    }
    ARROW_ASSIGN_OR_RAISE(auto off,
                          OffsetsBuffer(offsets, layer.id == arrow::Type::LARGE_LIST, name));
    return arrow::ArrayData::Make(type, length, {validity, off}, {child}, null_count);
  }

  arrow::Result<std::shared_ptr<arrow::ArrayData>> Build(Column& c) {
    int64_t null_count = 0;
    ARROW_ASSIGN_OR_RAISE(auto validity, MakeValidity(c.valid, &null_count));
    const int64_t leaf_len = c.num_values();
    if (c.shape == Shape::kScalar) return BuildLeaf(c, leaf_len, validity, null_count);
    ARROW_ASSIGN_OR_RAISE(auto leaf, BuildLeaf(c, leaf_len, nullptr, 0));
    if (c.shape == Shape::kList) {
      return WrapList(c.type, c.outer, c.offsets, leaf, validity, null_count, c.name);
    }
    ARROW_ASSIGN_OR_RAISE(auto inner, WrapList(c.type->field(0)->type(), c.inner,
                                               c.inner_offsets, leaf, nullptr, 0, c.name));
    return WrapList(c.type, c.outer, c.offsets, inner, validity, null_count, c.name);
  }

  std::shared_ptr<arrow::Schema> schema_;
  RecordType record_type_ = RecordType::kExample;
  std::vector<Column> columns_;
  std::unordered_map<std::string, int, Hash, std::equal_to<>> lookup_;
  int64_t rows_ = 0;
};

}  // namespace

arrow::Result<std::unique_ptr<ExampleDecoder>> ExampleDecoder::Make(
    std::shared_ptr<arrow::Schema> schema, RecordType record_type) {
  arrow::util::InitializeUTF8();  // ValidateUTF8's tables; idempotent and thread-safe
  auto dec = std::make_unique<ExampleDecoderImpl>();
  ARROW_RETURN_NOT_OK(dec->Init(std::move(schema), record_type));
  return dec;
}

struct ExampleSchemaInferer::Impl {
  struct Info {
    Kind kind = Kind::kNone;
    bool scalar = true;
    bool utf8 = true;
    bool seq = false;
  };
  // A feature (or feature list) of the record being added: the last entry of its key.
  struct Seen {
    std::string_view key;
    bool seq = false;
    Merged value;
    Kind kind = Kind::kNone;
    bool scalar = true;
    bool utf8 = true;
  };

  RecordType record_type = RecordType::kExample;
  std::map<std::string, Info, std::less<>> infos;
  // Scratch for one record, kept to reuse its memory.
  std::vector<Seen> seen;
  std::unordered_map<std::string_view, size_t> context_index, list_index;

  // What feature `s` holds, into `s`; Invalid when it does not parse or its kind differs
  // from `s->kind` (the kind seen so far, updated), which is `known` when it comes from
  // earlier records.
  arrow::Status Note(Seen* s, const Merged& feature, Kind known) const {
    FeatureView f;
    if (!ParseFeature(feature, &f) || !ReplacedListsParse(f)) {
      return arrow::Status::Invalid("feature '", s->key, "': malformed Feature message");
    }
    if (f.kind != Kind::kNone) {
      if (s->kind != Kind::kNone && s->kind != f.kind) {
        return arrow::Status::Invalid(
            "feature '", s->key, "' holds a ", KindName(f.kind), " but ",
            s->kind == known ? "an earlier record" : "an earlier feature of its list",
            " had a ", KindName(s->kind));
      }
      s->kind = f.kind;
    }
    int64_t n = 0;
    bool ok = ForEachValue(
        f,
        [&](std::string_view v) {
          ++n;
          if (s->utf8 && !arrow::util::ValidateUTF8(v)) s->utf8 = false;
        },
        [&](float) { ++n; }, [&](int64_t) { ++n; });
    if (!ok) {
      return arrow::Status::Invalid("feature '", s->key, "': malformed ", KindName(f.kind));
    }
    if (n != 1) s->scalar = false;
    return arrow::Status::OK();
  }

  arrow::Status Add(std::string_view record) {
    seen.clear();
    context_index.clear();
    list_index.clear();
    auto collect = [&](bool seq) {
      return [&, seq](std::string_view key, Merged value) {
        auto& index = seq ? list_index : context_index;
        auto [it, inserted] = index.try_emplace(key, seen.size());
        if (inserted) {
          seen.push_back({key, seq, value});
        } else {
          seen[it->second].value = value;  // the last entry of a key wins
        }
        return arrow::Status::OK();
      };
    };
    ARROW_RETURN_NOT_OK(ForEachSection(
        record, record_type,
        [&](std::string_view msg) { return ForEachMapEntry(msg, "Features", collect(false)); },
        [&](std::string_view msg) {
          return ForEachMapEntry(msg, "FeatureLists", collect(true));
        }));
    // Check everything before changing anything, so that a refused record leaves no trace.
    for (Seen& s : seen) {
      auto it = infos.find(s.key);
      const bool both = (s.seq ? context_index : list_index).count(s.key) > 0;
      if (both || (it != infos.end() && it->second.seq != s.seq)) {
        return arrow::Status::Invalid("feature '", s.key,
                                      "' is both a context feature and a feature list");
      }
      const Kind known = it != infos.end() ? it->second.kind : Kind::kNone;
      s.kind = known;
      if (!s.seq) {
        ARROW_RETURN_NOT_OK(Note(&s, s.value, known));
        continue;
      }
      arrow::Status st;
      bool ok = ForEachListFeature(s.value, [&](const Merged& feature) {
        st = Note(&s, feature, known);
        return st.ok();
      });
      ARROW_RETURN_NOT_OK(st);
      if (!ok) return Malformed("FeatureList");
    }
    for (const Seen& s : seen) {
      Info& info = infos.try_emplace(std::string(s.key)).first->second;
      info.seq = s.seq;
      if (s.kind != Kind::kNone) info.kind = s.kind;
      if (!s.scalar) info.scalar = false;
      if (!s.utf8) info.utf8 = false;
    }
    return arrow::Status::OK();
  }

  std::shared_ptr<arrow::Schema> Finish() const {
    arrow::FieldVector fields;
    for (const auto& [name, info] : infos) {
      std::shared_ptr<arrow::DataType> t;
      switch (info.kind) {
        case Kind::kInt64:
          t = arrow::int64();
          break;
        case Kind::kBytes:
          t = info.utf8 ? arrow::utf8() : arrow::binary();
          break;
        default:  // float_list, or never seen with a value list
          t = arrow::float32();
          break;
      }
      if (info.seq) {
        t = arrow::list(arrow::list(t));
      } else if (!info.scalar || info.kind == Kind::kNone) {
        t = arrow::list(t);
      }
      fields.push_back(arrow::field(name, t));
    }
    return arrow::schema(std::move(fields));
  }
};

ExampleSchemaInferer::ExampleSchemaInferer(RecordType record_type)
    : impl_(std::make_unique<Impl>()) {
  arrow::util::InitializeUTF8();
  impl_->record_type = record_type;
}

ExampleSchemaInferer::~ExampleSchemaInferer() = default;

arrow::Status ExampleSchemaInferer::Add(std::string_view record) { return impl_->Add(record); }

std::shared_ptr<arrow::Schema> ExampleSchemaInferer::Finish() const { return impl_->Finish(); }

arrow::Result<std::shared_ptr<arrow::Schema>> InferExampleSchema(
    const std::vector<std::string>& records, RecordType record_type) {
  ExampleSchemaInferer inferer(record_type);
  for (size_t r = 0; r < records.size(); ++r) {
    arrow::Status st = inferer.Add(records[r]);
    if (!st.ok()) return st.WithMessage("record ", r, ": ", st.message());
  }
  return inferer.Finish();
}

}  // namespace dlprep::io
