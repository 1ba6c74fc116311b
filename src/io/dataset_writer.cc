// DatasetWriter: sharded files in a hidden attempt folder, committed by one rename.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <system_error>

#include <arrow/io/file.h>
#include <arrow/record_batch.h>
#include <arrow/type.h>

#include "core/units.h"
#include "dlprep/sink.h"
#include "io/file_writer.h"
#include "io/manifest.h"

namespace dlprep {
namespace {

namespace fs = std::filesystem;

arrow::Status ErrnoError(int err, const std::string& what) {
  return arrow::Status::IOError(what, ": ", std::strerror(err));
}

arrow::Status SyncPath(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0));
  if (fd < 0) return ErrnoError(errno, "cannot open '" + path + "' to sync it");
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoError(err, "cannot sync '" + path + "'");
  return arrow::Status::OK();
}

arrow::Status WriteSmallFile(const std::string& path, const std::string& contents) {
  ARROW_ASSIGN_OR_RAISE(auto out, arrow::io::FileOutputStream::Open(path));
  ARROW_RETURN_NOT_OK(out->Write(contents.data(), static_cast<int64_t>(contents.size())));
  return out->Close();
}

bool SameColumns(const arrow::Schema& a, const arrow::Schema& b) {
  if (a.num_fields() != b.num_fields()) return false;
  for (int i = 0; i < a.num_fields(); ++i) {
    if (a.field(i)->name() != b.field(i)->name() ||
        !a.field(i)->type()->Equals(*b.field(i)->type())) {
      return false;
    }
  }
  return true;
}

struct OpenFile {
  std::string name;
  std::unique_ptr<io::FileWriter> writer;
  int64_t rows = 0;
};

class DatasetWriterImpl : public DatasetWriter {
 public:
  DatasetWriterImpl(WriteOptions options, std::shared_ptr<arrow::Schema> schema,
                    fs::path output, std::string uuid, std::string attempt_dir)
      : options_(std::move(options)),
        schema_(std::move(schema)),
        output_(std::move(output)),
        uuid_(std::move(uuid)),
        attempt_dir_(std::move(attempt_dir)),
        extension_(io::FileExtension(options_)),
        stats_(schema_->num_fields()),
        shard_opened_(options_.shards, false) {
    for (const auto& field : schema_->fields()) {
      sequence_.push_back(io::IsSequenceColumn(*field->type(), options_.record_type));
    }
  }

  ~DatasetWriterImpl() override { Abort(); }

  arrow::Status Write(int64_t partition,
                      const std::shared_ptr<arrow::RecordBatch>& batch) override {
    ARROW_RETURN_NOT_OK(CheckUsable("Write"));
    if (options_.shards == 0 && partition < 0) {
      return arrow::Status::Invalid("partition must be >= 0, got ", partition);
    }
    if (!SameColumns(*batch->schema(), *schema_)) {
      return arrow::Status::TypeError("a batch of partition ", partition, " has columns ",
                                      batch->schema()->ToString(),
                                      ", expected the writer's ", schema_->ToString());
    }
    arrow::Status st = DoWrite(partition, *batch);
    if (!st.ok()) failed_ = st;
    return st;
  }

  arrow::Status FinishPartition(int64_t partition) override {
    ARROW_RETURN_NOT_OK(CheckUsable("FinishPartition"));
    // With a fixed number of shards every file takes rows of every partition.
    if (options_.shards > 0) return arrow::Status::OK();
    arrow::Status st = CloseFile(partition);
    if (!st.ok()) failed_ = st;
    return st;
  }

