#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <arrow/compute/type_fwd.h>
#include <arrow/memory_pool.h>
#include <arrow/result.h>
#include <arrow/status.h>

namespace dlprep {

/// Resident set size of this process now (VmRSS of /proc/self/status), in bytes; -1
/// where /proc is not available. Thread-safe.
int64_t CurrentRssBytes();

/// Peak resident set size of this process (VmHWM of /proc/self/status), in bytes, since
/// the process started or since the last ResetPeakRss(); -1 where /proc is not
/// available. Thread-safe.
int64_t PeakRssBytes();

/// Resets the peak that PeakRssBytes() reports to the current RSS (writes "5" to
/// /proc/self/clear_refs). Returns false where the kernel does not allow it; the peak
/// then keeps counting from the process start. Thread-safe.
bool ResetPeakRss();

}  // namespace dlprep

namespace dlprep {

/// The memory pool of dlprep's engine: an arrow::MemoryPool over Arrow's default pool
/// that counts the bytes allocated through it and, while a limit is set, refuses an
/// allocation that would take them over it (Status::OutOfMemory naming
/// `--memory-limit`, the limit and the bytes the allocation needed). The engine
/// allocates its Arrow data here (sources' decode buffers, operator outputs, grouped
/// buckets, spill and IPC read buffers, the reorder buffer's batches), so that the
/// limit is the budget of the whole run rather than of one part of it; grouped steps
/// spill earlier when what the pool holds leaves too little room.
///
/// Before it refuses an allocation, the pool asks the reclaimers registered with
/// AddReclaimer() (grouped steps, which spill buckets to disk) to free what is missing,
/// and refuses only when that leaves too little room.
///
/// While a limit is set, memory freed through the pool is handed back to the operating
/// system as it goes (the allocator's ReleaseUnused() after each `limit / 8` freed
/// bytes), so that the resident size follows what the pool holds.
///
/// Thread-safety: every method may be called from any thread.
class BudgetMemoryPool : public arrow::MemoryPool {
 public:
  /// A pool over `backend` (not owned; must outlive the pool), without a limit.
  explicit BudgetMemoryPool(arrow::MemoryPool* backend);
  ~BudgetMemoryPool() override;

  using arrow::MemoryPool::Allocate;
  using arrow::MemoryPool::Free;
  using arrow::MemoryPool::Reallocate;

  arrow::Status Allocate(int64_t size, int64_t alignment, uint8_t** out) override;
  arrow::Status Reallocate(int64_t old_size, int64_t new_size, int64_t alignment,
                           uint8_t** ptr) override;
  void Free(uint8_t* buffer, int64_t size, int64_t alignment) override;
  void ReleaseUnused() override;
  int64_t bytes_allocated() const override;
  /// Peak of bytes_allocated() since the pool was made or ResetPeak() was called.
  int64_t max_memory() const override;
  int64_t total_bytes_allocated() const override;
  int64_t num_allocations() const override;
  std::string backend_name() const override;

  /// The limit in force (the smallest of those set with MemoryLimitScope); 0: none.
  int64_t limit() const;
  /// Bytes that may still be allocated: limit() - bytes_allocated() (0 when over it);
  /// INT64_MAX without a limit.
  int64_t available() const;
  /// Sets max_memory() to the bytes allocated now.
  void ResetPeak();

  /// Frees memory held in the pool on request (a grouped step spilling buckets):
  /// called with the bytes an allocation lacks, returns the bytes it freed (0 when it
  /// has nothing to give), or the error that kept it from freeing them (a spill that
  /// could not be written), which the allocation then fails with. It runs on the allocating thread, with none of the pool's
  /// locks held; it must not hold a lock that a thread allocating from the pool may
  /// hold. Allocations it makes itself (a spill file's write buffers) are not refused
  /// and do not call reclaimers again: they are what frees the memory.
  using Reclaimer = std::function<arrow::Result<int64_t>(int64_t bytes)>;
  /// Registers `reclaimer`; returns the id to pass to RemoveReclaimer().
  int64_t AddReclaimer(Reclaimer reclaimer);
  /// Unregisters a reclaimer, waiting for calls of it in progress on other threads to
  /// return; it is not called again once this returns.
  void RemoveReclaimer(int64_t id);

 private:
  friend class MemoryLimitScope;
  void AddLimit(int64_t bytes);
  void RemoveLimit(int64_t bytes);
  arrow::Status Refuse(int64_t size) const;
  // Counts `size` more bytes (> 0) against the limit, asking reclaimers for room when
  // they do not fit; Refuse()s when they still do not.
  arrow::Status Reserve(int64_t size);
  // Calls the reclaimers until `bytes` are freed or all were asked; the bytes freed,
  // or the first reclaimer's error.
  arrow::Result<int64_t> Reclaim(int64_t bytes);
  void Account(int64_t delta);

  struct State;
  std::unique_ptr<State> state_;
  arrow::MemoryPool* backend_;
};

/// The engine's pool (one per process, over arrow::default_memory_pool(); never
/// destroyed). Use it wherever dlprep allocates Arrow memory.
BudgetMemoryPool* EnginePool();

/// An Arrow compute context allocating from EnginePool() (default function registry,
/// no executor of its own), for compute functions the engine calls. Never destroyed.
arrow::compute::ExecContext* EngineExecContext();

/// Sets a limit on EnginePool() for the lifetime of the object: `bytes` > 0 limits the
/// pool to the smallest of the limits of the scopes alive (runs in progress in one
/// process share its memory); 0 sets nothing. The first limit set also tells Arrow's
/// jemalloc allocator, when it is the one in use, to return freed pages to the
/// operating system after 100 ms instead of 1 s. Not copyable.
class MemoryLimitScope {
 public:
  explicit MemoryLimitScope(int64_t bytes);
  ~MemoryLimitScope();
  MemoryLimitScope(const MemoryLimitScope&) = delete;
  MemoryLimitScope& operator=(const MemoryLimitScope&) = delete;

 private:
  int64_t bytes_;
};

}  // namespace dlprep
