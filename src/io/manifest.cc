#include "io/manifest.h"
#include "io/tfrecord.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <arrow/array.h>
#include <arrow/buffer.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/dictionary.h>
#include <arrow/ipc/reader.h>
#include <arrow/ipc/writer.h>
#include <arrow/type.h>
#include <arrow/util/base64.h>
#include <arrow/util/checked_cast.h>
#include <arrow/util/key_value_metadata.h>
#include <nlohmann/json.hpp>

#include "core/text.h"

namespace dlprep::io {
namespace {

using arrow::internal::checked_cast;
using Json = nlohmann::ordered_json;

bool IsListType(arrow::Type::type id) {
  return id == arrow::Type::LIST || id == arrow::Type::LARGE_LIST ||
         id == arrow::Type::FIXED_SIZE_LIST;
}

const arrow::DataType& ListValueType(const arrow::DataType& type) {
  return *checked_cast<const arrow::BaseListType&>(type).value_type();
}

// Maps every entry of `*positions` (row positions in [0, length] of the list-like
// `array`) to positions in the child array, which goes to `*child`.
void MapThroughListLevel(const arrow::Array& array, std::vector<int64_t>* positions,
                         std::shared_ptr<arrow::Array>* child) {
  switch (array.type_id()) {
    case arrow::Type::LIST: {
      const auto& list = checked_cast<const arrow::ListArray&>(array);
      for (int64_t& p : *positions) p = list.value_offset(p);
      *child = list.values();
      break;
    }
    case arrow::Type::LARGE_LIST: {
      const auto& list = checked_cast<const arrow::LargeListArray&>(array);
      for (int64_t& p : *positions) p = list.value_offset(p);
      *child = list.values();
      break;
    }
    default: {
      const auto& list = checked_cast<const arrow::FixedSizeListArray&>(array);
      for (int64_t& p : *positions) p = list.value_offset(p);
      *child = list.values();
      break;
    }
  }
}

int64_t Product(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return -1;
    n *= d;
  }
  return n;
}

std::string CompressionName(TfRecordCompression c) {
  switch (c) {
    case TfRecordCompression::kGzip:
      return "gzip";
    case TfRecordCompression::kZlib:
      return "zlib";
    default:
      return "none";
  }
}

std::string FormatName(OutputFormat f) {
  switch (f) {
    case OutputFormat::kTfRecord:
      return "tfrecord";
    case OutputFormat::kParquet:
      return "parquet";
    case OutputFormat::kCsv:
      return "csv";
  }
  return "unknown";
}

arrow::Result<Json> FeatureSpec(const arrow::Field& field, const ColumnStats& stats,
                                RecordType record_type) {
  const arrow::DataType& type = *field.type();
  ARROW_ASSIGN_OR_RAISE(std::string dtype, FeatureDtype(type));
  bool sequence = IsSequenceColumn(type, record_type);
  ARROW_ASSIGN_OR_RAISE(auto meta_shape, ShapeFromMetadata(field));
  std::vector<int64_t> shape;
  bool fixed = stats.null_count == 0;
  if (IsListType(type.id())) {
    // For a sequence column the shape is that of one step (the inner list).
    const arrow::DataType& shaped = sequence ? ListValueType(type) : type;
    if (meta_shape) {
      shape = *meta_shape;
    } else if (shaped.id() == arrow::Type::FIXED_SIZE_LIST &&
               !IsListType(ListValueType(shaped).id())) {
      shape = {checked_cast<const arrow::FixedSizeListType&>(shaped).list_size()};
    } else if (stats.lengths_seen > 0 && stats.min_length == stats.max_length) {
      shape = {stats.min_length};
    } else {
      shape = {-1};
    }
    int64_t expected = Product(shape);
    if (expected < 0) {
      fixed = false;
    } else if (stats.lengths_seen > 0) {
      fixed = fixed && stats.min_length == expected && stats.max_length == expected;
    }
  }
  Json spec;
  spec["dtype"] = dtype;
  spec["shape"] = shape;
  spec["fixed_length"] = fixed;
  spec["sequence"] = sequence;
  // Times travel as int64 counts; the unit (and time zone) say of what.
  const arrow::DataType* leaf = &type;
  while (IsListType(leaf->id())) leaf = &ListValueType(*leaf);
  if (leaf->id() == arrow::Type::TIMESTAMP) {
    const auto& ts = checked_cast<const arrow::TimestampType&>(*leaf);
    static const char* const kUnits[] = {"s", "ms", "us", "ns"};
    spec["unit"] = kUnits[static_cast<int>(ts.unit())];
    if (!ts.timezone().empty()) spec["timezone"] = ts.timezone();
  } else if (leaf->id() == arrow::Type::DATE32) {
    spec["unit"] = "days";
  } else if (leaf->id() == arrow::Type::DATE64) {
    spec["unit"] = "ms";
  }
  return spec;
}

}  // namespace

bool IsSequenceColumn(const arrow::DataType& type, RecordType record_type) {
  return record_type == RecordType::kSequenceExample && IsListType(type.id()) &&
         IsListType(ListValueType(type).id());
}