  arrow::Result<WriteResult> Commit(const std::string& extra_manifest_json) override {
    ARROW_RETURN_NOT_OK(CheckUsable("Commit"));
    while (!open_.empty()) {
      arrow::Status st = CloseFile(open_.begin()->first);
      if (!st.ok()) {
        failed_ = st;
        return st;
      }
    }
    // shards=N promises exactly N files, so shards that got no rows are created empty.
    for (int64_t i = 0; i < options_.shards; ++i) {
      if (!shard_opened_[i]) {
        ARROW_RETURN_NOT_OK(OpenFor(i));
        ARROW_RETURN_NOT_OK(CloseFile(i));
      }
    }
    // A job that wrote no rows still leaves a dataset every reader opens: one empty
    // file carrying the schema (Parquet, CSV header; a TFRecord file of no records,
    // whose schema is in the manifest).
    if (closed_.empty()) {
      ARROW_RETURN_NOT_OK(OpenFor(0));
      ARROW_RETURN_NOT_OK(CloseFile(0));
    }
    std::sort(closed_.begin(), closed_.end(),
              [](const WrittenFile& a, const WrittenFile& b) { return a.name < b.name; });
    WriteResult result;
    result.files = closed_;
    result.rows = rows_;
    result.bytes = closed_bytes_;

    io::ManifestInfo info;
    info.options = options_;
    info.schema = schema_;
    info.result = result;
    info.stats = stats_;
    info.parquet_compression = io::ParquetCompressionName();
    info.extra_json = extra_manifest_json;
    ARROW_ASSIGN_OR_RAISE(std::string manifest, io::BuildManifestJson(info));
    const std::string manifest_path = attempt_dir_ + "/_manifest.json";
    const std::string success_path = attempt_dir_ + "/_SUCCESS";
    ARROW_RETURN_NOT_OK(WriteSmallFile(manifest_path, manifest));
    ARROW_RETURN_NOT_OK(WriteSmallFile(success_path, ""));
    for (const WrittenFile& f : result.files) {
      ARROW_RETURN_NOT_OK(SyncPath(attempt_dir_ + "/" + f.name, false));
    }
    ARROW_RETURN_NOT_OK(SyncPath(manifest_path, false));
    ARROW_RETURN_NOT_OK(SyncPath(success_path, false));
    ARROW_RETURN_NOT_OK(SyncPath(attempt_dir_, true));
    ARROW_RETURN_NOT_OK(MoveIntoPlace());
    committed_ = true;
    // The rename is durable once the parent folder is synced; the data is in place
    // whatever this returns.
    ARROW_RETURN_NOT_OK(SyncPath(output_.parent_path().string(), true));
    return result;
  }

  void Abort() override {
    if (committed_ || aborted_) return;
    aborted_ = true;
    open_.clear();  // the writers' destructors close their files quietly
    std::error_code ec;
    fs::remove_all(attempt_dir_, ec);
  }

  int64_t rows_written() const override { return rows_; }

  int64_t bytes_written() const override {
    int64_t bytes = closed_bytes_;
    for (const auto& [key, file] : open_) bytes += file.writer->bytes_written();
    return bytes;
  }

  const std::string& attempt_dir() const override { return attempt_dir_; }

 private:
  arrow::Status CheckUsable(const char* what) const {
    if (committed_) {
      return arrow::Status::Invalid(what, ": the dataset '", options_.output_dir,
                                    "' is already committed");
    }
    if (aborted_) {
      return arrow::Status::Invalid(what, ": the writer of '", options_.output_dir,
                                    "' was aborted");
    }
    if (!failed_.ok()) {
      return arrow::Status::Invalid(what, ": an earlier write to '", attempt_dir_,
                                    "' failed, so '", options_.output_dir,
                                    "' cannot be committed: ", failed_.message());
    }
    return arrow::Status::OK();
  }

  bool LimitReached(const OpenFile& file) const {
    return (options_.max_rows_per_file > 0 && file.rows >= options_.max_rows_per_file) ||
           (options_.max_bytes_per_file > 0 &&
            file.writer->bytes_written() >= options_.max_bytes_per_file);
  }

