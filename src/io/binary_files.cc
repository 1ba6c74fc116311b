// The `binary_files` source: Spark's `binaryFile` data source over local files.
//
// Differences from Spark, on purpose: `path` is a plain absolute path (Spark writes
// `file:/...` URIs), and partitions are ranges of the sorted file list closed by
// count and bytes (Spark packs files into splits by size). A partition closes before
// a file that would push it past bytes_per_partition (a larger file is a partition of
// its own); the listed sizes count even with read_content=false, so partitions do not
// depend on that option. Batches close the same way at bytes_per_batch (content only).

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>

#include <arrow/array/data.h>
#include <arrow/array/util.h>
#include <arrow/buffer.h>
#include <arrow/buffer_builder.h>
#include <arrow/memory_pool.h>
#include <arrow/record_batch.h>
#include <arrow/type.h>

#include "core/memory.h"
#include "dlprep/source.h"
#include "io/glob.h"

namespace dlprep {
namespace {

namespace fs = std::filesystem;

/// One listed file; `size` and `mtime_us` are what stat() said at listing time.
struct ListedFile {
  std::string path;
  int64_t size;
  int64_t mtime_us;
};

/// Everything a reader needs; immutable after OpenBinaryFiles, shared by readers.
struct Listing {
  std::vector<ListedFile> files;
  /// Partition p covers files [starts[p], starts[p + 1]).
  std::vector<int64_t> starts;
  std::shared_ptr<arrow::Schema> schema;
  bool read_content;
  int64_t batch_rows;
  int64_t bytes_per_batch;
  int64_t total_bytes;
};

constexpr int64_t kMaxBinaryValue = std::numeric_limits<int32_t>::max();

std::shared_ptr<arrow::Schema> BinaryFilesSchema() {
  return arrow::schema(
      {arrow::field("path", arrow::utf8(), /*nullable=*/false),
       arrow::field("modificationTime", arrow::timestamp(arrow::TimeUnit::MICRO, "UTC"),
                    /*nullable=*/false),
       arrow::field("length", arrow::int64(), /*nullable=*/false),
       arrow::field("content", arrow::binary(), /*nullable=*/true)});
}

std::string ErrnoText(int err) { return std::strerror(err); }

// Reads exactly `size` bytes of `path` into `dst`. The file must still have the size
// it had when it was listed.
arrow::Status ReadWholeFile(const std::string& path, int64_t size, uint8_t* dst) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) {
      return arrow::Status::IOError("file '", path,
                                    "' was listed but no longer exists when read");
    }
    return arrow::Status::IOError("cannot open file '", path, "': ", ErrnoText(err));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    return arrow::Status::IOError("cannot stat file '", path, "': ", ErrnoText(errno));
  }
  if (st.st_size != size) {
    return arrow::Status::IOError("file '", path, "' changed size since it was listed (",
                                  size, " bytes then, ", st.st_size, " bytes now)");
  }
  if (size >= (int64_t{1} << 20)) ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  int64_t done = 0;
  while (done < size) {
    const ssize_t n = ::read(fd, dst + done, static_cast<size_t>(size - done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return arrow::Status::IOError("cannot read file '", path, "' at byte ", done, ": ",
                                    ErrnoText(errno));
    }
    if (n == 0) {
      return arrow::Status::IOError("file '", path, "' changed size while being read (",
                                    size, " bytes listed, ended after ", done, ")");
    }
    done += n;
  }
  return arrow::Status::OK();
}

// Appends the whole of `path` to `data` (open, fstat, read to the end). On failure,
// returns the reason and leaves `data` as it was; "" on success. A file larger than
// `room` bytes when opened is not read, and *too_big set.
std::string AppendWholeFile(const std::string& path, int64_t room, arrow::BufferBuilder* data,
                            bool* too_big) {
  *too_big = false;
  // O_NONBLOCK: opening a FIFO does not wait for a writer (it is refused below);
  // reads of regular files ignore the flag.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return ErrnoText(errno);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoText(errno);
  if (S_ISDIR(st.st_mode)) return ErrnoText(EISDIR);
  if (!S_ISREG(st.st_mode)) return "not a regular file";
  if (st.st_size > kMaxBinaryValue) {
    return "larger than 2 GiB - 1 bytes (" + std::to_string(st.st_size) + " bytes)";
  }
  if (st.st_size > room) {
    *too_big = true;
    return "";
  }
  const int64_t start = data->length();
  // Read to the end, not to the size fstat gave: a file that grows while it is read
  // is read as it is then (as Python's open().read() does).
  int64_t want = std::max<int64_t>(st.st_size, 1);
  while (true) {
    if (data->capacity() - data->length() < want) {
      if (!data->Reserve(want).ok()) {
        data->Rewind(start);
        return "out of memory";
      }
    }
    const ssize_t n = ::read(fd, data->mutable_data() + data->length(),
                             static_cast<size_t>(data->capacity() - data->length()));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      data->Rewind(start);
      return ErrnoText(err);
    }
    if (n == 0) break;
    data->UnsafeAdvance(n);
    if (data->length() > kMaxBinaryValue) {  // the batch's int32 offsets, not only this file
      data->Rewind(start);
      return "grew past 2 GiB - 1 bytes (with the files before it) while being read";
    }
    want = 64 << 10;
  }
  return "";
}

