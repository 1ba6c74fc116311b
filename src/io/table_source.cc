// The table source: Parquet, CSV and JSON-lines files through Arrow Dataset.
//
// Listing is ours (io::ExpandPaths, recursive, skipping names that start with '.' or
// '_' at every level as Arrow's selector_ignore_prefixes and Spark do; globs work
// too). Hive `key=value` directories below the common input directory become
// partition columns. One partition per file, except that when there are few Parquet
// files (at most kSplitMaxFiles) each row group is a partition of its own, so that a
// handful of big files still keeps every worker busy. Each partition scans only its own
// fragment, single-threaded, so rows come in file order.
//
// Parquet is decoded by parquet::arrow::FileReader's record batch reader rather than
// through the Dataset scanner: the scanner decodes a whole row group before it slices
// batches from it (tens of megabytes for a million-row group), while the batch reader
// decodes `batch_rows` rows of each column at a time, so that a run under
// --memory-limit holds one batch of a row group, not the whole of it.

#include <algorithm>
#include <filesystem>

#include <arrow/array/util.h>
#include <arrow/compute/exec.h>
#include <arrow/compute/expression.h>
#include <arrow/compute/initialize.h>
#include <arrow/dataset/api.h>
#include <arrow/dataset/plan.h>
#include <arrow/filesystem/localfs.h>
#include <arrow/record_batch.h>
#include <arrow/type.h>
#include <arrow/util/logging.h>
#include <parquet/arrow/reader.h>
#include <parquet/arrow/schema.h>
#include <parquet/metadata.h>
#include <parquet/properties.h>

#include "core/memory.h"
#include "dlprep/source.h"
#include "io/glob.h"

namespace dlprep {
namespace {

namespace ds = arrow::dataset;
namespace stdfs = std::filesystem;

const char* FormatName(TableFormat format) {
  switch (format) {
    case TableFormat::kParquet:
      return "parquet";
    case TableFormat::kCsv:
      return "csv";
    case TableFormat::kJsonLines:
      return "jsonl";
    case TableFormat::kAuto:
      break;
  }
  return "auto";
}

/// The format a file's extension stands for, or kAuto when it says nothing.
TableFormat FormatOfExtension(const std::string& path) {
  std::string ext = stdfs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (ext == ".parquet" || ext == ".pq") return TableFormat::kParquet;
  if (ext == ".csv") return TableFormat::kCsv;
  if (ext == ".json" || ext == ".jsonl" || ext == ".ndjson")
    return TableFormat::kJsonLines;
  return TableFormat::kAuto;
}

arrow::Result<TableFormat> DetectFormat(const std::vector<std::string>& files) {
  TableFormat format = TableFormat::kAuto;
  const std::string* first = nullptr;
  for (const std::string& file : files) {
    const TableFormat f = FormatOfExtension(file);
    if (f == TableFormat::kAuto) {
      return arrow::Status::Invalid(
          "cannot tell the format of '", file,
          "' from its extension (.parquet, .pq, .csv, .json, .jsonl, .ndjson); "
          "pass --input-format parquet, csv or jsonl");
    }
    if (first == nullptr) {
      format = f;
      first = &file;
    } else if (f != format) {
      return arrow::Status::Invalid(
          "inputs mix formats: '", *first, "' is ", FormatName(format), " but '", file,
          "' is ", FormatName(f), "; read them separately or pass --input-format");
    }
  }
  return format;
}

std::shared_ptr<ds::FileFormat> MakeFormat(TableFormat format) {
  switch (format) {
    case TableFormat::kParquet: {
      auto parquet = std::make_shared<ds::ParquetFileFormat>();
      // Pre-buffering fetches whole row groups of the file at once (made for object
      // stores); on local files it only raises memory. Read column chunks on demand.
      auto opts = std::make_shared<ds::ParquetFragmentScanOptions>();
      opts->arrow_reader_properties->set_pre_buffer(false);
      parquet->default_fragment_scan_options = opts;
      return parquet;
    }
    case TableFormat::kCsv:
      return std::make_shared<ds::CsvFileFormat>();
    case TableFormat::kJsonLines:
      return std::make_shared<ds::JsonFileFormat>();
    case TableFormat::kAuto:
      break;
  }
  return nullptr;
}

std::string Absolute(const std::string& path) {
  std::error_code ec;
  stdfs::path abs = stdfs::absolute(path, ec);
  return ec ? path : abs.lexically_normal().string();
}

/// The directory hive partitions are discovered below: the deepest directory common
/// to every input (a directory input itself, a file input's parent, a glob's fixed
/// prefix).
std::string PartitionBaseDir(const std::vector<std::string>& inputs) {
  std::vector<std::string> common;
  bool have = false;
  for (const std::string& input : inputs) {
    std::vector<std::string> segs;
    for (const auto& part : stdfs::path(Absolute(input))) {
      const std::string s = part.string();
      if (s == "/" || s.empty()) continue;
      if (s == "**" || io::HasGlobWildcard(s)) break;
      segs.push_back(s);
    }
    std::error_code ec;
    std::string joined;
    for (const auto& s : segs) joined += "/" + s;
    if (!segs.empty() && !stdfs::is_directory(joined, ec)) segs.pop_back();
    if (!have) {
      common = std::move(segs);
      have = true;
    } else {
      size_t n = 0;
      while (n < common.size() && n < segs.size() && common[n] == segs[n]) ++n;
      common.resize(n);
    }
  }
  std::string base;
  for (const auto& s : common) base += "/" + s;
  return base.empty() ? "/" : base;
}

/// Adds the file to an error message unless Arrow already named it.
arrow::Status NameFile(const arrow::Status& st, const std::string& path) {
  if (st.ok() || st.message().find(path) != std::string::npos) return st;
  return st.WithMessage("reading '", path, "': ", st.message());
}

/// Prefixes reading errors with the file they come from.
class FileNamingReader : public arrow::RecordBatchReader {
 public:
  FileNamingReader(std::string path, std::shared_ptr<arrow::Schema> schema,
                   std::shared_ptr<arrow::RecordBatchReader> inner)
      : path_(std::move(path)), schema_(std::move(schema)), inner_(std::move(inner)) {}