  arrow::Status DoWrite(int64_t partition, const arrow::RecordBatch& batch) {
    if (options_.format == OutputFormat::kTfRecord) {
      for (int i = 0; i < batch.num_columns(); ++i) {
        ARROW_RETURN_NOT_OK(
            io::UpdateColumnStats(*batch.column(i), sequence_[i], &stats_[i]));
      }
    }
    const int64_t n = batch.num_rows();
    for (int64_t offset = 0; offset < n;) {
      int64_t length = std::min(options_.rows_per_slice, n - offset);
      int64_t key = partition;
      if (options_.shards > 0) {
        key = next_shard_;
        next_shard_ = (next_shard_ + 1) % options_.shards;
      } else {
        auto it = open_.find(key);
        if (it != open_.end() && LimitReached(it->second)) {
          ARROW_RETURN_NOT_OK(CloseFile(key));
        }
      }
      auto it = open_.find(key);
      if (it == open_.end()) {
        ARROW_RETURN_NOT_OK(OpenFor(key));
        it = open_.find(key);
      }
      OpenFile& file = it->second;
      if (options_.shards == 0 && options_.max_rows_per_file > 0) {
        length = std::min(length, options_.max_rows_per_file - file.rows);
      }
      ARROW_RETURN_NOT_OK(file.writer->Write(*batch.Slice(offset, length)));
      file.rows += length;
      rows_ += length;
      offset += length;
    }
    return arrow::Status::OK();
  }

  // Opens the next file of partition `key` (or shard `key`).
  arrow::Status OpenFor(int64_t key) {
    int64_t index = 0;
    if (options_.shards > 0) {
      shard_opened_[key] = true;
    } else {
      index = next_file_[key]++;
    }
    char prefix[64];
    std::snprintf(prefix, sizeof(prefix), "part-%05lld-", static_cast<long long>(key));
    char suffix[32];
    std::snprintf(suffix, sizeof(suffix), "-c%03lld.", static_cast<long long>(index));
    OpenFile file;
    file.name = prefix + uuid_ + suffix + extension_;
    ARROW_ASSIGN_OR_RAISE(file.writer, io::OpenFileWriter(attempt_dir_ + "/" + file.name,
                                                          schema_, options_));
    open_.emplace(key, std::move(file));
    return arrow::Status::OK();
  }

  arrow::Status CloseFile(int64_t key) {
    auto it = open_.find(key);
    if (it == open_.end()) return arrow::Status::OK();
    OpenFile file = std::move(it->second);
    open_.erase(it);
    ARROW_RETURN_NOT_OK(file.writer->Close());
    const std::string path = attempt_dir_ + "/" + file.name;
    std::error_code ec;
    auto size = fs::file_size(path, ec);
    if (ec) {
      return arrow::Status::IOError("cannot stat '", path,
                                    "' after writing it: ", ec.message());
    }
    closed_.push_back({file.name, file.rows, static_cast<int64_t>(size)});
    closed_bytes_ += static_cast<int64_t>(size);
    return arrow::Status::OK();
  }

  // Renames the attempt folder onto the output folder (see the class comment).
  arrow::Status MoveIntoPlace() {
    const std::string out = output_.string();
    if (::rename(attempt_dir_.c_str(), out.c_str()) == 0) return arrow::Status::OK();
    int err = errno;
    if (err != ENOTEMPTY && err != EEXIST) {
      return ErrnoError(err, "cannot move '" + attempt_dir_ + "' to '" + out + "'");
    }
    if (!options_.overwrite) {
      return arrow::Status::Invalid("output folder '", options_.output_dir,
                                    "' is not empty (it was filled while the job ran); "
                                    "pass --overwrite to replace it");
    }
    const std::string old = (output_.parent_path() /
                             ("." + output_.filename().string() + ".dlprep-old-" + uuid_))
                                .string();
    if (::rename(out.c_str(), old.c_str()) != 0) {
      return ErrnoError(
          errno, "cannot move the old output '" + out + "' aside to '" + old + "'");
    }
    if (::rename(attempt_dir_.c_str(), out.c_str()) != 0) {
      err = errno;
      (void)::rename(old.c_str(), out.c_str());
      return ErrnoError(err, "cannot move '" + attempt_dir_ + "' to '" + out + "'");
    }
    std::error_code ec;
    fs::remove_all(old, ec);
    return arrow::Status::OK();
  }

  const WriteOptions options_;
  const std::shared_ptr<arrow::Schema> schema_;
  const fs::path output_;  // absolute, normalized
  const std::string uuid_;
  const std::string attempt_dir_;
  const std::string extension_;
  std::vector<bool> sequence_;
  std::vector<io::ColumnStats> stats_;
  std::map<int64_t, OpenFile> open_;      // by partition, or by shard
  std::map<int64_t, int64_t> next_file_;  // next c<file> number per partition
  std::vector<bool> shard_opened_;
  int64_t next_shard_ = 0;
  std::vector<WrittenFile> closed_;
  int64_t rows_ = 0;
  int64_t closed_bytes_ = 0;
  arrow::Status failed_;
  bool committed_ = false;
  bool aborted_ = false;
};

