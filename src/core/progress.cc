#include "core/progress.h"

#include <unistd.h>

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
}  // namespace

Progress::Progress(std::string label, int64_t total_parts, bool enabled)
    : label_(std::move(label)),
      total_parts_(total_parts),
      enabled_(enabled && isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() { Finish(); }

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::Add(int64_t rows, int64_t bytes) {
  rows_ += rows;
  bytes_ += bytes;
  if (enabled_) Draw(false);
}

void Progress::PartDone() {
  parts_ += 1;
  if (enabled_) Draw(false);
}

void Progress::Draw(bool force) {
  std::unique_lock<std::mutex> lock(draw_mu_, std::try_to_lock);
  if (!lock.owns_lock()) return;
  auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < std::chrono::milliseconds(200)) return;
  last_draw_ = now;
  double secs = std::chrono::duration<double>(now - start_).count();
  double bytes = static_cast<double>(bytes_.load());
  std::string line = "[" + label_ + "] " + FormatCount(static_cast<double>(rows_.load())) +
                     " rows";
  line += ", " + FormatBytes(bytes);
  if (secs > 0.05) {
    line += ", " + FormatBytes(bytes / secs) + "/s, " +
            FormatCount(static_cast<double>(rows_.load()) / secs) + " rows/s";
    int64_t done = parts_.load();
    if (total_parts_ > 0) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), ", part %lld/%lld", static_cast<long long>(done),
                    static_cast<long long>(total_parts_));
      line += buf;
      if (done > 0) {
        double left = secs * static_cast<double>(total_parts_ - done) / static_cast<double>(done);
        std::snprintf(buf, sizeof(buf), ", ETA %d:%02d", static_cast<int>(left) / 60,
                      static_cast<int>(left) % 60);
        line += buf;
      }
    }
  }
  std::fprintf(stderr, "\r\033[K%s", line.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void Progress::Finish() {
  if (!enabled_) return;
  std::lock_guard<std::mutex> lock(draw_mu_);
  if (drawn_) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    drawn_ = false;
  }
}

}  // namespace dlprep
