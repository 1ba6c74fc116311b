#include "core/memory.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <vector>

#include <arrow/compute/exec.h>

#include "core/units.h"

namespace dlprep {
namespace {

// The value of `key` ("VmHWM:") in /proc/self/status, converted from kB to bytes.
int64_t ReadStatusField(const char* key) {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return -1;
  char line[256];
  int64_t result = -1;
  const size_t n = std::strlen(key);
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::strncmp(line, key, n) != 0) continue;
    long long kb = 0;
    if (std::sscanf(line + n, "%lld", &kb) == 1) result = static_cast<int64_t>(kb) * 1024;
    break;
  }
  std::fclose(f);
  return result;
}

}  // namespace

int64_t CurrentRssBytes() { return ReadStatusField("VmRSS:"); }

int64_t PeakRssBytes() { return ReadStatusField("VmHWM:"); }

bool ResetPeakRss() {
  std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (f == nullptr) return false;
  bool ok = std::fputs("5", f) >= 0;
  ok = (std::fclose(f) == 0) && ok;
  return ok;
}

struct BudgetMemoryPool::State {
  std::atomic<int64_t> allocated{0};
  std::atomic<int64_t> peak{0};
  std::atomic<int64_t> total{0};
  std::atomic<int64_t> count{0};
  std::atomic<int64_t> limit{0};
  // Freed bytes since the allocator was last asked to return memory.
  std::atomic<int64_t> freed{0};
  std::mutex mu;
  std::map<int64_t, int> limits;  // GUARDED_BY(mu): limits of the scopes alive

  struct ReclaimerEntry {
    Reclaimer reclaim;
    int calls = 0;  // in progress
  };
  std::mutex reclaim_mu;
  std::condition_variable reclaim_done;
  std::map<int64_t, ReclaimerEntry> reclaimers;  // GUARDED_BY(reclaim_mu), by id
  int64_t next_reclaimer = 0;                    // GUARDED_BY(reclaim_mu)
  std::atomic<int> num_reclaimers{0};
};

namespace {
// Set while this thread runs reclaimers: what they allocate is let through.
thread_local bool t_reclaiming = false;
}  // namespace

BudgetMemoryPool::BudgetMemoryPool(arrow::MemoryPool* backend)
    : state_(std::make_unique<State>()), backend_(backend) {}

BudgetMemoryPool::~BudgetMemoryPool() = default;

arrow::Status BudgetMemoryPool::Refuse(int64_t size) const {
  const int64_t in_use = state_->allocated.load();
  const int64_t limit = state_->limit.load();
  return arrow::Status::OutOfMemory(
      "memory limit reached: allocating ", FormatBytes(static_cast<double>(size)),
      " with ", FormatBytes(static_cast<double>(in_use)), " in use needs ",
      FormatBytes(static_cast<double>(in_use + size)), ", over --memory-limit (",
      "memory_limit) of ", FormatBytes(static_cast<double>(limit)),
      "; raise --memory-limit, or use fewer --workers or smaller batches");
}

void BudgetMemoryPool::Account(int64_t delta) {
  if (delta > 0) {
    state_->total.fetch_add(delta);
    // The peak may miss a concurrent maximum by a few bytes; it is a statistic.
    const int64_t now = state_->allocated.load();
    int64_t peak = state_->peak.load();
    while (now > peak && !state_->peak.compare_exchange_weak(peak, now)) {
    }
    return;
  }
  const int64_t limit = state_->limit.load();
  if (limit <= 0) return;
  // Hand freed pages back to the system every limit / 8 freed bytes, so that the
  // resident size follows the bytes held (the allocator keeps freed pages otherwise).
  const int64_t step = std::max<int64_t>(limit / 8, int64_t{1} << 20);
  const int64_t freed = state_->freed.fetch_add(-delta) - delta;
  if (freed >= step && state_->freed.exchange(0) >= step) backend_->ReleaseUnused();
}

arrow::Status BudgetMemoryPool::Reserve(int64_t size) {
  // Counts the bytes when they fit, there is no limit, or this thread is reclaiming.
  auto count = [&] {
    const int64_t limit = state_->limit.load();
    const int64_t after = state_->allocated.fetch_add(size) + size;
    if (limit <= 0 || t_reclaiming || after <= limit) return true;
    state_->allocated.fetch_sub(size);
    return false;
  };
  if (count()) return arrow::Status::OK();
  // Reclaimers count what they free by estimate (a spilled bucket's buffer sizes), so
  // ask again while they free something and the allocation does not fit yet.
  while (state_->num_reclaimers.load() > 0) {
    const int64_t missing = state_->allocated.load() + size - state_->limit.load();
    arrow::Result<int64_t> freed = Reclaim(std::max<int64_t>(missing, 1));
    if (!freed.ok()) {
      return freed.status().WithMessage(
          "making room for ", FormatBytes(static_cast<double>(size)),
          " under --memory-limit (memory_limit): ", freed.status().message());
    }
    if (*freed <= 0) break;
    if (count()) return arrow::Status::OK();
  }
  return Refuse(size);
}

