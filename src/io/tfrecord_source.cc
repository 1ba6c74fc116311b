// OpenTfRecordSource: TFRecord files (one partition each) decoded into Arrow batches.
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include <arrow/buffer.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/dictionary.h>
#include <arrow/ipc/reader.h>
#include <arrow/record_batch.h>
#include <arrow/type.h>
#include <arrow/util/base64.h>
#include <nlohmann/json.hpp>

#include "dlprep/sink.h"
#include "dlprep/source.h"
#include "io/glob.h"
#include "io/tfrecord.h"

namespace dlprep {
namespace {

namespace fs = std::filesystem;
using io::ExampleDecoder;
using io::RecordReader;

constexpr size_t kMaxMessages = 100;
constexpr const char* kManifest = "_manifest.json";

bool HasGlobChars(const std::string& p) {
  return p.find_first_of("*?[") != std::string::npos;
}

struct Listing {
  std::vector<std::string> files;
  std::vector<std::string> manifest_dirs;  // directories that hold _manifest.json
};

// Files of `path` (a file, a folder's files, or a glob with `**`), sorted; names that
// start with '_' or '.' (the manifest, _SUCCESS) are skipped in folders.
arrow::Status ListPath(const std::string& path, Listing* out) {
  ARROW_ASSIGN_OR_RAISE(auto files, io::ExpandPaths({path}, /*recursive=*/false, ""));
  std::error_code ec;
  if (!HasGlobChars(path) && fs::is_directory(path, ec) &&
      fs::exists(fs::path(path) / kManifest, ec)) {
    out->manifest_dirs.push_back(path);
  } else {
    // Files of a dlprep folder (one shard per reader, as DataLoader workers and Spark
    // tasks read them) get the folder's exact schema too, when its manifest lists them.
    for (const auto& file : files) {
      fs::path dir = fs::path(file).parent_path();
      if (!fs::exists(dir / kManifest, ec)) continue;
      auto listed = ReadManifestFiles(dir.string());
      if (!listed.ok()) continue;
      const std::string name = fs::path(file).filename().string();
      for (const auto& f : listed->files) {
        if (f.name == name) {
          if (std::find(out->manifest_dirs.begin(), out->manifest_dirs.end(),
                        dir.string()) == out->manifest_dirs.end()) {
            out->manifest_dirs.push_back(dir.string());
          }
          break;
        }
      }
    }
  }
  out->files.insert(out->files.end(), files.begin(), files.end());
  return arrow::Status::OK();
}

struct Manifest {
  std::shared_ptr<arrow::Schema> schema;
  bool has_compression = false;
  TfRecordCompression compression = TfRecordCompression::kAuto;
  bool has_record_type = false;
  RecordType record_type = RecordType::kExample;
};

arrow::Result<Manifest> ReadManifest(const std::string& dir) {
  const std::string path = (fs::path(dir) / kManifest).string();
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  auto json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return arrow::Status::Invalid(path, ": not a JSON object");
  }
  Manifest m;
  auto it = json.find("arrow_schema");
  if (it != json.end()) {
    if (!it->is_string()) return arrow::Status::Invalid(path, ": \"arrow_schema\" must be a string");
    std::string ipc = arrow::util::base64_decode(it->get<std::string>());
    arrow::io::BufferReader reader(arrow::Buffer::FromString(std::move(ipc)));
    arrow::ipc::DictionaryMemo memo;
    auto schema = arrow::ipc::ReadSchema(&reader, &memo);
    if (!schema.ok()) {
      return arrow::Status::Invalid(path, ": \"arrow_schema\" is not a base64 Arrow IPC schema: ",
                                    schema.status().message());
    }
    m.schema = *schema;
  }
  it = json.find("compression");
  if (it != json.end() && it->is_string()) {
    const std::string c = it->get<std::string>();
    m.has_compression = true;
    if (c == "none") {
      m.compression = TfRecordCompression::kNone;
    } else if (c == "gzip") {
      m.compression = TfRecordCompression::kGzip;
    } else if (c == "zlib") {
      m.compression = TfRecordCompression::kZlib;
    } else {
      return arrow::Status::Invalid(path, ": \"compression\" is '", c,
                                    "', expected none, gzip or zlib");
    }
  }
  it = json.find("record_type");
  if (it != json.end() && it->is_string()) {
    const std::string t = it->get<std::string>();
    m.has_record_type = true;
    if (t == "example") {
      m.record_type = RecordType::kExample;
    } else if (t == "sequence_example") {
      m.record_type = RecordType::kSequenceExample;
    } else {
      return arrow::Status::Invalid(path, ": \"record_type\" is '", t,
                                    "', expected example or sequence_example");
    }
  }
  return m;
}

/// Dictionary columns (as a dlprep writer may have had) are read as their values.
std::shared_ptr<arrow::Schema> Readable(const std::shared_ptr<arrow::Schema>& schema) {
  arrow::FieldVector fields;
  for (const auto& f : schema->fields()) {
    if (f->type()->id() == arrow::Type::DICTIONARY) {
      fields.push_back(
          f->WithType(static_cast<const arrow::DictionaryType&>(*f->type()).value_type()));
    } else {
      fields.push_back(f);
    }
  }
  return arrow::schema(std::move(fields), schema->metadata());
}

/// Counts and messages of skipped records, shared by all partitions of a source.
struct SkipLog {
  mutable std::mutex mu;
  int64_t count = 0;  // guarded by mu
  std::vector<std::string> messages;  // guarded by mu

