#include "exec/grouped.h"

#include <algorithm>
#include <array>
#include <limits>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <string_view>
#include <utility>

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <arrow/array.h>
#include <arrow/builder.h>
#include <arrow/buffer.h>
#include <arrow/compute/api_vector.h>
#include <arrow/compute/initialize.h>
#include <arrow/datum.h>
#include <arrow/io/file.h>
#include <arrow/ipc/reader.h>
#include <arrow/ipc/writer.h>
#include <arrow/memory_pool.h>
#include <arrow/record_batch.h>
#include <arrow/scalar.h>
#include <arrow/table.h>
#include <arrow/type.h>
#include <arrow/type_traits.h>
#include <arrow/util/byte_size.h>

#include "core/memory.h"
#include "core/units.h"
#include "exec/executor.h"

namespace dlprep::exec {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kNullHash = 0x6a09e667f3bcc908ULL;
constexpr int64_t kOutputBatchRows = 65536;
constexpr int kPartitionBits = 23;  // partitions < 2^23, rows per partition < 2^40
constexpr int kRowBits = 40;
constexpr auto kWaitSlice = std::chrono::milliseconds(20);

// Spill folders are "dlprep-spill-<pid>-<uuid>"; the run holds an exclusive flock() on
// the lock file inside for as long as the folder exists.
constexpr char kSpillPrefix[] = "dlprep-spill-";
constexpr char kSpillLockFile[] = ".lock";
constexpr size_t kUuidLength = 36;

// The folder spill folders go in: `spill_dir`, else $TMPDIR, else /tmp.
std::string SpillParent(const std::string& spill_dir) {
  if (!spill_dir.empty()) return spill_dir;
  const char* tmp = std::getenv("TMPDIR");
  return (tmp != nullptr && *tmp != '\0') ? tmp : "/tmp";
}

// The PID in a spill folder's name, or -1 when the name is not "dlprep-spill-<pid>-<uuid>"
// (an older dlprep's "dlprep-spill-<uuid>", anything else).
int64_t SpillFolderPid(std::string_view name) {
  const std::string_view prefix = kSpillPrefix;
  if (name.substr(0, prefix.size()) != prefix) return -1;
  name.remove_prefix(prefix.size());
  const size_t dash = name.find('-');
  if (dash == std::string_view::npos || name.size() - dash - 1 != kUuidLength) return -1;
  int64_t pid = 0;
  auto [end, ec] = std::from_chars(name.data(), name.data() + dash, pid);
  if (ec != std::errc() || end != name.data() + dash || pid <= 0) return -1;
  return pid;
}

// Whether no process `pid` exists (here, in this PID namespace). EPERM: it exists but
// belongs to another user.
bool ProcessIsGone(int64_t pid) {
  if (pid > std::numeric_limits<pid_t>::max()) return true;
  return ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

// The 64-bit finalizer of MurmurHash3: a bijective bit mixer.
inline uint64_t Mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

uint64_t HashBytes(std::string_view v) {
  const auto* p = reinterpret_cast<const uint8_t*>(v.data());
  size_t n = v.size();
  uint64_t h = 0x9e3779b97f4a7c15ULL ^ n;
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = Mix64(h ^ w);
    p += 8;
    n -= 8;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, p, n);
  return Mix64(h ^ tail ^ (uint64_t{n} << 56));
}

inline void Combine(uint64_t* h, uint64_t v, bool first) {
  *h = first ? v : Mix64(*h ^ (v + 0x9e3779b97f4a7c15ULL + (*h << 6) + (*h >> 2)));
}

template <typename ArrayT>
void HashIntegers(const arrow::Array& array, std::vector<uint64_t>* h, bool first) {
  const auto& a = static_cast<const ArrayT&>(array);
  for (int64_t i = 0; i < a.length(); ++i) {
    uint64_t v = a.IsNull(i) ? kNullHash : Mix64(static_cast<uint64_t>(a.Value(i)));
    Combine(&(*h)[i], v, first);
  }
}

template <typename ArrayT>
void HashStrings(const arrow::Array& array, std::vector<uint64_t>* h, bool first) {
  const auto& a = static_cast<const ArrayT&>(array);
  for (int64_t i = 0; i < a.length(); ++i) {
    uint64_t v = a.IsNull(i) ? kNullHash : HashBytes(a.GetView(i));
    Combine(&(*h)[i], v, first);
  }
}

// Three-way comparison of row i of `a` and row j of `b` (same type); nulls after every
// value and NaN after every number, as SortIndices with NullPlacement::AtEnd orders.
using CellCompare =
    std::function<int(const arrow::Array&, int64_t, const arrow::Array&, int64_t)>;

template <typename ArrayT>
CellCompare ValueCompare() {
  return [](const arrow::Array& a, int64_t i, const arrow::Array& b, int64_t j) {
    bool na = a.IsNull(i), nb = b.IsNull(j);
    if (na || nb) return na == nb ? 0 : (na ? 1 : -1);
    auto x = static_cast<const ArrayT&>(a).Value(i);
    auto y = static_cast<const ArrayT&>(b).Value(j);
    if constexpr (std::is_floating_point_v<decltype(x)>) {
      bool xn = x != x, yn = y != y;
      if (xn || yn) return xn == yn ? 0 : (xn ? 1 : -1);
    }
    return x < y ? -1 : (y < x ? 1 : 0);
  };
}

template <typename ArrayT>
CellCompare ViewCompare() {
  return [](const arrow::Array& a, int64_t i, const arrow::Array& b, int64_t j) {
    bool na = a.IsNull(i), nb = b.IsNull(j);
    if (na || nb) return na == nb ? 0 : (na ? 1 : -1);
    int c = static_cast<const ArrayT&>(a).GetView(i).compare(
        static_cast<const ArrayT&>(b).GetView(j));
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  };
}

// A comparator for columns of `type`; null for types grouping cannot sort.
CellCompare MakeCompare(const arrow::DataType& type) {
  switch (type.id()) {
    case arrow::Type::INT8: return ValueCompare<arrow::Int8Array>();
    case arrow::Type::INT16: return ValueCompare<arrow::Int16Array>();
    case arrow::Type::INT32: return ValueCompare<arrow::Int32Array>();
    case arrow::Type::INT64: return ValueCompare<arrow::Int64Array>();
    case arrow::Type::UINT8: return ValueCompare<arrow::UInt8Array>();
    case arrow::Type::UINT16: return ValueCompare<arrow::UInt16Array>();
    case arrow::Type::UINT32: return ValueCompare<arrow::UInt32Array>();
    case arrow::Type::UINT64: return ValueCompare<arrow::UInt64Array>();
    case arrow::Type::FLOAT: return ValueCompare<arrow::FloatArray>();
    case arrow::Type::DOUBLE: return ValueCompare<arrow::DoubleArray>();
    case arrow::Type::DATE32: return ValueCompare<arrow::Date32Array>();
    case arrow::Type::DATE64: return ValueCompare<arrow::Date64Array>();
    case arrow::Type::TIMESTAMP: return ValueCompare<arrow::TimestampArray>();
    case arrow::Type::TIME32: return ValueCompare<arrow::Time32Array>();
    case arrow::Type::TIME64: return ValueCompare<arrow::Time64Array>();
    case arrow::Type::DURATION: return ValueCompare<arrow::DurationArray>();
    case arrow::Type::BOOL: return ValueCompare<arrow::BooleanArray>();
    case arrow::Type::STRING: return ViewCompare<arrow::StringArray>();
    case arrow::Type::BINARY: return ViewCompare<arrow::BinaryArray>();
    case arrow::Type::LARGE_STRING: return ViewCompare<arrow::LargeStringArray>();
    case arrow::Type::LARGE_BINARY: return ViewCompare<arrow::LargeBinaryArray>();
    default: return nullptr;
  }
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out = "[";
  for (size_t i = 0; i < names.size(); ++i) out += (i ? ", '" : "'") + names[i] + "'";
  return out + "]";
}

// Concatenates batches of one schema into one batch (0 rows when empty).
arrow::Result<std::shared_ptr<arrow::RecordBatch>> Concat(
    const std::shared_ptr<arrow::Schema>& schema,
    const std::vector<std::shared_ptr<arrow::RecordBatch>>& batches) {
  if (batches.size() == 1) return batches[0];
  ARROW_ASSIGN_OR_RAISE(auto table, arrow::Table::FromRecordBatches(schema, batches));
  return table->CombineChunksToBatch(EnginePool());
}

arrow::Status WriteIpcFile(const std::string& path,
                           const std::shared_ptr<arrow::Schema>& schema,
                           const std::vector<std::shared_ptr<arrow::RecordBatch>>& batches,
                           int64_t* bytes_on_disk) {
  ARROW_ASSIGN_OR_RAISE(auto file, arrow::io::FileOutputStream::Open(path));
  arrow::ipc::IpcWriteOptions options = arrow::ipc::IpcWriteOptions::Defaults();
  options.memory_pool = EnginePool();
  ARROW_ASSIGN_OR_RAISE(auto writer, arrow::ipc::MakeStreamWriter(file, schema, options));
  for (const auto& b : batches) ARROW_RETURN_NOT_OK(writer->WriteRecordBatch(*b));
  ARROW_RETURN_NOT_OK(writer->Close());
  ARROW_ASSIGN_OR_RAISE(*bytes_on_disk, file->Tell());
  return file->Close();
}

arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> OpenIpcFile(
    const std::string& path) {
  // The read buffers come from the engine's pool: they are the loaded batches.
  ARROW_ASSIGN_OR_RAISE(auto file, arrow::io::ReadableFile::Open(path, EnginePool()));
  arrow::ipc::IpcReadOptions options = arrow::ipc::IpcReadOptions::Defaults();
  options.memory_pool = EnginePool();
  ARROW_ASSIGN_OR_RAISE(auto reader,
                        arrow::ipc::RecordBatchStreamReader::Open(file, options));
  return reader;
}

// A reader over a list of batches, then over `more` until it returns null.
class PullReader : public arrow::RecordBatchReader {
 public:
  using Next = std::function<arrow::Result<std::shared_ptr<arrow::RecordBatch>>()>;
  PullReader(std::shared_ptr<arrow::Schema> schema,
             std::deque<std::shared_ptr<arrow::RecordBatch>> first, Next more)
      : schema_(std::move(schema)), first_(std::move(first)), more_(std::move(more)) {}
  std::shared_ptr<arrow::Schema> schema() const override { return schema_; }
  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    if (!first_.empty()) {
      *out = std::move(first_.front());
      first_.pop_front();
      return arrow::Status::OK();
    }
    if (!more_) {
      *out = nullptr;
      return arrow::Status::OK();
    }
    ARROW_ASSIGN_OR_RAISE(*out, more_());
    if (*out == nullptr) more_ = nullptr;
    return arrow::Status::OK();
  }