arrow::Status UpdateColumnStats(const arrow::Array& column, bool sequence,
                                ColumnStats* stats) {
  const int64_t n = column.length();
  stats->null_count += column.null_count();
  if (n == 0 || !IsListType(column.type_id())) return arrow::Status::OK();
  std::vector<int64_t> positions(static_cast<size_t>(n) + 1);
  for (int64_t i = 0; i <= n; ++i) positions[i] = i;
  std::shared_ptr<arrow::Array> child;
  MapThroughListLevel(column, &positions, &child);
  if (sequence) {
    // Rows are lists of steps; the lengths that matter are those of the steps.
    auto steps = child->Slice(positions.front(), positions.back() - positions.front());
    return UpdateColumnStats(*steps, /*sequence=*/false, stats);
  }
  while (true) {
    stats->null_count +=
        child->Slice(positions.front(), positions.back() - positions.front())
            ->null_count();
    if (!IsListType(child->type_id())) break;
    std::shared_ptr<arrow::Array> next;
    MapThroughListLevel(*child, &positions, &next);
    child = std::move(next);
  }
  int64_t lo = stats->min_length, hi = stats->max_length, seen = 0;
  const bool all_valid = column.null_count() == 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!all_valid && column.IsNull(i)) continue;
    int64_t len = positions[i + 1] - positions[i];
    lo = std::min(lo, len);
    hi = std::max(hi, len);
    ++seen;
  }
  stats->min_length = lo;
  stats->max_length = hi;
  stats->lengths_seen += seen;
  return arrow::Status::OK();
}

arrow::Result<std::string> FeatureDtype(const arrow::DataType& type) {
  switch (type.id()) {
    case arrow::Type::LIST:
    case arrow::Type::LARGE_LIST:
    case arrow::Type::FIXED_SIZE_LIST:
      return FeatureDtype(ListValueType(type));
    default:
      break;
  }
  auto kind = FeatureKindOf(type);
  if (!kind) {
    return arrow::Status::TypeError(
        "type ", type.ToString(),
        " has no tf.train.Feature mapping (expected integers, bool, timestamp, date, "
        "float32/float64, string, binary, or lists of these)");
  }
  switch (*kind) {
    case FeatureKind::kInt64:
      return std::string("int64");
    case FeatureKind::kFloat:
      return std::string("float32");
    case FeatureKind::kBytes:
      return std::string("string");
  }
  return std::string("string");
}

arrow::Result<std::optional<std::vector<int64_t>>> ShapeFromMetadata(
    const arrow::Field& field) {
  const auto& meta = field.metadata();
  if (!meta) return std::nullopt;
  int index = meta->FindKey(kShapeMetadataKey);
  if (index < 0) return std::nullopt;
  const std::string& text = meta->value(index);
  auto invalid = [&]() {
    return arrow::Status::Invalid(
        "column '", field.name(), "': metadata ", kShapeMetadataKey, " is '", text,
        "', expected a JSON array of integers such as [101,64]");
  };
  Json parsed = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_array()) return invalid();
  std::vector<int64_t> shape;
  for (const auto& d : parsed) {
    if (!d.is_number_integer() || d.get<int64_t>() < -1) return invalid();
    shape.push_back(d.get<int64_t>());
  }
  return shape;
}

arrow::Result<std::string> BuildManifestJson(const ManifestInfo& info) {
  const WriteOptions& options = info.options;
  const arrow::Schema& schema = *info.schema;
  try {
    Json m;
    m["dlprep_version"] = kDlprepVersion;
    m["format"] = FormatName(options.format);
    if (options.format == OutputFormat::kTfRecord) {
      m["compression"] = CompressionName(options.compression);
      m["record_type"] = options.record_type == RecordType::kSequenceExample
                             ? "sequence_example"
                             : "example";
    } else if (options.format == OutputFormat::kParquet) {
      m["compression"] = info.parquet_compression;
    }
    m["rows"] = info.result.rows;
    m["bytes"] = info.result.bytes;
    Json files = Json::array();
    for (const WrittenFile& f : info.result.files) {
      files.push_back(Json{{"name", f.name}, {"rows", f.rows}, {"bytes", f.bytes}});
    }
    m["files"] = std::move(files);
    Json fields = Json::array();
    for (const auto& field : schema.fields()) {
      Json meta = Json::object();
      if (field->metadata()) {
        for (int64_t i = 0; i < field->metadata()->size(); ++i) {
          meta[field->metadata()->key(i)] = field->metadata()->value(i);
        }
      }
      fields.push_back(Json{{"name", field->name()},
                            {"type", field->type()->ToString()},
                            {"nullable", field->nullable()},
                            {"metadata", std::move(meta)}});
    }
    m["schema"] = std::move(fields);
    ARROW_ASSIGN_OR_RAISE(auto serialized, arrow::ipc::SerializeSchema(schema));
    m["arrow_schema"] = arrow::util::base64_encode(serialized->ToString());
    if (options.format == OutputFormat::kTfRecord) {
      if (info.stats.size() != static_cast<size_t>(schema.num_fields())) {
        return arrow::Status::Invalid("manifest: ", info.stats.size(),
                                      " column statistics for ", schema.num_fields(),
                                      " columns");
      }
      Json features = Json::object();
      for (int i = 0; i < schema.num_fields(); ++i) {
        const arrow::Field& field = *schema.field(i);
        auto spec = FeatureSpec(field, info.stats[i], options.record_type);
        if (!spec.ok()) {
          return spec.status().WithMessage("column '", field.name(),
                                           "': ", spec.status().message());
        }
        features[field.name()] = std::move(*spec);
      }
      m["features"] = std::move(features);
    }
    if (!info.extra_json.empty()) {
      Json job = Json::parse(info.extra_json, nullptr, /*allow_exceptions=*/false);
      if (job.is_discarded() || !job.is_object()) {
        return arrow::Status::Invalid("extra_manifest_json must be a JSON object, got: ",
                                      info.extra_json);
      }
      // The job's statistics are taken before the commit; the files and bytes it
      // wrote are the manifest's own.
      if (job.contains("files_written")) {
        job["files_written"] = static_cast<int64_t>(info.result.files.size());
      }
      if (job.contains("bytes_written")) job["bytes_written"] = info.result.bytes;
      m["job"] = std::move(job);
    }
    // Column names and metadata may hold bytes that are not UTF-8: replace, don't throw.
    return DumpJson(m, 2) + "\n";
  } catch (const std::exception& e) {
    return arrow::Status::UnknownError("building _manifest.json: ", e.what());
  }
}