  std::shared_ptr<arrow::Schema> schema() const override { return schema_; }

  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    arrow::Status st = inner_->ReadNext(out);
    if (!st.ok()) return NameFile(st, path_);
    if (*out && !(*out)->schema()->Equals(*schema_, /*check_metadata=*/true)) {
      ARROW_ASSIGN_OR_RAISE(*out, (*out)->ReplaceSchema(schema_));
    }
    return arrow::Status::OK();
  }

  arrow::Status Close() override { return inner_->Close(); }

 private:
  const std::string path_;
  const std::shared_ptr<arrow::Schema> schema_;
  const std::shared_ptr<arrow::RecordBatchReader> inner_;
};

// Parquet column chunks are read through a stream buffered this much at a time, a page
// at a time, instead of whole (a chunk of a large row group is tens of megabytes); a
// page larger than the buffer is read in one piece. Each column being read holds one
// buffer.
constexpr int64_t kParquetBufferBytes = int64_t{64} << 10;

/// Adds the leaf columns of `field` to `out`.
void CollectLeaves(const parquet::arrow::SchemaField& field, std::vector<int>* out) {
  if (field.is_leaf()) {
    out->push_back(field.column_index);
    return;
  }
  for (const auto& child : field.children) CollectLeaves(child, out);
}

/// Reads a Parquet fragment (a file, or some of its row groups) `batch_rows` rows at a
/// time, decoding only the columns the output needs, with every buffer from
/// EnginePool(). Each batch gets the dataset's columns as the Dataset scanner would
/// give them: a hive partition column takes its value from the fragment's path, a
/// column the file lacks is null, and one whose type differs from the dataset's is
/// cast to it.
class ParquetFragmentReader : public arrow::RecordBatchReader {
 public:
  static arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> Open(
      ds::ParquetFileFragment* fragment,
      const std::shared_ptr<arrow::Schema>& dataset_schema,
      const std::shared_ptr<arrow::Schema>& schema, int64_t batch_rows) {
    auto reader = std::shared_ptr<ParquetFragmentReader>(new ParquetFragmentReader());
    reader->dataset_schema_ = dataset_schema;
    reader->schema_ = schema;
    reader->guarantee_ = fragment->partition_expression();
    // The output schema is a projection of the dataset schema (OpenTableSource checked
    // every requested column): each of its columns is there.
    for (const auto& field : schema->fields()) {
      reader->indices_.push_back(dataset_schema->GetFieldIndex(field->name()));
      ARROW_DCHECK_GE(reader->indices_.back(), 0);
    }

    ARROW_ASSIGN_OR_RAISE(auto file, fragment->source().Open());
    parquet::ReaderProperties properties(EnginePool());
    properties.enable_buffered_stream();
    properties.set_buffer_size(kParquetBufferBytes);
    parquet::ArrowReaderProperties arrow_properties;
    arrow_properties.set_batch_size(batch_rows);
    arrow_properties.set_pre_buffer(false);
    arrow_properties.set_use_threads(false);
    parquet::arrow::FileReaderBuilder builder;
    ARROW_RETURN_NOT_OK(builder.Open(std::move(file), properties, fragment->metadata()));
    builder.memory_pool(EnginePool())->properties(arrow_properties);
    ARROW_ASSIGN_OR_RAISE(reader->file_reader_, builder.Build());

    std::vector<int> row_groups = fragment->row_groups();
    if (row_groups.empty()) {
      const int n = reader->file_reader_->num_row_groups();
      for (int g = 0; g < n; ++g) row_groups.push_back(g);
    }
    std::vector<int> leaves;
    for (const auto& field : reader->file_reader_->manifest().schema_fields) {
      if (schema->GetFieldIndex(field.field->name()) >= 0) CollectLeaves(field, &leaves);
    }
    ARROW_ASSIGN_OR_RAISE(reader->batches_,
                          reader->file_reader_->GetRecordBatchReader(row_groups, leaves));
    return reader;
  }