class BinaryFilesReader : public arrow::RecordBatchReader {
 public:
  BinaryFilesReader(std::shared_ptr<const Listing> listing, int64_t begin, int64_t end)
      : listing_(std::move(listing)), next_(begin), end_(end) {}

  std::shared_ptr<arrow::Schema> schema() const override { return listing_->schema; }

  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    *out = nullptr;
    if (next_ >= end_) return arrow::Status::OK();
    const auto& files = listing_->files;
    // The batch takes files until batch_rows, or until the next file would push the
    // content past bytes_per_batch (a batch always takes at least one file).
    const int64_t begin = next_;
    int64_t end = begin;
    int64_t content_bytes = 0;
    int64_t path_bytes = 0;
    while (end < end_ && end - begin < listing_->batch_rows) {
      const int64_t size = files[end].size;
      if (listing_->read_content && end > begin &&
          content_bytes + size > listing_->bytes_per_batch) {
        break;
      }
      content_bytes += size;
      path_bytes += static_cast<int64_t>(files[end].path.size());
      ++end;
    }
    const int64_t n = end - begin;
    if (path_bytes > kMaxBinaryValue) {
      return arrow::Status::Invalid("paths of files ", begin, "-", end - 1,
                                    " exceed 2 GiB in one batch; lower batch_rows");
    }

    arrow::MemoryPool* pool = EnginePool();
    ARROW_ASSIGN_OR_RAISE(auto path_offsets, arrow::AllocateBuffer((n + 1) * 4, pool));
    ARROW_ASSIGN_OR_RAISE(auto path_data, arrow::AllocateBuffer(path_bytes, pool));
    ARROW_ASSIGN_OR_RAISE(auto mtimes, arrow::AllocateBuffer(n * 8, pool));
    ARROW_ASSIGN_OR_RAISE(auto lengths, arrow::AllocateBuffer(n * 8, pool));
    auto* po = reinterpret_cast<int32_t*>(path_offsets->mutable_data());
    uint8_t* pd = path_data->mutable_data();
    auto* mt = reinterpret_cast<int64_t*>(mtimes->mutable_data());
    auto* len = reinterpret_cast<int64_t*>(lengths->mutable_data());
    int32_t pos = 0;
    for (int64_t i = 0; i < n; ++i) {
      const ListedFile& f = files[begin + i];
      po[i] = pos;
      std::memcpy(pd + pos, f.path.data(), f.path.size());
      pos += static_cast<int32_t>(f.path.size());
      mt[i] = f.mtime_us;
      len[i] = f.size;
    }
    po[n] = pos;

    std::shared_ptr<arrow::Array> content;
    if (listing_->read_content) {
      ARROW_ASSIGN_OR_RAISE(auto offsets, arrow::AllocateBuffer((n + 1) * 4, pool));
      ARROW_ASSIGN_OR_RAISE(auto values, arrow::AllocateBuffer(content_bytes, pool));
      auto* co = reinterpret_cast<int32_t*>(offsets->mutable_data());
      uint8_t* cv = values->mutable_data();
      int64_t off = 0;
      for (int64_t i = 0; i < n; ++i) {
        const ListedFile& f = files[begin + i];
        co[i] = static_cast<int32_t>(off);
        ARROW_RETURN_NOT_OK(ReadWholeFile(f.path, f.size, cv + off));
        off += f.size;
      }
      co[n] = static_cast<int32_t>(off);
      content = arrow::MakeArray(arrow::ArrayData::Make(
          arrow::binary(), n, {nullptr, std::move(offsets), std::move(values)},
          /*null_count=*/0));
    } else {
      ARROW_ASSIGN_OR_RAISE(content, arrow::MakeArrayOfNull(arrow::binary(), n, pool));
    }

