#include "core/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "core/units.h"

namespace dlprep {

namespace {

std::string FormatCount(double n) {
  char buf[32];
  if (n >= 1e9) {
    std::snprintf(buf, sizeof(buf), "%.2fG", n / 1e9);
  } else if (n >= 1e6) {
    std::snprintf(buf, sizeof(buf), "%.2fM", n / 1e6);
  } else if (n >= 1e4) {
    std::snprintf(buf, sizeof(buf), "%.1fk", n / 1e3);
  } else {
    std::snprintf(buf, sizeof(buf), "%.0f", n);
  }
  return buf;
}

// "1:05" or "2:03:45"; `seconds` is clamped to >= 0.
std::string FormatEta(double seconds) {
  const int64_t s = static_cast<int64_t>(std::max(0.0, seconds) + 0.5);
  char buf[48];
  if (s >= 3600) {
    std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof(buf), "%lld:%02lld", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  }
  return buf;
}

}  // namespace

Progress::Progress(std::string label, int64_t total_parts, bool enabled)
    : label_(std::move(label)),
      enabled_(enabled && isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      total_parts_(total_parts),
      phase_start_(start_),
      last_draw_(start_) {
  if (!enabled_) return;
  ticker_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(draw_mu_);
    while (!finished_) {
      if (tick_cv_.wait_for(lock, std::chrono::milliseconds(200)) ==
              std::cv_status::timeout &&
          !finished_) {
        lock.unlock();
        Draw(/*force=*/false);
        lock.lock();
      }
    }
  });
}

Progress::~Progress() { Finish(); }

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::BeginPhase(std::string name, int64_t total_parts, bool reading, bool final) {
  if (enabled_) Draw(/*force=*/true);  // the phase that ends, with its final counts
  {
    std::lock_guard<std::mutex> lock(draw_mu_);
    phase_ = std::move(name);
    total_parts_ = total_parts;
    reading_ = reading;
    final_ = final;
    parts_ = 0;
    phase_rows_ = rows_.load();
    phase_bytes_ = bytes_.load();
    phase_rows_read_ = rows_read_.load();
    phase_bytes_read_ = bytes_read_.load();
    phase_start_ = std::chrono::steady_clock::now();
  }
  if (enabled_) Draw(/*force=*/true);
}

void Progress::SetTotalRows(int64_t rows) { total_rows_ = rows; }

void Progress::SetDetail(std::function<std::string()> detail) {
  std::lock_guard<std::mutex> lock(draw_mu_);
  detail_ = std::move(detail);
}

void Progress::Add(int64_t rows, int64_t bytes) {
  rows_ += rows;
  bytes_ += bytes;
  if (enabled_) Draw(false);
}

void Progress::AddRead(int64_t rows, int64_t bytes) {
  rows_read_ += rows;
  bytes_read_ += bytes;
  if (enabled_) Draw(false);
}

void Progress::PartDone() {
  parts_ += 1;
  if (enabled_) Draw(false);
}

std::string Progress::Line() {
  std::lock_guard<std::mutex> lock(draw_mu_);
  return LineLocked(std::chrono::steady_clock::now());
}

std::string Progress::LineLocked(std::chrono::steady_clock::time_point now) {
  const double secs = std::chrono::duration<double>(now - phase_start_).count();
  // Rows and bytes of this phase: read in a reading phase, written otherwise.
  const int64_t rows =
      reading_ ? rows_read_.load() - phase_rows_read_ : rows_.load() - phase_rows_;
  const double bytes = static_cast<double>(
      reading_ ? bytes_read_.load() - phase_bytes_read_ : bytes_.load() - phase_bytes_);
  const int64_t total_rows = total_rows_.load();
  const int64_t read = rows_read_.load();
  const bool rows_known = (phase_.empty() || reading_) && total_rows > 0;

  std::string line = "[" + label_ + "] ";
  if (!phase_.empty()) line += phase_ + ": ";
  line += FormatCount(static_cast<double>(rows));
  if (reading_ && rows_known) {
    line += " of " + FormatCount(static_cast<double>(total_rows));
  }
  line += reading_ ? " rows read" : " rows";
  line += ", " + FormatBytes(bytes);
  if (secs > 0.05) {
    line += ", " + FormatBytes(bytes / secs) + "/s, " +
            FormatCount(static_cast<double>(rows) / secs) + " rows/s";
  }
  const int64_t done = parts_.load();
  const int64_t total_parts = total_parts_.load();
  if (total_parts > 0) {
    // Parts may be reported after the line's total changed (a phase change racing a
    // late report); the line never claims more parts than there are.
    line += std::string(", ") + (phase_.empty() || reading_ ? "part " : "bucket ") +
            std::to_string(std::min(done, total_parts)) + "/" + std::to_string(total_parts);
  }
  // The ETA: by rows read when the input's row count is known, else by parts done.
  double left = -1;
  if (secs > 0.05) {
    if (rows_known && read > 0 && read <= total_rows) {
      const double phase_read = static_cast<double>(read - phase_rows_read_);
      if (phase_read > 0) {
        left = secs * static_cast<double>(total_rows - read) / phase_read;
      }
    } else if (total_parts > 0 && done > 0 && done <= total_parts) {
      left = secs * static_cast<double>(total_parts - done) / static_cast<double>(done);
    }
  }
  if (left >= 0) line += std::string(final_ ? ", ETA " : ", phase ETA ") + FormatEta(left);
  if (detail_) {
    std::string detail = detail_();
    if (!detail.empty()) line += ", " + detail;
  }
  return line;
}

void Progress::Draw(bool force) {
  std::unique_lock<std::mutex> lock(draw_mu_, std::defer_lock);
  if (force) {
    lock.lock();
  } else if (!lock.try_lock()) {
    return;
  }
  if (finished_) return;
  auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < std::chrono::milliseconds(200)) return;
  last_draw_ = now;
  std::string line = LineLocked(now);
  std::fprintf(stderr, "\r\033[K%s", line.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void Progress::Finish() {
  if (!enabled_) return;
  {
    std::lock_guard<std::mutex> lock(draw_mu_);
    finished_ = true;
    if (drawn_) {
      std::fprintf(stderr, "\r\033[K");
      std::fflush(stderr);
      drawn_ = false;
    }
  }
  tick_cv_.notify_all();
  if (ticker_.joinable()) ticker_.join();
}

}  // namespace dlprep