 private:
  std::shared_ptr<arrow::Schema> schema_;
  std::deque<std::shared_ptr<arrow::RecordBatch>> first_;
  Next more_;
};

}  // namespace

arrow::Status HashKeys(const arrow::RecordBatch& batch, const std::vector<int>& key_indices,
                       std::vector<uint64_t>* hashes) {
  hashes->assign(batch.num_rows(), 0);
  bool first = true;
  for (int k : key_indices) {
    const arrow::Array& a = *batch.column(k);
    switch (a.type_id()) {
      case arrow::Type::INT8: HashIntegers<arrow::Int8Array>(a, hashes, first); break;
      case arrow::Type::INT16: HashIntegers<arrow::Int16Array>(a, hashes, first); break;
      case arrow::Type::INT32: HashIntegers<arrow::Int32Array>(a, hashes, first); break;
      case arrow::Type::INT64: HashIntegers<arrow::Int64Array>(a, hashes, first); break;
      case arrow::Type::UINT8: HashIntegers<arrow::UInt8Array>(a, hashes, first); break;
      case arrow::Type::UINT16: HashIntegers<arrow::UInt16Array>(a, hashes, first); break;
      case arrow::Type::UINT32: HashIntegers<arrow::UInt32Array>(a, hashes, first); break;
      case arrow::Type::UINT64: HashIntegers<arrow::UInt64Array>(a, hashes, first); break;
      case arrow::Type::STRING: HashStrings<arrow::StringArray>(a, hashes, first); break;
      case arrow::Type::BINARY: HashStrings<arrow::BinaryArray>(a, hashes, first); break;
      case arrow::Type::LARGE_STRING:
        HashStrings<arrow::LargeStringArray>(a, hashes, first);
        break;
      case arrow::Type::LARGE_BINARY:
        HashStrings<arrow::LargeBinaryArray>(a, hashes, first);
        break;
      default:
        return arrow::Status::TypeError("key column '", batch.schema()->field(k)->name(),
                                        "' has type ", a.type()->ToString(),
                                        "; group keys must be integer or string/binary");
    }
    first = false;
  }
  return arrow::Status::OK();
}

// ---------------------------------------------------------------------------------------
// Plan

struct GroupedStage::Plan {
  std::shared_ptr<GroupedOperator> op;
  std::string name;
  std::vector<std::string> keys;
  std::string sort_by;
  std::shared_ptr<arrow::Schema> input;
  std::shared_ptr<arrow::Schema> stored;  // input + row id
  std::shared_ptr<arrow::Schema> output;
  std::vector<int> key_idx;
  int sort_idx = -1;
  int rowid_idx = -1;
  std::vector<CellCompare> key_cmp;  // by key
  // Every sort column of the stored schema: keys, sort column, row id.
  std::vector<int> order_idx;
  std::vector<CellCompare> order_cmp;

  // "user=5, day='mon'" for row `row` of `batch` (stored or input schema).
  std::string KeyString(const arrow::RecordBatch& batch, int64_t row) const {
    std::string out;
    for (size_t k = 0; k < keys.size(); ++k) {
      if (k > 0) out += ", ";
      out += keys[k] + "=";
      auto col = batch.GetColumnByName(keys[k]);
      if (col == nullptr || col->IsNull(row)) {
        out += "null";
        continue;
      }
      auto scalar = col->GetScalar(row);
      std::string v = scalar.ok() ? (*scalar)->ToString() : "?";
      if (v.size() > 100) v = v.substr(0, 100) + "...";
      out += arrow::is_base_binary_like(col->type_id()) ? "'" + v + "'" : v;
    }
    return out;
  }
};

// ---------------------------------------------------------------------------------------
// BucketStore: bucket data of one run, its memory accounting and spill files.

struct Chunk {
  std::shared_ptr<arrow::RecordBatch> batch;
  int64_t bytes = 0;
};

class BucketStore {
 public:
  struct Bucket {
    std::vector<Chunk> mem;
    int64_t mem_bytes = 0;
    std::vector<std::string> files;
    int64_t rows = 0;
    int64_t bytes = 0;  // in-memory size of all its rows, spilled or not
    int spilling = 0;
    int next_file = 0;
    bool taken = false;
  };

  // What a phase 2 reader takes over: the in-memory chunks (still counted; the taker
  // releases `mem_bytes`) and the spill files.
  struct Taken {
    std::vector<Chunk> mem;
    int64_t mem_bytes = 0;
    std::vector<std::string> files;
    int64_t rows = 0;
    int64_t bytes = 0;
  };

  BucketStore(std::shared_ptr<GroupedStage::Plan> plan, const RunOptions& options)
      : plan_(std::move(plan)),
        options_(options),
        limit_(std::max<int64_t>(options.memory_limit, 0)),
        buckets_(options.grouped_buckets) {
    int64_t q = limit_ / 4;
    group_limit_ = options.max_group_bytes > 0 ? options.max_group_bytes : 0;
    if (q > 0 && (group_limit_ == 0 || q < group_limit_)) {
      group_limit_ = q;
      group_limit_option_ = "a quarter of memory_limit (--memory-limit " +
                            std::to_string(limit_) + ")";
    } else if (group_limit_ > 0) {
      group_limit_option_ =
          "max_group_bytes (--max-group-bytes " + std::to_string(group_limit_) + ")";
    }
  }

  const GroupedStage::Plan& plan() const { return *plan_; }
  int num_buckets() const { return static_cast<int>(buckets_.size()); }
  int64_t limit() const { return limit_; }
  int64_t group_limit() const { return group_limit_; }
  const std::string& group_limit_option() const { return group_limit_option_; }
  bool cancelled() const { return options_.cancel != nullptr && options_.cancel->load(); }

  // Lets the engine pool ask this store to spill when an allocation elsewhere (a
  // reader, an operator) would go over the limit. Call once, after construction.
  void RegisterReclaimer() {
    if (limit_ == 0) return;
    reclaimer_ =
        EnginePool()->AddReclaimer([this](int64_t bytes) { return Reclaim(bytes); });
  }