namespace {
// The JSON object of `dir`/_manifest.json; `path` receives the file's path (for messages).
arrow::Result<nlohmann::json> ReadManifestObject(const std::string& dir, std::string* path) {
  *path = dir + "/_manifest.json";
  std::ifstream in(*path, std::ios::binary);
  if (!in) return arrow::Status::IOError("cannot open '", *path, "'");
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) return arrow::Status::IOError("cannot read '", *path, "'");
  nlohmann::json m = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (m.is_discarded() || !m.is_object()) {
    return arrow::Status::Invalid("'", *path, "' is not a JSON object");
  }
  return m;
}
}  // namespace

arrow::Result<std::shared_ptr<arrow::Schema>> ReadManifestSchema(const std::string& dir) {
  std::string path;
  ARROW_ASSIGN_OR_RAISE(nlohmann::json m, ReadManifestObject(dir, &path));
  auto it = m.find("arrow_schema");
  if (it == m.end() || !it->is_string()) {
    return arrow::Status::Invalid("'", path,
                                  "' has no \"arrow_schema\" string (not written by "
                                  "dlprep?)");
  }
  std::string bytes = arrow::util::base64_decode(it->get<std::string>());
  arrow::io::BufferReader reader(arrow::Buffer::FromString(std::move(bytes)));
  arrow::ipc::DictionaryMemo memo;
  auto schema = arrow::ipc::ReadSchema(&reader, &memo);
  if (!schema.ok()) {
    return arrow::Status::Invalid(
        "'", path, "': \"arrow_schema\" does not decode: ", schema.status().message());
  }
  return schema;
}

}  // namespace dlprep::io

namespace dlprep {

arrow::Result<WriteResult> ReadManifestFiles(const std::string& dir) {
  using Json = nlohmann::json;
  std::string path;
  ARROW_ASSIGN_OR_RAISE(Json m, io::ReadManifestObject(dir, &path));
  auto count = [](const Json& j, const char* key, int64_t* out) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer() || it->get<int64_t>() < 0) return false;
    *out = it->get<int64_t>();
    return true;
  };
  WriteResult result;
  if (!count(m, "rows", &result.rows) || !count(m, "bytes", &result.bytes)) {
    return arrow::Status::Invalid("'", path, "': \"rows\" and \"bytes\" must be counts");
  }
  auto files = m.find("files");
  if (files == m.end() || !files->is_array()) {
    return arrow::Status::Invalid("'", path, "' has no \"files\" list (not written by dlprep?)");
  }
  for (size_t i = 0; i < files->size(); ++i) {
    const Json& f = (*files)[i];
    WrittenFile file;
    auto name = f.is_object() ? f.find("name") : f.end();
    bool ok = f.is_object() && name != f.end() && name->is_string() &&
              count(f, "rows", &file.rows) && count(f, "bytes", &file.bytes);
    if (ok) {
      file.name = name->get<std::string>();
      // A name that leaves the folder is not one dlprep wrote.
      const std::filesystem::path p(file.name);
      ok = !file.name.empty() && p.is_relative();
      for (const auto& part : p) ok = ok && part != "..";
    }
    if (!ok) {
      return arrow::Status::Invalid("'", path, "': \"files\" entry ", i,
                                    " must have a relative \"name\" inside the folder and "
                                    "integer \"rows\" and \"bytes\"");
    }
    result.files.push_back(std::move(file));
  }
  return result;
}

}  // namespace dlprep