  void Add(const std::string& message) {
    std::lock_guard<std::mutex> lock(mu);
    ++count;
    if (messages.size() < kMaxMessages) messages.push_back(message);
  }
};

struct SourceConfig {
  TfRecordCompression compression = TfRecordCompression::kAuto;
  RecordType record_type = RecordType::kExample;
  bool skip_corrupt = false;
  int64_t batch_rows = 4096;
};

class TfRecordBatchReader final : public arrow::RecordBatchReader {
 public:
  TfRecordBatchReader(std::shared_ptr<arrow::Schema> schema, std::unique_ptr<RecordReader> reader,
                      std::unique_ptr<ExampleDecoder> decoder, SourceConfig config,
                      std::shared_ptr<SkipLog> log)
      : schema_(std::move(schema)),
        reader_(std::move(reader)),
        decoder_(std::move(decoder)),
        config_(config),
        log_(std::move(log)) {}

  std::shared_ptr<arrow::Schema> schema() const override { return schema_; }

  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* batch) override {
    *batch = nullptr;
    while (!done_ && decoder_->num_rows() < config_.batch_rows) {
      std::string_view record;
      auto next = reader_->Next(&record);
      if (!next.ok()) {
        if (!config_.skip_corrupt) return next.status();
        ARROW_ASSIGN_OR_RAISE(bool resync, reader_->SkipCorrupt());
        if (resync) {
          log_->Add(next.status().message());
        } else {
          // The rest of the file is lost; the next partition is another file.
          log_->Add(next.status().message() + "; skipped the rest of the file (" +
                    std::to_string(reader_->lost_bytes()) + " bytes)");
          done_ = true;
        }
        continue;
      }
      if (!*next) {
        done_ = true;
        break;
      }
      arrow::Status st = decoder_->Append(record);
      if (!st.ok()) {
        auto located = arrow::Status::Invalid(reader_->path(), ": record at byte offset ",
                                              reader_->record_offset(), ": ", st.message());
        if (!config_.skip_corrupt) return located;
        log_->Add(located.message());
      }
    }
    if (decoder_->num_rows() == 0) return arrow::Status::OK();
    ARROW_ASSIGN_OR_RAISE(*batch, decoder_->Flush());
    return arrow::Status::OK();
  }

 private:
  std::shared_ptr<arrow::Schema> schema_;
  std::unique_ptr<RecordReader> reader_;
  std::unique_ptr<ExampleDecoder> decoder_;
  SourceConfig config_;
  std::shared_ptr<SkipLog> log_;
  bool done_ = false;
};

class TfRecordSource final : public Source {
 public:
  TfRecordSource(std::vector<std::string> files, std::shared_ptr<arrow::Schema> schema,
                 SourceConfig config, int64_t total_bytes)
      : files_(std::move(files)),
        schema_(std::move(schema)),
        config_(config),
        total_bytes_(total_bytes),
        log_(std::make_shared<SkipLog>()) {}

  std::shared_ptr<arrow::Schema> schema() const override { return schema_; }
  int64_t num_partitions() const override { return static_cast<int64_t>(files_.size()); }
  std::string partition_name(int64_t i) const override { return files_.at(i); }

  arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> OpenPartition(
      int64_t i) const override {
    if (i < 0 || i >= num_partitions()) {
      return arrow::Status::IndexError("partition ", i, " of ", num_partitions());
    }
    ARROW_ASSIGN_OR_RAISE(auto reader, RecordReader::Open(files_[i], config_.compression));
    ARROW_ASSIGN_OR_RAISE(auto decoder, ExampleDecoder::Make(schema_, config_.record_type));
    return std::make_shared<TfRecordBatchReader>(schema_, std::move(reader), std::move(decoder),
                                                 config_, log_);
  }