  // Adds the chunks of one input batch, spilling first when they do not fit.
  arrow::Status Add(std::vector<std::pair<int, Chunk>> chunks) {
    int64_t bytes = 0;
    for (const auto& c : chunks) bytes += c.second.bytes;
    std::unique_lock<std::mutex> lock(mu_);
    ARROW_RETURN_NOT_OK(reclaim_error_);
    ARROW_RETURN_NOT_OK(MakeRoom(&lock, bytes, /*own_holds=*/0));
    for (auto& [b, c] : chunks) {
      Bucket& bk = buckets_[b];
      bk.rows += c.batch->num_rows();
      bk.bytes += c.bytes;
      bk.mem_bytes += c.bytes;
      bk.mem.push_back(std::move(c));
    }
    Count(bytes);
    return arrow::Status::OK();
  }

  // Counts `bytes` about to be allocated by a phase 2 reader, spilling or waiting first
  // when they do not fit. Pair with Release().
  // `own_holds`: how many holds (reservations, taken chunks) the caller has itself.
  arrow::Status Reserve(int64_t bytes, int own_holds) {
    std::unique_lock<std::mutex> lock(mu_);
    ARROW_RETURN_NOT_OK(reclaim_error_);
    ARROW_RETURN_NOT_OK(MakeRoom(&lock, bytes, own_holds));
    Count(bytes);
    holders_ += 1;
    return arrow::Status::OK();
  }

  void Release(int64_t bytes, bool holder) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      tracked_ -= bytes;
      if (holder) holders_ -= 1;
    }
    cv_.notify_all();
  }

  // Hands bucket `b` to its phase 2 reader (waiting for spills of it in progress).
  arrow::Result<Taken> Take(int b) {
    std::unique_lock<std::mutex> lock(mu_);
    Bucket& bk = buckets_[b];
    while (bk.spilling > 0) cv_.wait_for(lock, kWaitSlice);
    ARROW_RETURN_NOT_OK(reclaim_error_);
    if (bk.taken) return arrow::Status::Invalid("bucket ", b, " read twice");
    bk.taken = true;
    Taken t;
    t.mem = std::move(bk.mem);
    bk.mem.clear();
    t.mem_bytes = bk.mem_bytes;
    bk.mem_bytes = 0;
    if (t.mem_bytes > 0) holders_ += 1;
    t.files = std::move(bk.files);
    t.rows = bk.rows;
    t.bytes = bk.bytes;
    return t;
  }

  // Undoes RegisterReclaimer(), waiting for a call of Reclaim() in progress; idempotent.
  void UnregisterReclaimer() {
    if (reclaimer_ >= 0) EnginePool()->RemoveReclaimer(reclaimer_);
    reclaimer_ = -1;
  }

  ~BucketStore() {
    UnregisterReclaimer();
    UnlockDir();
  }

  // A fresh path in the spill folder (created on first use, named after this process,
  // locked while it exists: RemoveStaleSpillFolders() tells a dead run's folder by them).
  arrow::Result<std::string> NewPath(const std::string& stem) {
    std::lock_guard<std::mutex> lock(dir_mu_);
    if (dir_.empty()) {
      fs::path dir = fs::path(SpillParent(options_.spill_dir)) /
                     (kSpillPrefix + std::to_string(::getpid()) + "-" + RandomUuid());
      std::error_code ec;
      fs::create_directories(dir, ec);
      if (ec) {
        return arrow::Status::IOError("cannot create the spill folder '", dir.string(),
                                      "' (--spill-dir; spill_dir= in Python): ",
                                      ec.message());
      }
      // Best effort: where flock() does not work, the PID in the name still tells.
      lock_fd_ = ::open((dir / kSpillLockFile).c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
      if (lock_fd_ >= 0 && ::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) UnlockDir();
      dir_ = dir.string();
    }
    return dir_ + "/" + stem + "-" + std::to_string(next_file_++) + ".arrows";
  }

  arrow::Status WriteSpill(const std::string& path,
                           const std::vector<std::shared_ptr<arrow::RecordBatch>>& batches) {
    int64_t disk = 0;
    arrow::Status st = WriteIpcFile(path, plan_->stored, batches, &disk);
    if (!st.ok()) {
      return st.WithMessage("writing spill file '", path, "': ", st.message());
    }
    spilled_bytes_.fetch_add(disk);
    spill_files_.fetch_add(1);
    return arrow::Status::OK();
  }

  arrow::Status RemoveDir() {
    std::lock_guard<std::mutex> lock(dir_mu_);
    {
      std::lock_guard<std::mutex> l2(mu_);
      for (auto& b : buckets_) {
        b.mem.clear();
        b.files.clear();
      }
    }
    if (dir_.empty()) return arrow::Status::OK();
    std::error_code ec;
    fs::remove_all(dir_, ec);
    UnlockDir();
    std::string dir = std::move(dir_);
    dir_.clear();
    if (ec) {
      return arrow::Status::IOError("cannot remove the spill folder '", dir,
                                    "': ", ec.message());
    }
    return arrow::Status::OK();
  }

  int64_t peak() const {
    std::lock_guard<std::mutex> lock(mu_);
    return peak_;
  }
  int64_t spilled_bytes() const { return spilled_bytes_.load(); }
  int64_t spill_files() const { return spill_files_.load(); }

  std::atomic<int64_t> groups{0};
  std::atomic<int64_t> streamed_groups{0};

 private:
  void Count(int64_t bytes) {
    tracked_ += bytes;
    peak_ = std::max(peak_, tracked_);
  }

  // Spills the largest untaken buckets until `bytes` more fit under the limit; waits
  // while spills are being written or other readers hold memory that will come back
  // (readers that are themselves waiting do not count, so two never wait for each
  // other); goes over the limit only when nothing is left to spill or wait for.
  // mu_ held through `lock`.
  arrow::Status MakeRoom(std::unique_lock<std::mutex>* lock, int64_t bytes,
                         int own_holds) {
    if (limit_ == 0) return arrow::Status::OK();
    // The limit is the budget of the whole run: what the engine's pool holds beside
    // the counted bucket data (batches in flight on workers, the reorder buffer,
    // decode and write buffers) leaves that much less room to the buckets.
    // Three eighths of the limit stay free for what workers allocate between two calls
    // (a Parquet row group decoded whole, staged input being partitioned), which the
    // pool would refuse.
    const int64_t other =
        std::max<int64_t>(EnginePool()->bytes_allocated() - tracked_, 0);
    const int64_t room = limit_ - limit_ / 8 * 3 - other;
    if (tracked_ + bytes <= room) return arrow::Status::OK();
    // Once over, spill down to half of the room: fewer, larger spill files, and freed
    // chunks leave whole allocator pages free instead of scattered holes.
    const int64_t target = std::max<int64_t>(room / 2, 0);
    bool spilled = false;
    while (tracked_ + bytes > target) {
      if (cancelled()) return arrow::Status::Cancelled("run cancelled while spilling");
      int best = -1;
      for (int b = 0; b < num_buckets(); ++b) {
        const Bucket& bk = buckets_[b];
        if (bk.taken || bk.mem_bytes == 0) continue;
        if (best < 0 || bk.mem_bytes > buckets_[best].mem_bytes) best = b;
      }
      if (best >= 0) {
        ARROW_RETURN_NOT_OK(Spill(lock, best));
        spilled = true;
        continue;
      }
      if (spilling_ == 0 && holders_ - own_holds - waiting_holders_ <= 0) break;
      if (own_holds > 0) waiting_holders_ += own_holds;
      cv_.wait_for(*lock, kWaitSlice);
      if (own_holds > 0) waiting_holders_ -= own_holds;
    }
    if (spilled) {
      // The spilled chunks were many small allocations interleaved with other
      // buckets' chunks; without this the allocator keeps their pages and the
      // process's RSS grows with the input although the counted bytes do not.
      lock->unlock();
      EnginePool()->ReleaseUnused();
      lock->lock();
    }
    return arrow::Status::OK();
  }

  // The engine pool's reclaimer: spills the largest untaken buckets until `bytes` are
  // freed or none is left in memory; the bytes freed. A failed spill is returned (the
  // allocation fails with it) and kept in reclaim_error_ (the bucket's rows are lost:
  // the run fails with it wherever it goes on). Called on a thread that is allocating,
  // which never holds mu_: the store makes no pool allocation under mu_.
  arrow::Result<int64_t> Reclaim(int64_t bytes) {
    std::unique_lock<std::mutex> lock(mu_);
    ARROW_RETURN_NOT_OK(reclaim_error_);
    int64_t freed = 0;
    while (freed < bytes && !cancelled()) {
      int best = -1;
      for (int b = 0; b < num_buckets(); ++b) {
        const Bucket& bk = buckets_[b];
        if (bk.taken || bk.mem_bytes == 0) continue;
        if (best < 0 || bk.mem_bytes > buckets_[best].mem_bytes) best = b;
      }
      if (best < 0) break;
      const int64_t held = buckets_[best].mem_bytes;
      arrow::Status st = Spill(&lock, best);
      if (!st.ok()) {
        reclaim_error_ = st;
        return st;
      }
      freed += held;
    }
    return freed;
  }

  // Writes the in-memory chunks of bucket `b` to a new spill file; the lock is released
  // during the write. The bytes stay counted until the file is written.
  arrow::Status Spill(std::unique_lock<std::mutex>* lock, int b) {
    Bucket& bk = buckets_[b];
    std::vector<Chunk> chunks = std::move(bk.mem);
    bk.mem.clear();
    int64_t bytes = bk.mem_bytes;
    bk.mem_bytes = 0;
    bk.spilling += 1;
    spilling_ += 1;
    lock->unlock();
    std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
    for (auto& c : chunks) batches.push_back(std::move(c.batch));
    chunks.clear();
    std::string path;
    arrow::Status st;
    auto p = NewPath("bucket-" + std::to_string(b));
    if (p.ok()) {
      path = *p;
      st = WriteSpill(path, batches);
    } else {
      st = p.status();
    }
    batches.clear();
    lock->lock();
    bk.spilling -= 1;
    spilling_ -= 1;
    tracked_ -= bytes;
    if (st.ok()) bk.files.push_back(path);
    cv_.notify_all();
    return st;
  }

  std::shared_ptr<GroupedStage::Plan> plan_;
  RunOptions options_;
  const int64_t limit_;
  int64_t group_limit_ = 0;
  std::string group_limit_option_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Bucket> buckets_;  // GUARDED_BY(mu_)
  int64_t tracked_ = 0;          // GUARDED_BY(mu_)
  int64_t peak_ = 0;             // GUARDED_BY(mu_)
  int spilling_ = 0;             // GUARDED_BY(mu_): spill writes in progress
  int holders_ = 0;              // GUARDED_BY(mu_): holds of phase 2 readers
  int waiting_holders_ = 0;      // GUARDED_BY(mu_): of those, held by waiting readers
  arrow::Status reclaim_error_;  // GUARDED_BY(mu_): a spill the pool asked for failed
  int64_t reclaimer_ = -1;  // the engine pool's id of Reclaim(), or -1 (set by the
                            // thread that begins and ends the run)

  void UnlockDir() {
    if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock()
    lock_fd_ = -1;
  }

  std::mutex dir_mu_;
  std::string dir_;        // GUARDED_BY(dir_mu_)
  int lock_fd_ = -1;       // GUARDED_BY(dir_mu_): the spill folder's lock file
  int64_t next_file_ = 0;  // GUARDED_BY(dir_mu_)

  std::atomic<int64_t> spilled_bytes_{0};
  std::atomic<int64_t> spill_files_{0};
};