    const auto& fields = listing_->schema->fields();
    auto path = arrow::MakeArray(arrow::ArrayData::Make(
        fields[0]->type(), n, {nullptr, std::move(path_offsets), std::move(path_data)},
        0));
    auto mtime = arrow::MakeArray(
        arrow::ArrayData::Make(fields[1]->type(), n, {nullptr, std::move(mtimes)}, 0));
    auto length = arrow::MakeArray(
        arrow::ArrayData::Make(fields[2]->type(), n, {nullptr, std::move(lengths)}, 0));
    *out = arrow::RecordBatch::Make(
        listing_->schema, n,
        {std::move(path), std::move(mtime), std::move(length), std::move(content)});
    next_ = end;
    return arrow::Status::OK();
  }

 private:
  const std::shared_ptr<const Listing> listing_;
  int64_t next_;
  const int64_t end_;
};

class BinaryFilesSource : public Source {
 public:
  explicit BinaryFilesSource(std::shared_ptr<const Listing> listing)
      : listing_(std::move(listing)) {}

  std::shared_ptr<arrow::Schema> schema() const override { return listing_->schema; }

  int64_t num_partitions() const override {
    return static_cast<int64_t>(listing_->starts.size()) - 1;
  }

  std::string partition_name(int64_t i) const override {
    if (i < 0 || i >= num_partitions()) return "no such partition " + std::to_string(i);
    const int64_t begin = listing_->starts[i];
    const int64_t last = listing_->starts[i + 1] - 1;
    std::string name = "files " + std::to_string(begin) + "-" + std::to_string(last) +
                       " of " + std::to_string(listing_->files.size()) + " (" +
                       listing_->files[begin].path;
    if (last > begin) name += " ... " + listing_->files[last].path;
    return name + ")";
  }

  arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> OpenPartition(
      int64_t i) const override {
    if (i < 0 || i >= num_partitions()) {
      return arrow::Status::IndexError("binary_files: partition ", i,
                                       " out of range [0, ", num_partitions(), ")");
    }
    return std::make_shared<BinaryFilesReader>(listing_, listing_->starts[i],
                                               listing_->starts[i + 1]);
  }

  int64_t total_bytes() const override { return listing_->total_bytes; }

 private:
  const std::shared_ptr<const Listing> listing_;
};

arrow::Status CheckPositive(int64_t value, const char* option) {
  if (value < 1) {
    return arrow::Status::Invalid("binary_files: ", option, " must be at least 1, got ",
                                  value);
  }
  return arrow::Status::OK();
}

}  // namespace