  int64_t skipped_records() const override {
    std::lock_guard<std::mutex> lock(log_->mu);
    return log_->count;
  }
  std::vector<std::string> skipped_messages() const override {
    std::lock_guard<std::mutex> lock(log_->mu);
    return log_->messages;
  }
  int64_t total_bytes() const override { return total_bytes_; }

 private:
  std::vector<std::string> files_;
  std::shared_ptr<arrow::Schema> schema_;
  SourceConfig config_;
  int64_t total_bytes_;
  std::shared_ptr<SkipLog> log_;
};

arrow::Result<std::shared_ptr<arrow::Schema>> InferFromFiles(
    const std::vector<std::string>& files, const SourceConfig& config, int64_t max_records) {
  io::ExampleSchemaInferer inferer(config.record_type);
  int64_t sampled = 0;
  for (const auto& file : files) {
    if (sampled >= max_records) break;
    ARROW_ASSIGN_OR_RAISE(auto reader, RecordReader::Open(file, config.compression));
    while (sampled < max_records) {
      std::string_view rec;
      auto next = reader->Next(&rec);
      if (!next.ok()) {
        if (!config.skip_corrupt) return next.status();
        ARROW_ASSIGN_OR_RAISE(bool resync, reader->SkipCorrupt());
        if (!resync) break;
        continue;
      }
      if (!*next) break;
      arrow::Status st = inferer.Add(rec);
      if (!st.ok()) {
        // With skip_corrupt the record stays out of the sample; reading reports it.
        if (config.skip_corrupt) continue;
        return arrow::Status::Invalid("cannot infer a schema: ", file, ": record at byte offset ",
                                      reader->record_offset(), ": ", st.message(),
                                      " (pass a schema, or --skip-corrupt to skip such records)");
      }
      ++sampled;
    }
  }
  return inferer.Finish();
}

}  // namespace

arrow::Result<std::shared_ptr<Source>> OpenTfRecordSource(const TfRecordSourceOptions& options) {
  if (options.paths.empty()) return arrow::Status::Invalid("TFRecord source: no paths given");
  if (options.batch_rows <= 0) {
    return arrow::Status::Invalid("TFRecord source: batch_rows must be positive, got ",
                                  options.batch_rows);
  }
  Listing listing;
  for (const auto& p : options.paths) ARROW_RETURN_NOT_OK(ListPath(p, &listing));

  SourceConfig config;
  config.compression = options.compression;
  config.record_type = options.record_type;
  config.skip_corrupt = options.skip_corrupt;
  config.batch_rows = options.batch_rows;

  std::shared_ptr<arrow::Schema> schema = options.schema;
  if (!listing.manifest_dirs.empty()) {
    ARROW_ASSIGN_OR_RAISE(Manifest m, ReadManifest(listing.manifest_dirs.front()));
    if (schema == nullptr) schema = m.schema;
    if (m.has_compression && options.compression == TfRecordCompression::kAuto) {
      config.compression = m.compression;
    }
    if (m.has_record_type) config.record_type = m.record_type;
  }
  if (schema == nullptr) {
    if (listing.files.empty()) {
      schema = arrow::schema(arrow::FieldVector{});
    } else {
      ARROW_ASSIGN_OR_RAISE(schema, InferFromFiles(listing.files, config, options.infer_records));
    }
  }
  schema = Readable(schema);
  if (!options.columns.empty()) {
    arrow::FieldVector fields;
    for (const auto& name : options.columns) {
      auto f = schema->GetFieldByName(name);
      if (f == nullptr) {
        std::string available;
        for (const auto& g : schema->fields()) available += (available.empty() ? "" : ", ") + g->name();
        return arrow::Status::Invalid("column '", name, "' is not in the TFRecord schema (",
                                      "columns: ", available, ")");
      }
      fields.push_back(f);
    }
    schema = arrow::schema(std::move(fields));
  }
  // Fails early with a TypeError naming a column the decoder cannot fill.
  ARROW_RETURN_NOT_OK(ExampleDecoder::Make(schema, config.record_type).status());
  int64_t total = 0;
  for (const auto& f : listing.files) {
    std::error_code ec;
    auto size = fs::file_size(f, ec);
    if (!ec) total += static_cast<int64_t>(size);
  }
  return std::make_shared<TfRecordSource>(std::move(listing.files), std::move(schema), config,
                                          total);
}

}  // namespace dlprep