// ---------------------------------------------------------------------------------------
// Phase 1: hash-partitioning sink, called on the workers.

class PartitionSink : public BatchSink {
 public:
  explicit PartitionSink(std::shared_ptr<BucketStore> store)
      : store_(std::move(store)),
        stage_bytes_(store_->limit() > 0 ? std::max<int64_t>(store_->limit() / 64, 1)
                                         : int64_t{8} << 20) {}

  bool concurrent() const override { return true; }

  // Input batches of a partition are staged until kStageRows rows or memory_limit / 64
  // bytes (or the partition's end), then partitioned together, so that chunks hold ~kStageRows / buckets rows:
  // tiny chunks cost more in C++ objects and allocator pages than in counted bytes.
  arrow::Status Write(int64_t partition,
                      const std::shared_ptr<arrow::RecordBatch>& batch) override {
    std::vector<std::shared_ptr<arrow::RecordBatch>> ready;
    {
      std::lock_guard<std::mutex> lock(mu_);
      Staged& st = staged_[partition];
      st.batches.push_back(batch);
      st.rows += batch->num_rows();
      st.bytes += arrow::util::TotalBufferSize(*batch);
      if (st.rows < kStageRows && st.bytes < stage_bytes_) return arrow::Status::OK();
      ready = std::move(st.batches);
      st.batches.clear();
      st.rows = st.bytes = 0;
    }
    return Partition(partition, ready);
  }

  arrow::Status FinishPartition(int64_t partition) override {
    std::vector<std::shared_ptr<arrow::RecordBatch>> ready;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = staged_.find(partition);
      if (it == staged_.end()) return arrow::Status::OK();
      ready = std::move(it->second.batches);
      staged_.erase(it);
      next_row_.erase(partition);
    }
    if (ready.empty()) return arrow::Status::OK();
    return Partition(partition, ready);
  }

 private:
  static constexpr int64_t kStageRows = 65536;
  struct Staged {
    std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
    int64_t rows = 0;
    int64_t bytes = 0;
  };

  arrow::Status Partition(int64_t partition,
                          const std::vector<std::shared_ptr<arrow::RecordBatch>>& staged) {
    const GroupedStage::Plan& plan = store_->plan();
    ARROW_ASSIGN_OR_RAISE(auto batch, Concat(plan.input, staged));
    const int64_t n = batch->num_rows();
    int64_t first;
    {
      std::lock_guard<std::mutex> lock(mu_);
      int64_t& next = next_row_[partition];
      first = next;
      next += n;
    }
    if (partition >= (int64_t{1} << kPartitionBits) ||
        first + n >= (int64_t{1} << kRowBits)) {
      return arrow::Status::Invalid(
          "grouped step '", plan.name, "' supports at most 2^", kPartitionBits,
          " partitions of at most 2^", kRowBits, " rows; partition ", partition,
          " reached row ", first + n);
    }
    ARROW_ASSIGN_OR_RAISE(auto ids,
                          arrow::AllocateBuffer(n * sizeof(int64_t), EnginePool()));
    auto* id = reinterpret_cast<int64_t*>(ids->mutable_data());
    const int64_t base = (partition << kRowBits) + first;
    for (int64_t i = 0; i < n; ++i) id[i] = base + i;
    auto id_array = std::make_shared<arrow::Int64Array>(n, std::move(ids));
    ARROW_ASSIGN_OR_RAISE(auto stored,
                          batch->AddColumn(batch->num_columns(),
                                           plan.stored->field(plan.rowid_idx), id_array));
    std::vector<uint64_t> hashes;
    ARROW_RETURN_NOT_OK(HashKeys(*stored, plan.key_idx, &hashes));
    const int nb = store_->num_buckets();
    std::vector<int64_t> start(nb + 1, 0);
    std::vector<int32_t> bucket(n);
    for (int64_t i = 0; i < n; ++i) {
      bucket[i] = static_cast<int32_t>(hashes[i] % static_cast<uint64_t>(nb));
      start[bucket[i] + 1] += 1;
    }
    for (int b = 0; b < nb; ++b) start[b + 1] += start[b];
    // Every bucket's rows go through Take, even when one bucket gets the whole batch,
    // so each chunk owns compact buffers and its byte count is honest.
    std::vector<std::pair<int, Chunk>> chunks;
    ARROW_ASSIGN_OR_RAISE(auto idx_buf,
                          arrow::AllocateBuffer(n * sizeof(int32_t), EnginePool()));
    auto* idx = reinterpret_cast<int32_t*>(idx_buf->mutable_data());
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t i = 0; i < n; ++i) idx[fill[bucket[i]]++] = static_cast<int32_t>(i);
    auto indices = std::make_shared<arrow::Int32Array>(n, std::move(idx_buf));
    for (int b = 0; b < nb; ++b) {
      int64_t count = start[b + 1] - start[b];
      if (count == 0) continue;
      ARROW_ASSIGN_OR_RAISE(
          arrow::Datum taken,
          arrow::compute::Take(stored, indices->Slice(start[b], count),
                               arrow::compute::TakeOptions::NoBoundsCheck(),
                               EngineExecContext()));
      Chunk c;
      c.batch = taken.record_batch();
      c.bytes = arrow::util::TotalBufferSize(*c.batch);
      chunks.emplace_back(b, std::move(c));
    }
    return store_->Add(std::move(chunks));
  }

  std::shared_ptr<BucketStore> store_;
  const int64_t stage_bytes_;  // staged input bytes that trigger partitioning
  std::mutex mu_;
  std::map<int64_t, int64_t> next_row_;  // GUARDED_BY(mu_): rows seen per partition
  std::map<int64_t, Staged> staged_;     // GUARDED_BY(mu_): batches not partitioned yet
};

// ---------------------------------------------------------------------------------------
// Phase 2: sorted-run merger for buckets too large to sort in memory.

class RunMerger {
 public:
  RunMerger(const GroupedStage::Plan& plan) : plan_(plan) {}