  std::shared_ptr<arrow::Schema> schema() const override { return schema_; }

  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    *out = nullptr;
    if (batches_ == nullptr) return arrow::Status::OK();
    std::shared_ptr<arrow::RecordBatch> batch;
    ARROW_RETURN_NOT_OK(batches_->ReadNext(&batch));
    if (batch == nullptr) return arrow::Status::OK();
    // Partition values, missing columns and casts, as the Dataset scanner fills them.
    ARROW_ASSIGN_OR_RAISE(
        auto exec, arrow::compute::MakeExecBatch(*dataset_schema_, batch, guarantee_));
    std::vector<std::shared_ptr<arrow::Array>> columns;
    columns.reserve(indices_.size());
    for (int index : indices_) {
      const arrow::Datum& value = exec.values[index];
      if (value.is_scalar()) {
        ARROW_ASSIGN_OR_RAISE(auto array, arrow::MakeArrayFromScalar(
                                              *value.scalar(), batch->num_rows(),
                                              EnginePool()));
        columns.push_back(std::move(array));
      } else {
        columns.push_back(value.make_array());
      }
    }
    *out = arrow::RecordBatch::Make(schema_, batch->num_rows(), std::move(columns));
    return arrow::Status::OK();
  }

  arrow::Status Close() override {
    batches_.reset();
    file_reader_.reset();
    return arrow::Status::OK();
  }

 private:
  ParquetFragmentReader() = default;

  std::shared_ptr<arrow::Schema> dataset_schema_;
  std::shared_ptr<arrow::Schema> schema_;
  arrow::compute::Expression guarantee_;
  std::vector<int> indices_;  // of each output column in dataset_schema_
  // The batch reader reads through file_reader_, so it is declared after it (and
  // destroyed first).
  std::unique_ptr<parquet::arrow::FileReader> file_reader_;
  std::unique_ptr<arrow::RecordBatchReader> batches_;
};

// Up to this many Parquet files are split into one partition per row group (reading
// each footer once at open); beyond it files alone give the workers enough partitions
// and opening stays one listing.
constexpr size_t kSplitMaxFiles = 64;

class TableSource : public Source {
 public:
  TableSource(std::shared_ptr<arrow::Schema> dataset_schema,
              std::shared_ptr<arrow::Schema> schema,
              std::vector<std::shared_ptr<ds::FileFragment>> fragments,
              std::vector<std::string> names, std::vector<std::string> columns,
              int64_t batch_rows, int64_t total_bytes, int64_t total_rows)
      : dataset_schema_(std::move(dataset_schema)),
        schema_(std::move(schema)),
        fragments_(std::move(fragments)),
        names_(std::move(names)),
        columns_(std::move(columns)),
        batch_rows_(batch_rows),
        total_bytes_(total_bytes),
        total_rows_(total_rows) {}