arrow::Result<std::shared_ptr<Source>> OpenBinaryFiles(
    const BinaryFilesOptions& options) {
  if (options.paths.empty()) {
    return arrow::Status::Invalid("binary_files: no input paths given");
  }
  ARROW_RETURN_NOT_OK(
      CheckPositive(options.files_per_partition, "--files-per-partition"));
  ARROW_RETURN_NOT_OK(
      CheckPositive(options.bytes_per_partition, "--bytes-per-partition"));
  ARROW_RETURN_NOT_OK(CheckPositive(options.batch_rows, "--batch-rows"));
  ARROW_RETURN_NOT_OK(CheckPositive(options.bytes_per_batch, "--bytes-per-batch"));
  if (options.max_file_size < 0 || options.max_file_size > kMaxBinaryValue) {
    return arrow::Status::Invalid(
        "binary_files: --max-file-size must be between 0 and ", kMaxBinaryValue,
        " bytes (the most one binary value holds), got ", options.max_file_size);
  }

  ARROW_ASSIGN_OR_RAISE(
      auto paths, io::ExpandPaths(options.paths, options.recursive, options.name_filter));

  auto listing = std::make_shared<Listing>();
  listing->schema = BinaryFilesSchema();
  listing->read_content = options.read_content;
  listing->batch_rows = options.batch_rows;
  // One batch's content must fit 32-bit binary offsets.
  listing->bytes_per_batch = std::min(options.bytes_per_batch, kMaxBinaryValue);
  listing->files.reserve(paths.size());
  for (auto& p : paths) {
    std::string path = std::move(p);
    if (path.empty() || path[0] != '/') {
      std::error_code ec;
      fs::path abs = fs::absolute(path, ec);
      if (ec) {
        return arrow::Status::IOError("cannot make '", path,
                                      "' absolute: ", ec.message());
      }
      path = abs.lexically_normal().string();
    }
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      return arrow::Status::IOError("cannot stat file '", path, "': ", ErrnoText(errno));
    }
    if (st.st_size > options.max_file_size) {
      return arrow::Status::Invalid(
          "file '", path, "' is ", st.st_size, " bytes, larger than --max-file-size (",
          options.max_file_size, " bytes); raise the limit or filter the file out");
    }
    const int64_t mtime_us = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000 +
                             static_cast<int64_t>(st.st_mtim.tv_nsec) / 1000;
    listing->files.push_back(
        {std::move(path), static_cast<int64_t>(st.st_size), mtime_us});
  }
  // Relative and absolute patterns may have named the same file.
  auto by_path = [](const ListedFile& a, const ListedFile& b) { return a.path < b.path; };
  if (!std::is_sorted(listing->files.begin(), listing->files.end(), by_path)) {
    std::sort(listing->files.begin(), listing->files.end(), by_path);
  }
  listing->files.erase(std::unique(listing->files.begin(), listing->files.end(),
                                   [](const ListedFile& a, const ListedFile& b) {
                                     return a.path == b.path;
                                   }),
                       listing->files.end());

  // A partition closes at files_per_partition files, or before a file that would push
  // it past bytes_per_partition (a larger file is a partition of its own).
  listing->total_bytes = 0;
  listing->starts.push_back(0);
  int64_t count = 0;
  int64_t bytes = 0;
  const auto num_files = static_cast<int64_t>(listing->files.size());
  for (int64_t i = 0; i < num_files; ++i) {
    const int64_t size = listing->files[i].size;
    if (count > 0 && (count >= options.files_per_partition ||
                      bytes + size > options.bytes_per_partition)) {
      listing->starts.push_back(i);
      count = 0;
      bytes = 0;
    }
    ++count;
    bytes += size;
    listing->total_bytes += size;
  }
  if (num_files > 0) listing->starts.push_back(num_files);
  return std::make_shared<BinaryFilesSource>(std::move(listing));
}

arrow::Result<FileContents> ReadFileContents(
    const std::vector<std::optional<std::string>>& paths, int64_t begin,
    int64_t max_bytes) {
  const int64_t total = static_cast<int64_t>(paths.size());
  if (begin < 0 || begin > total) {
    return arrow::Status::IndexError("ReadFileContents: begin ", begin, " is outside [0, ",
                                     total, "]");
  }
  max_bytes = std::min<int64_t>(std::max<int64_t>(max_bytes, 0), kMaxBinaryValue);
  arrow::MemoryPool* pool = EnginePool();
  arrow::BufferBuilder data(pool);
  arrow::TypedBufferBuilder<int32_t> offsets(pool);
  arrow::TypedBufferBuilder<bool> valid(pool);
  FileContents out;
  ARROW_RETURN_NOT_OK(offsets.Append(0));
  int64_t i = begin;
  int64_t nulls = 0;
  for (; i < total; ++i) {
    bool ok = false;
    if (paths[i].has_value()) {
      // The first file of a call is always read (up to Arrow's limit).
      const int64_t room = i == begin ? kMaxBinaryValue : max_bytes - data.length();
      bool too_big = false;
      std::string why = AppendWholeFile(*paths[i], room, &data, &too_big);
      if (too_big) break;
      if (why.empty()) {
        ok = true;
      } else {
        out.errors.emplace_back(i, std::move(why));
      }
    }
    ARROW_RETURN_NOT_OK(offsets.Append(static_cast<int32_t>(data.length())));
    ARROW_RETURN_NOT_OK(valid.Append(ok));
    if (!ok) ++nulls;
  }
  const int64_t n = i - begin;
  std::shared_ptr<arrow::Buffer> bitmap;
  if (nulls > 0) ARROW_RETURN_NOT_OK(valid.Finish(&bitmap));
  std::shared_ptr<arrow::Buffer> offset_buffer, data_buffer;
  ARROW_RETURN_NOT_OK(offsets.Finish(&offset_buffer));
  ARROW_RETURN_NOT_OK(data.Finish(&data_buffer, /*shrink_to_fit=*/false));
  out.content = arrow::MakeArray(arrow::ArrayData::Make(
      arrow::binary(), n, {std::move(bitmap), std::move(offset_buffer), std::move(data_buffer)},
      nulls));
  out.end = i;
  return out;
}

}  // namespace dlprep