  arrow::Status Open(const std::vector<std::string>& paths) {
    for (const auto& path : paths) {
      Cursor c;
      ARROW_ASSIGN_OR_RAISE(c.reader, OpenIpcFile(path));
      ARROW_RETURN_NOT_OK(Load(&c));
      if (c.batch != nullptr) cursors_.push_back(std::move(c));
    }
    min_ = FindMin();
    return arrow::Status::OK();
  }

  bool done() const { return min_ < 0; }

  // Up to `max_rows` further rows of the current group (stored schema), in order.
  // `*group_end` tells whether the group ended with them (the next row, if any, has
  // another key).
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> NextPiece(int64_t max_rows,
                                                               bool* group_end) {
    *group_end = true;
    std::vector<std::shared_ptr<arrow::RecordBatch>> slices;
    std::shared_ptr<arrow::RecordBatch> run_batch;
    int64_t run_start = 0, run_len = 0, rows = 0;
    auto flush = [&] {
      if (run_len > 0) slices.push_back(run_batch->Slice(run_start, run_len));
      run_len = 0;
    };
    while (min_ >= 0 && rows < max_rows) {
      Cursor& c = cursors_[min_];
      if (c.batch == run_batch && run_start + run_len == c.pos) {
        run_len += 1;
      } else {
        flush();
        run_batch = c.batch;
        run_start = c.pos;
        run_len = 1;
      }
      rows += 1;
      std::shared_ptr<arrow::RecordBatch> last = c.batch;
      int64_t last_row = c.pos;
      c.pos += 1;
      if (c.pos >= c.batch->num_rows()) ARROW_RETURN_NOT_OK(Load(&c));
      min_ = FindMin();
      *group_end = min_ < 0 || !SameKey(*last, last_row, *cursors_[min_].batch,
                                        cursors_[min_].pos);
      if (*group_end) break;
    }
    flush();
    if (slices.empty()) return nullptr;
    return Concat(plan_.stored, slices);
  }

 private:
  struct Cursor {
    std::shared_ptr<arrow::RecordBatchReader> reader;
    std::shared_ptr<arrow::RecordBatch> batch;  // null when exhausted
    int64_t pos = 0;
  };

  arrow::Status Load(Cursor* c) {
    do {
      ARROW_RETURN_NOT_OK(c->reader->ReadNext(&c->batch));
    } while (c->batch != nullptr && c->batch->num_rows() == 0);
    c->pos = 0;
    return arrow::Status::OK();
  }

  bool SameKey(const arrow::RecordBatch& a, int64_t i, const arrow::RecordBatch& b,
               int64_t j) const {
    for (size_t k = 0; k < plan_.key_idx.size(); ++k) {
      int col = plan_.key_idx[k];
      if (plan_.key_cmp[k](*a.column(col), i, *b.column(col), j) != 0) return false;
    }
    return true;
  }

  bool Less(const Cursor& a, const Cursor& b) const {
    for (size_t k = 0; k < plan_.order_idx.size(); ++k) {
      int col = plan_.order_idx[k];
      int c = plan_.order_cmp[k](*a.batch->column(col), a.pos, *b.batch->column(col),
                                 b.pos);
      if (c != 0) return c < 0;
    }
    return false;
  }

  int FindMin() const {
    int best = -1;
    for (int i = 0; i < static_cast<int>(cursors_.size()); ++i) {
      if (cursors_[i].batch == nullptr) continue;
      if (best < 0 || Less(cursors_[i], cursors_[best])) best = i;
    }
    return best;
  }

  const GroupedStage::Plan& plan_;
  std::vector<Cursor> cursors_;
  int min_ = -1;
};

// ---------------------------------------------------------------------------------------
// Phase 2: the reader of one bucket.

class BucketReader : public arrow::RecordBatchReader {
 public:
  BucketReader(std::shared_ptr<BucketStore> store, int bucket)
      : store_(std::move(store)), plan_(store_->plan()), bucket_(bucket) {}

  ~BucketReader() override { ReleaseAll(); }