  std::shared_ptr<arrow::Schema> schema() const override { return schema_; }

  int64_t num_partitions() const override {
    return static_cast<int64_t>(fragments_.size());
  }

  std::string partition_name(int64_t i) const override {
    if (i < 0 || i >= num_partitions()) return "no such partition " + std::to_string(i);
    return names_[i];
  }

  arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> OpenPartition(
      int64_t i) const override {
    if (i < 0 || i >= num_partitions()) {
      return arrow::Status::IndexError("table source: partition ", i,
                                       " out of range [0, ", num_partitions(), ")");
    }
    auto reader = Scan(i);
    if (!reader.ok()) return NameFile(reader.status(), names_[i]);
    return std::make_shared<FileNamingReader>(names_[i], schema_, *std::move(reader));
  }

  int64_t total_bytes() const override { return total_bytes_; }
  int64_t total_rows() const override { return total_rows_; }

 private:
  arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> Scan(int64_t i) const {
    if (auto* parquet = dynamic_cast<ds::ParquetFileFragment*>(fragments_[i].get())) {
      return ParquetFragmentReader::Open(parquet, dataset_schema_, schema_, batch_rows_);
    }
    auto scan_options = std::make_shared<ds::ScanOptions>();
    // Decode buffers (CSV and JSON blocks) and the batches count against the run's
    // memory budget.
    scan_options->pool = EnginePool();
    ds::ScannerBuilder builder(dataset_schema_, fragments_[i], scan_options);
    if (!columns_.empty()) ARROW_RETURN_NOT_OK(builder.Project(columns_));
    ARROW_RETURN_NOT_OK(builder.BatchSize(batch_rows_));
    ARROW_RETURN_NOT_OK(builder.UseThreads(false));
    // Arrow reads 16 batches ahead by default; with wide rows that is gigabytes per
    // partition. The executor already overlaps partitions across workers, so one batch
    // ahead keeps the disk busy without holding the file in memory.
    ARROW_RETURN_NOT_OK(builder.BatchReadahead(1));
    ARROW_RETURN_NOT_OK(builder.FragmentReadahead(1));
    ARROW_ASSIGN_OR_RAISE(auto scanner, builder.Finish());
    return scanner->ToRecordBatchReader();
  }

  const std::shared_ptr<arrow::Schema> dataset_schema_;
  const std::shared_ptr<arrow::Schema> schema_;
  const std::vector<std::shared_ptr<ds::FileFragment>> fragments_;
  const std::vector<std::string> names_;  // the file, and its row group when split
  const std::vector<std::string> columns_;
  const int64_t batch_rows_;
  const int64_t total_bytes_;
  const int64_t total_rows_;  // -1: unknown
};

}  // namespace

