#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace dlprep {

/// A one-line progress display on stderr (rows, bytes, rate, parts done, ETA), redrawn at
/// most five times a second, and only when stderr is a terminal: nothing at all is
/// printed otherwise, so logs and pipes stay clean.
///
/// Thread-safety: Add() may be called from any thread; the other methods from one.
class Progress {
 public:
  /// `label` prefixes the line ("convert"); `total_parts` (input partitions, or -1
  /// when unknown) gives the ETA. `enabled` false (e.g. --quiet) never prints.
  Progress(std::string label, int64_t total_parts, bool enabled = true);
  ~Progress();

  /// Counts rows and bytes done.
  void Add(int64_t rows, int64_t bytes);

  /// Counts one finished input partition; finished parts drive the ETA.
  void PartDone();

  /// Clears the line (if one was drawn).
  void Finish();

  int64_t rows() const { return rows_.load(); }
  int64_t bytes() const { return bytes_.load(); }
  int64_t parts() const { return parts_.load(); }
  int64_t total_parts() const { return total_parts_; }
  double elapsed_seconds() const;

 private:
  void Draw(bool force);

  std::string label_;
  int64_t total_parts_;
  bool enabled_;
  std::atomic<int64_t> rows_{0}, bytes_{0}, parts_{0};
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  std::mutex draw_mu_;
  bool drawn_ = false;  // guarded by draw_mu_
};

}  // namespace dlprep