  std::shared_ptr<arrow::Schema> schema() const override { return plan_.output; }

  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    if (!started_) {
      started_ = true;
      ARROW_RETURN_NOT_OK(Start());
    }
    while (ready_.empty() && !done_) {
      if (store_->cancelled()) {
        return arrow::Status::Cancelled("run cancelled in grouped step '", plan_.name,
                                        "', bucket ", bucket_);
      }
      ARROW_RETURN_NOT_OK(merger_ != nullptr ? StepExternal() : StepInMemory());
    }
    if (ready_.empty()) {
      *out = nullptr;
      ReleaseAll();
      return arrow::Status::OK();
    }
    *out = std::move(ready_.front());
    ready_.pop_front();
    return arrow::Status::OK();
  }

 private:
  arrow::Status Start() {
    ARROW_ASSIGN_OR_RAISE(BucketStore::Taken t, store_->Take(bucket_));
    held_chunks_ = t.mem_bytes;
    chunk_holder_ = t.mem_bytes > 0;
    bucket_bytes_ = t.bytes;
    if (t.rows == 0) {
      done_ = true;
      return arrow::Status::OK();
    }
    const int64_t limit = store_->limit();
    if (limit == 0 || 2 * t.bytes <= limit) return LoadInMemory(std::move(t));
    return MakeRuns(std::move(t));
  }

  int own_holds() const {
    return static_cast<int>(reserved_.size()) + (chunk_holder_ ? 1 : 0);
  }
  arrow::Status Reserve(int64_t bytes) {
    ARROW_RETURN_NOT_OK(store_->Reserve(bytes, own_holds()));
    reserved_.push_back(bytes);
    return arrow::Status::OK();
  }
  void ReleaseReservation() {
    store_->Release(reserved_.back(), /*holder=*/true);
    reserved_.pop_back();
  }
  void ReleaseChunks() {
    if (chunk_holder_) store_->Release(held_chunks_, /*holder=*/true);
    chunk_holder_ = false;
    held_chunks_ = 0;
  }
  void ReleaseAll() {
    ReleaseChunks();
    while (!reserved_.empty()) ReleaseReservation();
  }

  arrow::Result<std::vector<std::shared_ptr<arrow::RecordBatch>>> ReadAll(
      const std::string& path) {
    ARROW_ASSIGN_OR_RAISE(auto reader, OpenIpcFile(path));
    std::vector<std::shared_ptr<arrow::RecordBatch>> out;
    while (true) {
      std::shared_ptr<arrow::RecordBatch> b;
      ARROW_RETURN_NOT_OK(reader->ReadNext(&b));
      if (b == nullptr) break;
      out.push_back(std::move(b));
    }
    return out;
  }

  // Sorts rows by keys, sort column and row id.
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Sort(
      const std::shared_ptr<arrow::RecordBatch>& batch) {
    ARROW_ASSIGN_OR_RAISE(auto fast, SortFixedWidth(batch));
    if (fast != nullptr) return fast;
    std::vector<arrow::compute::SortKey> keys;
    for (int i : plan_.order_idx) {
      keys.emplace_back(arrow::FieldRef(i), arrow::compute::SortOrder::Ascending);
    }
    arrow::compute::SortOptions options(keys, arrow::compute::NullPlacement::AtEnd);
    ARROW_ASSIGN_OR_RAISE(auto indices,
                          arrow::compute::SortIndices(arrow::Datum(batch), options,
                                                      EngineExecContext()));
    ARROW_ASSIGN_OR_RAISE(
        arrow::Datum sorted,
        arrow::compute::Take(batch, indices, arrow::compute::TakeOptions::NoBoundsCheck(),
                             EngineExecContext()));
    return sorted.record_batch();
  }

  // Sort() for the common case where every sort column is a 32/64-bit integer or a
  // timestamp without nulls (int keys, times, the row id): sorts packed (values, row)
  // records with std::sort, several times faster than the generic multi-column sort
  // with its per-comparison dispatch. Null when the case does not apply. The row id
  // makes every record distinct, so the order is the same total order as the generic
  // path's.
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> SortFixedWidth(
      const std::shared_ptr<arrow::RecordBatch>& batch) {
    constexpr size_t kMaxColumns = 4;
    const size_t nc = plan_.order_idx.size();
    const int64_t n = batch->num_rows();
    if (nc > kMaxColumns || n > std::numeric_limits<uint32_t>::max()) return nullptr;
    std::vector<const arrow::ArrayData*> cols;
    for (int i : plan_.order_idx) {
      const arrow::ArrayData* a = batch->column_data(i).get();
      const auto id = a->type->id();
      const bool ok64 = id == arrow::Type::INT64 || id == arrow::Type::TIMESTAMP;
      const bool ok32 = id == arrow::Type::INT32 || id == arrow::Type::DATE32;
      if ((!ok64 && !ok32) || a->GetNullCount() != 0) return nullptr;
      cols.push_back(a);
    }
    struct Rec {
      std::array<int64_t, kMaxColumns> v;
      uint32_t row;
    };
    // Scratch of 40 bytes a row, as large as the columns: from the engine's pool, so
    // that it counts against the memory limit.
    ARROW_ASSIGN_OR_RAISE(
        auto rec_buf,
        arrow::AllocateBuffer(n * static_cast<int64_t>(sizeof(Rec)), EnginePool()));
    Rec* recs = reinterpret_cast<Rec*>(rec_buf->mutable_data());
    for (size_t c = 0; c < nc; ++c) {
      const arrow::ArrayData& a = *cols[c];
      if (a.type->byte_width() == 8) {
        const int64_t* v = a.GetValues<int64_t>(1);
        for (int64_t r = 0; r < n; ++r) recs[r].v[c] = v[r];
      } else {
        const int32_t* v = a.GetValues<int32_t>(1);
        for (int64_t r = 0; r < n; ++r) recs[r].v[c] = v[r];
      }
    }
    for (int64_t r = 0; r < n; ++r) {
      for (size_t c = nc; c < kMaxColumns; ++c) recs[r].v[c] = 0;
      recs[r].row = static_cast<uint32_t>(r);
    }
    std::sort(recs, recs + n, [](const Rec& x, const Rec& y) { return x.v < y.v; });
    arrow::UInt32Builder indices(EnginePool());
    ARROW_RETURN_NOT_OK(indices.Reserve(n));
    for (int64_t r = 0; r < n; ++r) indices.UnsafeAppend(recs[r].row);
    rec_buf.reset();
    ARROW_ASSIGN_OR_RAISE(auto idx, indices.Finish());
    ARROW_ASSIGN_OR_RAISE(
        arrow::Datum sorted,
        arrow::compute::Take(batch, idx, arrow::compute::TakeOptions::NoBoundsCheck(),
                             EngineExecContext()));
    return sorted.record_batch();
  }

  // The bucket fits: concatenate, sort, keep. Counts 2 x the bucket (the unsorted and
  // the sorted copy exist together while sorting).
  arrow::Status LoadInMemory(BucketStore::Taken t) {
    ARROW_RETURN_NOT_OK(Reserve(std::max<int64_t>(2 * t.bytes - t.mem_bytes, 0)));
    std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
    for (auto& c : t.mem) batches.push_back(std::move(c.batch));
    t.mem.clear();
    for (const auto& f : t.files) {
      ARROW_ASSIGN_OR_RAISE(auto more, ReadAll(f));
      for (auto& b : more) batches.push_back(std::move(b));
    }
    ARROW_ASSIGN_OR_RAISE(auto combined, Concat(plan_.stored, batches));
    batches.clear();
    ARROW_ASSIGN_OR_RAISE(sorted_, Sort(combined));
    combined.reset();
    ReleaseChunks();
    for (size_t k = 0; k < plan_.key_idx.size(); ++k) {
      key_cols_.push_back(sorted_->column(plan_.key_idx[k]).get());
    }
    return arrow::Status::OK();
  }

  // The bucket does not fit: sort it in runs of at most memory_limit / 8 bytes, written
  // to spill files, then merge them.
  arrow::Status MakeRuns(BucketStore::Taken t) {
    const int64_t run_bytes = std::max<int64_t>(store_->limit() / 8, 4 << 10);
    ARROW_RETURN_NOT_OK(Reserve(2 * run_bytes));
    std::vector<std::string> runs;
    std::vector<std::shared_ptr<arrow::RecordBatch>> acc;
    int64_t acc_bytes = 0, acc_mem_bytes = 0;
    auto flush = [&]() -> arrow::Status {
      if (acc.empty()) return arrow::Status::OK();
      ARROW_ASSIGN_OR_RAISE(auto combined, Concat(plan_.stored, acc));
      acc.clear();
      ARROW_ASSIGN_OR_RAISE(auto sorted, Sort(combined));
      combined.reset();
      const int64_t n = sorted->num_rows();
      const int64_t piece_rows = std::max<int64_t>(1, n / 8);
      std::vector<std::shared_ptr<arrow::RecordBatch>> pieces;
      for (int64_t off = 0; off < n; off += piece_rows) {
        pieces.push_back(sorted->Slice(off, std::min(piece_rows, n - off)));
      }
      ARROW_ASSIGN_OR_RAISE(auto path,
                            store_->NewPath("run-" + std::to_string(bucket_)));
      ARROW_RETURN_NOT_OK(store_->WriteSpill(path, pieces));
      runs.push_back(path);
      if (acc_mem_bytes > 0) {
        store_->Release(acc_mem_bytes, /*holder=*/false);
        held_chunks_ -= acc_mem_bytes;
      }
      acc_bytes = acc_mem_bytes = 0;
      return arrow::Status::OK();
    };
    for (auto& c : t.mem) {
      acc_bytes += c.bytes;
      acc_mem_bytes += c.bytes;
      acc.push_back(std::move(c.batch));
      if (acc_bytes >= run_bytes) ARROW_RETURN_NOT_OK(flush());
    }
    t.mem.clear();
    for (const auto& f : t.files) {
      ARROW_ASSIGN_OR_RAISE(auto reader, OpenIpcFile(f));
      std::shared_ptr<arrow::RecordBatch> b;
      while (true) {
        ARROW_RETURN_NOT_OK(reader->ReadNext(&b));
        if (b == nullptr) break;
        acc_bytes += arrow::util::TotalBufferSize(*b);
        acc.push_back(std::move(b));
        if (acc_bytes >= run_bytes) ARROW_RETURN_NOT_OK(flush());
      }
    }
    ARROW_RETURN_NOT_OK(flush());
    ReleaseChunks();
    ReleaseReservation();
    // Merge buffers: one piece per run plus the group being gathered.
    ARROW_RETURN_NOT_OK(Reserve(store_->limit() / 2));
    merger_ = std::make_unique<RunMerger>(plan_);
    ARROW_RETURN_NOT_OK(merger_->Open(runs));
    const double row_bytes = static_cast<double>(t.bytes) / t.rows;
    const int64_t piece_target =
        std::max<int64_t>(store_->group_limit() > 0 ? store_->group_limit() / 4
                                                     : run_bytes / 8,
                          1);
    piece_rows_ = std::max<int64_t>(1, static_cast<int64_t>(piece_target / row_bytes));
    return arrow::Status::OK();
  }

  bool SameKey(int64_t i, int64_t j) const {
    for (size_t k = 0; k < key_cols_.size(); ++k) {
      if (plan_.key_cmp[k](*key_cols_[k], i, *key_cols_[k], j) != 0) return false;
    }
    return true;
  }

  arrow::Result<std::shared_ptr<arrow::RecordBatch>> DropRowId(
      const std::shared_ptr<arrow::RecordBatch>& b) const {
    return b->RemoveColumn(plan_.rowid_idx);
  }

  arrow::Status StepInMemory() {
    const int64_t n = sorted_->num_rows();
    while (pending_rows_ < kOutputBatchRows && pos_ < n) {
      int64_t end = pos_ + 1;
      while (end < n && SameKey(end - 1, end)) ++end;
      ARROW_ASSIGN_OR_RAISE(auto group, DropRowId(sorted_->Slice(pos_, end - pos_)));
      pos_ = end;
      int64_t bytes = 0;
      const int64_t group_limit = store_->group_limit();
      if (group_limit > 0 && bucket_bytes_ > group_limit) {
        ARROW_ASSIGN_OR_RAISE(bytes, arrow::util::ReferencedBufferSize(*group));
      }
      if (group_limit > 0 && bytes > group_limit) {
        if (!plan_.op->supports_streaming()) {
          return Refuse(*group, bytes, group->num_rows());
        }
        const int64_t rows = group->num_rows();
        const int64_t step = std::max<int64_t>(
            1, static_cast<int64_t>(static_cast<double>(rows) * (group_limit / 4) / bytes));
        std::deque<std::shared_ptr<arrow::RecordBatch>> pieces;
        for (int64_t off = 0; off < rows; off += step) {
          pieces.push_back(group->Slice(off, std::min(step, rows - off)));
        }
        ARROW_RETURN_NOT_OK(Stream(*group, std::move(pieces), nullptr));
      } else {
        ARROW_RETURN_NOT_OK(Apply(group));
      }
    }
    if (pos_ >= n) {
      done_ = true;
      sorted_.reset();
      key_cols_.clear();
      ReleaseAll();
    }
    return FlushPending();
  }

  arrow::Status StepExternal() {
    const int64_t group_limit = store_->group_limit();
    while (pending_rows_ < kOutputBatchRows && !merger_->done()) {
      std::vector<std::shared_ptr<arrow::RecordBatch>> pieces;
      int64_t bytes = 0;
      bool end = false;
      while (!end) {
        ARROW_ASSIGN_OR_RAISE(auto piece, merger_->NextPiece(piece_rows_, &end));
        if (piece == nullptr) break;
        ARROW_ASSIGN_OR_RAISE(piece, DropRowId(piece));
        ARROW_ASSIGN_OR_RAISE(int64_t piece_bytes, arrow::util::ReferencedBufferSize(*piece));
        bytes += piece_bytes;
        pieces.push_back(std::move(piece));
        if (group_limit > 0 && bytes > group_limit) break;
      }
      if (pieces.empty()) break;
      if (group_limit == 0 || bytes <= group_limit) {
        ARROW_ASSIGN_OR_RAISE(auto group, Concat(plan_.input, pieces));
        ARROW_RETURN_NOT_OK(Apply(group));
        continue;
      }
      // Over the group limit: stream the rest of the group, or refuse it.
      auto first = pieces.front();
      auto more = [this, done = end]() mutable
          -> arrow::Result<std::shared_ptr<arrow::RecordBatch>> {
        if (done) return nullptr;
        ARROW_ASSIGN_OR_RAISE(auto piece, merger_->NextPiece(piece_rows_, &done));
        if (piece == nullptr) return nullptr;
        return DropRowId(piece);
      };
      if (!plan_.op->supports_streaming()) {
        int64_t rows = 0;
        for (const auto& p : pieces) rows += p->num_rows();
        pieces.clear();
        while (true) {
          ARROW_ASSIGN_OR_RAISE(auto piece, more());
          if (piece == nullptr) break;
          ARROW_ASSIGN_OR_RAISE(int64_t piece_bytes,
                                arrow::util::ReferencedBufferSize(*piece));
          bytes += piece_bytes;
          rows += piece->num_rows();
        }
        return Refuse(*first, bytes, rows);
      }
      std::deque<std::shared_ptr<arrow::RecordBatch>> known(pieces.begin(), pieces.end());
      pieces.clear();
      ARROW_RETURN_NOT_OK(Stream(*first, std::move(known), more));
    }
    if (merger_->done()) {
      done_ = true;
      merger_.reset();
      ReleaseAll();
    }
    return FlushPending();
  }

  arrow::Status Refuse(const arrow::RecordBatch& group, int64_t bytes, int64_t rows) {
    return arrow::Status::Invalid(
        "grouped operator '", plan_.name, "': the group of key ",
        plan_.KeyString(group, 0), " holds ", bytes, " bytes (", rows,
        " rows), more than the group limit of ", store_->group_limit(), " bytes from ",
        store_->group_limit_option(),
        "; the operator does not support streaming (ApplyStream), so raise the limit, "
        "group by finer keys, or use a streaming operator");
  }

  std::string GroupWhere(const arrow::RecordBatch& group, int64_t rows) const {
    return "grouped operator '" + plan_.name + "' failed on the group of key " +
           plan_.KeyString(group, 0) + " (" + std::to_string(rows) + " rows, bucket " +
           std::to_string(bucket_) + ")";
  }

  arrow::Status Apply(const std::shared_ptr<arrow::RecordBatch>& group) {
    store_->groups.fetch_add(1);
    ARROW_ASSIGN_OR_RAISE(auto table, arrow::Table::FromRecordBatches({group}));
    auto result = plan_.op->Apply(*table);
    if (!result.ok()) {
      return result.status().WithMessage(GroupWhere(*group, group->num_rows()), ": ",
                                         result.status().message());
    }
    std::shared_ptr<arrow::Table> out = std::move(*result);
    if (out == nullptr) {
      return arrow::Status::Invalid(GroupWhere(*group, group->num_rows()),
                                    ": Apply returned no table");
    }
    if (!out->schema()->Equals(*plan_.output, /*check_metadata=*/false)) {
      return arrow::Status::TypeError(GroupWhere(*group, group->num_rows()),
                                      ": Apply returned schema ", out->schema()->ToString(),
                                      "; OutputSchema declared ",
                                      plan_.output->ToString());
    }
    arrow::TableBatchReader reader(*out);
    std::shared_ptr<arrow::RecordBatch> b;
    while (true) {
      ARROW_RETURN_NOT_OK(reader.ReadNext(&b));
      if (b == nullptr) break;
      ARROW_RETURN_NOT_OK(Emit(std::move(b)));
    }
    return arrow::Status::OK();
  }

  arrow::Status Stream(const arrow::RecordBatch& first,
                       std::deque<std::shared_ptr<arrow::RecordBatch>> known,
                       PullReader::Next more) {
    store_->groups.fetch_add(1);
    store_->streamed_groups.fetch_add(1);
    std::string where = GroupWhere(first, 0);
    PullReader reader(plan_.input, std::move(known), more);
    auto emit = [this](std::shared_ptr<arrow::RecordBatch> b) -> arrow::Status {
      if (b == nullptr) return arrow::Status::Invalid("emit got a null batch");
      if (!b->schema()->Equals(*plan_.output, /*check_metadata=*/false)) {
        return arrow::Status::TypeError("ApplyStream emitted schema ",
                                        b->schema()->ToString(),
                                        "; OutputSchema declared ",
                                        plan_.output->ToString());
      }
      return Emit(std::move(b));
    };
    arrow::Status st = plan_.op->ApplyStream(&reader, emit);
    if (!st.ok()) {
      return st.WithMessage(where, " (streamed): ", st.message());
    }
    // Rows the operator did not read still belong to this group; skip them.
    std::shared_ptr<arrow::RecordBatch> rest;
    do {
      ARROW_RETURN_NOT_OK(reader.ReadNext(&rest));
    } while (rest != nullptr);
    return arrow::Status::OK();
  }

  arrow::Status Emit(std::shared_ptr<arrow::RecordBatch> b) {
    if (b->num_rows() == 0) return arrow::Status::OK();
    if (!b->schema()->Equals(*plan_.output, /*check_metadata=*/true)) {
      ARROW_ASSIGN_OR_RAISE(b, b->ReplaceSchema(plan_.output));
    }
    pending_rows_ += b->num_rows();
    pending_.push_back(std::move(b));
    return arrow::Status::OK();
  }

  arrow::Status FlushPending() {
    if (pending_.empty()) return arrow::Status::OK();
    ARROW_ASSIGN_OR_RAISE(auto batch, Concat(plan_.output, pending_));
    pending_.clear();
    pending_rows_ = 0;
    ready_.push_back(std::move(batch));
    return arrow::Status::OK();
  }

  std::shared_ptr<BucketStore> store_;
  const GroupedStage::Plan& plan_;
  const int bucket_;
  bool started_ = false;
  bool done_ = false;
  int64_t held_chunks_ = 0;  // bytes of taken in-memory chunks still counted
  bool chunk_holder_ = false;
  int64_t bucket_bytes_ = 0;
  std::vector<int64_t> reserved_;

  std::shared_ptr<arrow::RecordBatch> sorted_;  // in-memory mode
  std::vector<const arrow::Array*> key_cols_;
  int64_t pos_ = 0;

  std::unique_ptr<RunMerger> merger_;  // external mode
  int64_t piece_rows_ = 1;

  std::vector<std::shared_ptr<arrow::RecordBatch>> pending_;
  int64_t pending_rows_ = 0;
  std::deque<std::shared_ptr<arrow::RecordBatch>> ready_;
};