arrow::Result<std::shared_ptr<Source>> OpenTableSource(
    const TableSourceOptions& options) {
  // Arrow 21 registers the compute kernels (needed for projections) and the dataset
  // scan nodes only when asked.
  static const arrow::Status init_status = [] {
    ARROW_RETURN_NOT_OK(arrow::compute::Initialize());
    ds::internal::Initialize();
    return arrow::Status::OK();
  }();
  ARROW_RETURN_NOT_OK(init_status);

  if (options.paths.empty()) {
    return arrow::Status::Invalid("table source: no input paths given");
  }
  if (options.batch_rows < 1) {
    return arrow::Status::Invalid("table source: --batch-rows must be at least 1, got ",
                                  options.batch_rows);
  }
  ARROW_ASSIGN_OR_RAISE(auto listed,
                        io::ExpandPaths(options.paths, /*recursive=*/true, ""));
  std::vector<std::string> files;
  files.reserve(listed.size());
  // Folder listings skip names starting with '_' or '.', so a dlprep output folder's
  // _manifest.json and _SUCCESS are never read as data.
  for (const auto& p : listed) files.push_back(Absolute(p));
  if (files.empty()) {
    return arrow::Status::IOError(
        "table source: no data files in ", options.paths[0],
        options.paths.size() > 1 ? " and the other inputs" : "");
  }
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());

  TableFormat format = options.format;
  if (format == TableFormat::kAuto) {
    ARROW_ASSIGN_OR_RAISE(format, DetectFormat(files));
  }

  auto filesystem = std::make_shared<arrow::fs::LocalFileSystem>();
  ARROW_ASSIGN_OR_RAISE(auto infos, filesystem->GetFileInfo(files));
  int64_t total_bytes = 0;
  for (const auto& info : infos) total_bytes += std::max<int64_t>(info.size(), 0);

  ds::FileSystemFactoryOptions factory_options;
  if (options.hive_partitioning) {
    factory_options.partitioning = ds::HivePartitioning::MakeFactory();
    factory_options.partition_base_dir = PartitionBaseDir(options.paths);
  }
  ARROW_ASSIGN_OR_RAISE(auto factory, ds::FileSystemDatasetFactory::Make(
                                          filesystem, infos, MakeFormat(format),
                                          std::move(factory_options)));
  auto finished = factory->Finish();
  if (!finished.ok()) {
    return NameFile(finished.status().WithMessage(
                        "cannot read the schema of the ", FormatName(format),
                        " input: ", finished.status().message()),
                    files.front());
  }
  std::shared_ptr<ds::Dataset> dataset = *std::move(finished);
  std::shared_ptr<arrow::Schema> dataset_schema = dataset->schema();

  for (const std::string& column : options.columns) {
    if (dataset_schema->GetFieldIndex(column) < 0) {
      std::string available;
      for (const auto& f : dataset_schema->fields()) {
        available += (available.empty() ? "" : ", ") + f->name();
      }
      return arrow::Status::TypeError("column '", column, "' is not in the ",
                                      FormatName(format), " input (or is ambiguous); ",
                                      "available columns: ", available);
    }
  }

  // The schema batches will have, from the same projection a partition scan uses.
  ds::ScannerBuilder builder(dataset);
  if (!options.columns.empty()) ARROW_RETURN_NOT_OK(builder.Project(options.columns));
  ARROW_ASSIGN_OR_RAISE(auto scanner, builder.Finish());
  std::shared_ptr<arrow::Schema> schema = scanner->options()->projected_schema;

  std::vector<std::shared_ptr<ds::FileFragment>> fragments;
  ARROW_ASSIGN_OR_RAISE(auto fragment_it, dataset->GetFragments());
  for (auto maybe : fragment_it) {
    ARROW_ASSIGN_OR_RAISE(auto fragment, std::move(maybe));
    fragments.push_back(std::static_pointer_cast<ds::FileFragment>(std::move(fragment)));
  }
  std::sort(fragments.begin(), fragments.end(), [](const auto& a, const auto& b) {
    return a->source().path() < b->source().path();
  });
  std::vector<std::shared_ptr<ds::FileFragment>> parts;
  std::vector<std::string> names;
  const bool split = format == TableFormat::kParquet && fragments.size() <= kSplitMaxFiles;
  // Known when every file's Parquet metadata is read anyway (for the split).
  int64_t total_rows = split ? 0 : -1;
  for (auto& fragment : fragments) {
    const std::string path = fragment->source().path();
    auto* pq = split ? dynamic_cast<ds::ParquetFileFragment*>(fragment.get()) : nullptr;
    if (pq != nullptr) {
      arrow::Status st = pq->EnsureCompleteMetadata();
      if (!st.ok()) return NameFile(st, path);
      const int groups = pq->metadata()->num_row_groups();
      if (total_rows >= 0) total_rows += pq->metadata()->num_rows();
      if (groups > 1) {
        ARROW_ASSIGN_OR_RAISE(auto pieces, pq->SplitByRowGroup(arrow::compute::literal(true)));
        for (size_t g = 0; g < pieces.size(); ++g) {
          parts.push_back(std::static_pointer_cast<ds::FileFragment>(pieces[g]));
          names.push_back(path + " (row group " + std::to_string(g + 1) + " of " +
                          std::to_string(groups) + ")");
        }
        continue;
      }
    } else {
      total_rows = -1;
    }
    parts.push_back(std::move(fragment));
    names.push_back(path);
  }
  return std::make_shared<TableSource>(std::move(dataset_schema), std::move(schema),
                                       std::move(parts), std::move(names), options.columns,
                                       options.batch_rows, total_bytes, total_rows);
}

}  // namespace dlprep