arrow::Result<int64_t> BudgetMemoryPool::Reclaim(int64_t bytes) {
  t_reclaiming = true;
  int64_t freed = 0;
  std::unique_lock<std::mutex> lock(state_->reclaim_mu);
  std::vector<int64_t> ids;
  for (const auto& [id, entry] : state_->reclaimers) ids.push_back(id);
  for (int64_t id : ids) {
    auto it = state_->reclaimers.find(id);
    if (it == state_->reclaimers.end()) continue;
    State::ReclaimerEntry& entry = it->second;
    entry.calls += 1;
    lock.unlock();
    arrow::Result<int64_t> got = entry.reclaim(bytes - freed);
    lock.lock();
    entry.calls -= 1;
    state_->reclaim_done.notify_all();
    if (!got.ok()) {
      t_reclaiming = false;
      return got.status();
    }
    freed += std::max<int64_t>(*got, 0);
    if (freed >= bytes) break;
  }
  t_reclaiming = false;
  return freed;
}

int64_t BudgetMemoryPool::AddReclaimer(Reclaimer reclaimer) {
  std::lock_guard<std::mutex> lock(state_->reclaim_mu);
  const int64_t id = state_->next_reclaimer++;
  state_->reclaimers[id].reclaim = std::move(reclaimer);
  state_->num_reclaimers.fetch_add(1);
  return id;
}

void BudgetMemoryPool::RemoveReclaimer(int64_t id) {
  std::unique_lock<std::mutex> lock(state_->reclaim_mu);
  auto it = state_->reclaimers.find(id);
  if (it == state_->reclaimers.end()) return;
  state_->reclaim_done.wait(lock, [&] { return it->second.calls == 0; });
  state_->reclaimers.erase(it);
  state_->num_reclaimers.fetch_sub(1);
}

arrow::Status BudgetMemoryPool::Allocate(int64_t size, int64_t alignment, uint8_t** out) {
  if (size > 0) {
    ARROW_RETURN_NOT_OK(Reserve(size));
  } else {
    state_->allocated.fetch_add(size);
  }
  arrow::Status st = backend_->Allocate(size, alignment, out);
  if (!st.ok()) {
    state_->allocated.fetch_sub(size);
    return st;
  }
  state_->count.fetch_add(1);
  Account(size);
  return st;
}

arrow::Status BudgetMemoryPool::Reallocate(int64_t old_size, int64_t new_size,
                                           int64_t alignment, uint8_t** ptr) {
  const int64_t delta = new_size - old_size;
  if (delta > 0) {
    ARROW_RETURN_NOT_OK(Reserve(delta));
  } else {
    state_->allocated.fetch_add(delta);
  }
  arrow::Status st = backend_->Reallocate(old_size, new_size, alignment, ptr);
  if (!st.ok()) {
    state_->allocated.fetch_sub(delta);
    return st;
  }
  Account(delta);
  return st;
}

void BudgetMemoryPool::Free(uint8_t* buffer, int64_t size, int64_t alignment) {
  backend_->Free(buffer, size, alignment);
  state_->allocated.fetch_sub(size);
  Account(-size);
}

void BudgetMemoryPool::ReleaseUnused() { backend_->ReleaseUnused(); }

int64_t BudgetMemoryPool::bytes_allocated() const { return state_->allocated.load(); }
int64_t BudgetMemoryPool::max_memory() const { return state_->peak.load(); }
int64_t BudgetMemoryPool::total_bytes_allocated() const { return state_->total.load(); }
int64_t BudgetMemoryPool::num_allocations() const { return state_->count.load(); }
std::string BudgetMemoryPool::backend_name() const { return backend_->backend_name(); }
int64_t BudgetMemoryPool::limit() const { return state_->limit.load(); }

int64_t BudgetMemoryPool::available() const {
  const int64_t limit = state_->limit.load();
  if (limit <= 0) return std::numeric_limits<int64_t>::max();
  return std::max<int64_t>(limit - state_->allocated.load(), 0);
}

void BudgetMemoryPool::ResetPeak() { state_->peak.store(state_->allocated.load()); }

void BudgetMemoryPool::AddLimit(int64_t bytes) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->limits[bytes] += 1;
  state_->limit.store(state_->limits.begin()->first);
}

void BudgetMemoryPool::RemoveLimit(int64_t bytes) {
  std::lock_guard<std::mutex> lock(state_->mu);
  auto it = state_->limits.find(bytes);
  if (it != state_->limits.end() && --it->second == 0) state_->limits.erase(it);
  state_->limit.store(state_->limits.empty() ? 0 : state_->limits.begin()->first);
}

BudgetMemoryPool* EnginePool() {
  // Never destroyed: buffers may outlive main() in static objects.
  static BudgetMemoryPool* pool = new BudgetMemoryPool(arrow::default_memory_pool());
  return pool;
}

arrow::compute::ExecContext* EngineExecContext() {
  static auto* context = new arrow::compute::ExecContext(EnginePool());
  return context;
}

MemoryLimitScope::MemoryLimitScope(int64_t bytes) : bytes_(std::max<int64_t>(bytes, 0)) {
  if (bytes_ == 0) return;
  static const bool decay_set = [] {
    // jemalloc's default (as Arrow builds it) keeps freed pages for a second; under a
    // budget, return them sooner. Only arenas made from now on (the workers') follow.
    if (EnginePool()->backend_name() == "jemalloc") {
      return arrow::jemalloc_set_decay_ms(100).ok();
    }
    return false;
  }();
  (void)decay_set;
  EnginePool()->AddLimit(bytes_);
}

MemoryLimitScope::~MemoryLimitScope() {
  if (bytes_ > 0) EnginePool()->RemoveLimit(bytes_);
}

}  // namespace dlprep