// ---------------------------------------------------------------------------------------
// Phase 2 source.

class GroupedSource : public Source {
 public:
  explicit GroupedSource(std::shared_ptr<GroupedStage::Plan> plan)
      : plan_(std::move(plan)) {}

  void Attach(std::shared_ptr<BucketStore> store) {
    std::lock_guard<std::mutex> lock(mu_);
    store_ = std::move(store);
  }

  std::shared_ptr<arrow::Schema> schema() const override { return plan_->output; }
  int64_t num_partitions() const override {
    auto s = store();
    return s == nullptr ? 0 : s->num_buckets();
  }
  std::string partition_name(int64_t i) const override {
    return "bucket " + std::to_string(i) + " of grouped step '" + plan_->name + "'";
  }
  arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> OpenPartition(
      int64_t i) const override {
    auto s = store();
    if (s == nullptr || i < 0 || i >= s->num_buckets()) {
      return arrow::Status::Invalid("grouped step '", plan_->name, "' has no bucket ", i,
                                    " to read now");
    }
    return std::make_shared<BucketReader>(std::move(s), static_cast<int>(i));
  }

 private:
  std::shared_ptr<BucketStore> store() const {
    std::lock_guard<std::mutex> lock(mu_);
    return store_;
  }
  std::shared_ptr<GroupedStage::Plan> plan_;
  mutable std::mutex mu_;
  std::shared_ptr<BucketStore> store_;  // GUARDED_BY(mu_)
};