arrow::Status ValidateOptions(const WriteOptions& o) {
  if (o.output_dir.empty()) {
    return arrow::Status::Invalid("no output folder given (output_dir is empty)");
  }
  if (o.shards < 0)
    return arrow::Status::Invalid("--shards must be >= 0, got ", o.shards);
  if (o.max_rows_per_file < 0) {
    return arrow::Status::Invalid("--max-rows-per-file must be >= 0, got ",
                                  o.max_rows_per_file);
  }
  if (o.max_bytes_per_file < 0) {
    return arrow::Status::Invalid("--max-bytes-per-file must be >= 0, got ",
                                  o.max_bytes_per_file);
  }
  if (o.rows_per_slice <= 0) {
    return arrow::Status::Invalid("rows_per_slice must be > 0, got ", o.rows_per_slice);
  }
  if (o.shards > 0 && (o.max_rows_per_file > 0 || o.max_bytes_per_file > 0)) {
    return arrow::Status::Invalid(
        "--shards fixes the number of files, so it cannot be combined with "
        "--max-rows-per-file or --max-bytes-per-file");
  }
  if (o.format != OutputFormat::kTfRecord &&
      (o.compression == TfRecordCompression::kGzip ||
       o.compression == TfRecordCompression::kZlib)) {
    return arrow::Status::Invalid(
        "--compression gzip/zlib applies to tfrecord output only");
  }
  return arrow::Status::OK();
}

}  // namespace

arrow::Result<std::unique_ptr<DatasetWriter>> DatasetWriter::Open(
    const WriteOptions& options, std::shared_ptr<arrow::Schema> schema) {
  ARROW_RETURN_NOT_OK(ValidateOptions(options));
  if (!schema) return arrow::Status::Invalid("DatasetWriter::Open: no schema given");
  ARROW_RETURN_NOT_OK(io::CheckWritable(*schema, options));

  std::error_code ec;
  fs::path output = fs::absolute(fs::path(options.output_dir), ec).lexically_normal();
  if (ec) {
    return arrow::Status::IOError("output folder '", options.output_dir,
                                  "': ", ec.message());
  }
  if (output.filename().empty()) output = output.parent_path();
  if (output.filename().empty() || output == output.root_path()) {
    return arrow::Status::Invalid("output folder '", options.output_dir,
                                  "' has no name; give a folder such as out/train");
  }
  auto st = fs::symlink_status(output, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return arrow::Status::IOError("output folder '", options.output_dir,
                                  "': ", ec.message());
  }
  if (fs::exists(st)) {
    if (!fs::is_directory(st)) {
      return arrow::Status::IOError("output folder '", options.output_dir,
                                    "' exists and is not a folder");
    }
    bool empty = fs::is_empty(output, ec);
    if (ec) {
      return arrow::Status::IOError("output folder '", options.output_dir,
                                    "': ", ec.message());
    }
    if (!empty && !options.overwrite) {
      return arrow::Status::Invalid("output folder '", options.output_dir,
                                    "' exists and is not empty; pass --overwrite to "
                                    "replace it");
    }
  }
  const fs::path parent = output.parent_path();
  fs::create_directories(parent, ec);
  if (ec) {
    return arrow::Status::IOError("cannot create the folder '", parent.string(),
                                  "': ", ec.message());
  }
  std::string uuid = RandomUuid();
  std::string attempt =
      (parent / ("." + output.filename().string() + ".dlprep-attempt-" + uuid)).string();
  if (::mkdir(attempt.c_str(), 0777) != 0) {
    return ErrnoError(errno, "cannot create the attempt folder '" + attempt + "'");
  }
  return std::make_unique<DatasetWriterImpl>(
      options, std::move(schema), std::move(output), std::move(uuid), std::move(attempt));
}

}  // namespace dlprep
