#include "core/memory.h"

#include <cstdio>
#include <cstring>

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

}  // namespace dlprep