// ---------------------------------------------------------------------------------------
// GroupedStage

GroupedStage::GroupedStage() = default;
GroupedStage::~GroupedStage() { (void)End(); }

arrow::Result<std::unique_ptr<GroupedStage>> GroupedStage::Make(
    const PipelineStep& step, const std::shared_ptr<arrow::Schema>& input) {
  if (step.grouped == nullptr) return arrow::Status::Invalid("grouped step is null");
  auto plan = std::make_shared<Plan>();
  plan->op = step.grouped;
  plan->name = step.grouped->name();
  plan->input = input;
  const std::string who = "grouped operator '" + plan->name + "'";
  std::vector<std::string> op_keys = step.grouped->key_columns();
  plan->keys = step.group_keys.empty() ? op_keys : step.group_keys;
  if (!step.group_keys.empty() && !op_keys.empty() && op_keys != step.group_keys) {
    return arrow::Status::Invalid("GroupBy keys ", JoinNames(step.group_keys),
                                  " differ from the key_columns() ", JoinNames(op_keys),
                                  " of ", who, "; pass the same keys or none");
  }
  if (plan->keys.empty()) {
    return arrow::Status::Invalid(who,
                                  " has no key columns: pass keys to GroupBy() or return "
                                  "them from key_columns()");
  }
  std::string op_sort = step.grouped->sort_column();
  plan->sort_by = step.group_sort_by.empty() ? op_sort : step.group_sort_by;
  if (!step.group_sort_by.empty() && !op_sort.empty() && op_sort != step.group_sort_by) {
    return arrow::Status::Invalid("GroupBy sort column '", step.group_sort_by,
                                  "' differs from the sort_column() '", op_sort, "' of ",
                                  who, "; pass the same column or none");
  }
  if (input->GetFieldIndex(kRowIdColumn) >= 0) {
    return arrow::Status::Invalid("the input of ", who, " has a column named '",
                                  kRowIdColumn, "', which dlprep reserves; rename it");
  }
  for (const auto& k : plan->keys) {
    int i = input->GetFieldIndex(k);
    if (i < 0) {
      return arrow::Status::TypeError(who, ": key column '", k,
                                      "' is not (exactly once) in its input ",
                                      input->ToString());
    }
    auto id = input->field(i)->type()->id();
    if (!arrow::is_integer(id) && !arrow::is_base_binary_like(id)) {
      return arrow::Status::TypeError(who, ": key column '", k, "' has type ",
                                      input->field(i)->type()->ToString(),
                                      "; group keys must be integer or string/binary");
    }
    plan->key_idx.push_back(i);
    plan->key_cmp.push_back(MakeCompare(*input->field(i)->type()));
  }
  if (!plan->sort_by.empty()) {
    plan->sort_idx = input->GetFieldIndex(plan->sort_by);
    if (plan->sort_idx < 0) {
      return arrow::Status::TypeError(who, ": sort column '", plan->sort_by,
                                      "' is not (exactly once) in its input ",
                                      input->ToString());
    }
    if (MakeCompare(*input->field(plan->sort_idx)->type()) == nullptr) {
      return arrow::Status::TypeError(
          who, ": sort column '", plan->sort_by, "' has type ",
          input->field(plan->sort_idx)->type()->ToString(),
          "; expected a number, boolean, date/time or string/binary column");
    }
  }
  ARROW_ASSIGN_OR_RAISE(plan->stored,
                        input->AddField(input->num_fields(),
                                        arrow::field(kRowIdColumn, arrow::int64(), false)));
  plan->rowid_idx = input->num_fields();
  plan->order_idx = plan->key_idx;
  plan->order_cmp = plan->key_cmp;
  if (plan->sort_idx >= 0) {
    plan->order_idx.push_back(plan->sort_idx);
    plan->order_cmp.push_back(MakeCompare(*input->field(plan->sort_idx)->type()));
  }
  plan->order_idx.push_back(plan->rowid_idx);
  plan->order_cmp.push_back(MakeCompare(*arrow::int64()));
  auto out = step.grouped->OutputSchema(*input);
  if (!out.ok()) {
    return out.status().WithMessage(who, " does not fit its input ", input->ToString(),
                                    ": ", out.status().message());
  }
  if (*out == nullptr) return arrow::Status::Invalid(who, " returned a null schema");
  plan->output = *out;
  (void)plan->output->fingerprint();
  (void)plan->output->metadata_fingerprint();
  std::unique_ptr<GroupedStage> stage(new GroupedStage());
  stage->plan_ = plan;
  stage->source_ = std::make_shared<GroupedSource>(plan);
  return stage;
}

const std::string& GroupedStage::name() const { return plan_->name; }
const std::shared_ptr<arrow::Schema>& GroupedStage::output_schema() const {
  return plan_->output;
}
std::shared_ptr<Source> GroupedStage::source() const { return source_; }

std::vector<std::string> RemoveStaleSpillFolders(const std::string& spill_dir) {
  std::vector<std::string> removed;
  std::vector<fs::path> stale;
  std::error_code ec;
  for (auto it = fs::directory_iterator(SpillParent(spill_dir), ec);
       !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const int64_t pid = SpillFolderPid(it->path().filename().string());
    if (pid <= 0 || pid == ::getpid() || !ProcessIsGone(pid)) continue;
    std::error_code type_ec;
    if (it->symlink_status(type_ec).type() != fs::file_type::directory) continue;
    stale.push_back(it->path());
  }
  std::sort(stale.begin(), stale.end());
  for (const fs::path& dir : stale) {
    // A run in another PID namespace (a container sharing the folder) has a PID that
    // means nothing here; it holds the lock file. Holding it ourselves while removing
    // also keeps two new runs from removing the same folder at once.
    const int fd = ::open((dir / kSpillLockFile).c_str(), O_RDWR | O_CLOEXEC);
    if (fd >= 0 && ::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd);
      continue;
    }
    std::error_code rm_ec;
    fs::remove_all(dir, rm_ec);
    if (fd >= 0) ::close(fd);
    if (!rm_ec) removed.push_back(dir.string());
  }
  return removed;
}

arrow::Status GroupedStage::Begin(const RunOptions& options) {
  static const arrow::Status init = arrow::compute::Initialize();
  ARROW_RETURN_NOT_OK(init);
  if (options.grouped_buckets < 1) {
    return arrow::Status::Invalid(
        "the number of buckets of a grouped step must be >= 1, got ",
        options.grouped_buckets);
  }
  if (options.memory_limit < 0 || options.max_group_bytes < 0) {
    return arrow::Status::Invalid(
        "memory_limit (--memory-limit) and max_group_bytes (--max-group-bytes) must be "
        ">= 0 (0: no limit)");
  }
  ARROW_RETURN_NOT_OK(End());
  // Spill folders of runs that were killed outright (SIGKILL, the OOM killer) would
  // stay forever: remove them. The CLI does it first and says what it removed.
  RemoveStaleSpillFolders(options.spill_dir);
  store_ = std::make_shared<BucketStore>(plan_, options);
  store_->RegisterReclaimer();
  sink_ = std::make_unique<PartitionSink>(store_);
  return arrow::Status::OK();
}

BatchSink* GroupedStage::partition_sink() { return sink_.get(); }

void GroupedStage::FinishPartitioning() { source_->Attach(store_); }

arrow::Status GroupedStage::End() {
  if (source_ != nullptr) source_->Attach(nullptr);
  sink_.reset();
  arrow::Status st;
  if (store_ != nullptr) {
    store_->UnregisterReclaimer();
    st = store_->RemoveDir();
  }
  return st;
}

void GroupedStage::FillStats(RunStats* stats, StageStats* stage) const {
  if (store_ == nullptr) return;
  stats->peak_tracked_bytes = std::max(stats->peak_tracked_bytes, store_->peak());
  stats->spilled_bytes += store_->spilled_bytes();
  stats->spill_files += store_->spill_files();
  stage->groups = store_->groups.load();
  stage->streamed_groups = store_->streamed_groups.load();
}

}  // namespace dlprep::exec
