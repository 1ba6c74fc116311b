#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace dlprep {

/// A one-line progress display on stderr, redrawn five times a second (by a thread of
/// its own, so the line stays current while a job waits, e.g. on a model server) and on
/// updates, and only when stderr is a terminal: nothing at all is printed otherwise,
/// so logs and pipes stay clean.
///
/// A run is one phase, or several named ones (a grouped job reads and shuffles its
/// input, then applies its operator group by group). The line shows the phase, rows
/// and bytes (read in a reading phase, written otherwise), their rates, the parts of
/// the phase done ("part 3/10", never more than the total) and an ETA only when it is
/// known: from the rows read against the input's row count when the source knows it up
/// front (Parquet metadata), else from the parts done; never negative.
///
/// Thread-safety: Add(), AddRead() and PartDone() may be called from any thread, also
/// while another thread calls BeginPhase(); the other methods from one thread.
class Progress {
 public:
  /// `label` prefixes the line ("convert"); `total_parts` (input partitions, or -1
  /// when unknown) gives the ETA. `enabled` false (e.g. --quiet) never prints.
  Progress(std::string label, int64_t total_parts, bool enabled = true);
  ~Progress();

  /// Starts the phase `name` ("read+shuffle", "groups") of `total_parts` parts (-1:
  /// unknown). `reading`: the phase reads the input, and the line shows rows and bytes
  /// read rather than written. `final`: the last phase, whose end is the end of the job
  /// (other phases say "phase ETA"). The last state of the phase before is drawn first,
  /// so its final counts are seen even when the phase took less than a redraw interval.
  void BeginPhase(std::string name, int64_t total_parts, bool reading, bool final);

  /// Rows the input will yield, when known before reading (-1: unknown); with rows read
  /// (AddRead) it gives the ETA of a reading phase, or of a run without phases.
  void SetTotalRows(int64_t rows);

  /// Counts rows and bytes written.
  void Add(int64_t rows, int64_t bytes);

  /// Counts rows and bytes read from the input (bytes as Arrow holds them in memory).
  void AddRead(int64_t rows, int64_t bytes);

  /// Counts one finished part (input partition, or bucket of a grouped phase); finished
  /// parts drive the ETA when rows do not.
  void PartDone();

  /// Text appended to the line on every redraw (e.g. "412 scored, 3 failed, 1 retry,
  /// 4 requests in flight"); called on whichever thread draws, so it must be
  /// thread-safe. Set it before the run starts.
  void SetDetail(std::function<std::string()> detail);

  /// Clears the line (if one was drawn) and stops redrawing it.
  void Finish();

  /// The line as it would be drawn now (without the terminal control codes).
  std::string Line();

  int64_t rows() const { return rows_.load(); }
  int64_t bytes() const { return bytes_.load(); }
  int64_t rows_read() const { return rows_read_.load(); }
  int64_t parts() const { return parts_.load(); }
  int64_t total_parts() const { return total_parts_.load(); }
  double elapsed_seconds() const;

 private:
  void Draw(bool force);
  std::string LineLocked(std::chrono::steady_clock::time_point now);  // draw_mu_ held

  std::string label_;
  bool enabled_;
  std::atomic<int64_t> rows_{0}, bytes_{0}, parts_{0};
  std::atomic<int64_t> rows_read_{0}, bytes_read_{0};
  std::atomic<int64_t> total_rows_{-1};
  std::chrono::steady_clock::time_point start_;
  std::mutex draw_mu_;
  // GUARDED_BY(draw_mu_): the phase, its counters at its start, and the last draw.
  std::string phase_;
  std::atomic<int64_t> total_parts_;
  bool reading_ = false;
  bool final_ = true;
  int64_t phase_rows_ = 0, phase_bytes_ = 0, phase_rows_read_ = 0, phase_bytes_read_ = 0;
  std::chrono::steady_clock::time_point phase_start_;
  std::chrono::steady_clock::time_point last_draw_;
  std::function<std::string()> detail_;
  bool drawn_ = false;
  bool finished_ = false;
  std::condition_variable tick_cv_;  // wakes the redraw thread when finished_
  std::thread ticker_;               // redraws while enabled_ and not finished_
};

}  // namespace dlprep
