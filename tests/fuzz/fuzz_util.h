#pragma once
// Helpers shared by the fuzz targets in this folder (tests only, never linked into the
// library). Each target defines LLVMFuzzerTestOneInput; it is linked either with
// libFuzzer (-DDLPREP_FUZZ=ON, clang) or with replay_main.cc, which runs it over every
// file of a corpus folder (the ctest regression run).

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include <arrow/record_batch.h>
#include <arrow/status.h>

namespace dlprep::fuzz {

/// Reports a broken invariant and aborts, so that libFuzzer keeps the input as a crash
/// and the replay run fails.
[[noreturn]] inline void Fail(const char* target, const std::string& what) {
  std::fprintf(stderr, "fuzz target %s: %s\n", target, what.c_str());
  std::fflush(stderr);
  std::abort();
}

/// Prints why an input was refused when DLPREP_FUZZ_VERBOSE is set (to see whether the
/// seeds reach the code behind the checks); silent otherwise.
inline void Note(const char* target, const arrow::Status& st) {
  static const bool verbose = std::getenv("DLPREP_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "%s: %s\n", target, st.ToString().c_str());
}

/// A folder of this process's own, made on first use and removed at exit: the targets
/// that read files write their input there. Under /dev/shm when it exists (no disk).
inline const std::filesystem::path& ScratchDir() {
  static const std::filesystem::path dir = [] {
    std::error_code ec;
    std::filesystem::path base = std::filesystem::is_directory("/dev/shm", ec)
                                     ? std::filesystem::path("/dev/shm")
                                     : std::filesystem::temp_directory_path();
    std::filesystem::path d = base / ("dlprep-fuzz-" + std::to_string(::getpid()));
    std::filesystem::remove_all(d, ec);
    std::filesystem::create_directories(d);
    std::atexit([] {
      std::error_code ec2;
      std::filesystem::remove_all(ScratchDir(), ec2);
    });
    return d;
  }();
  return dir;
}

/// Writes `bytes` to `path` (truncating).
inline void WriteFile(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// Whether `s` is valid UTF-8 (what every string column must hold).
inline bool IsUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1f) : n == 3 ? (c & 0x0f) : (c & 0x07);
    for (size_t k = 1; k < n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += n;
  }
  return true;
}

/// A batch the engine produced must be valid Arrow data (offsets in range, string
/// columns UTF-8, ...): anything else is wrong data handed on silently.
inline void CheckBatch(const char* target, const arrow::RecordBatch& batch) {
  arrow::Status st = batch.ValidateFull();
  if (!st.ok()) Fail(target, "invalid batch: " + st.ToString());
}

}  // namespace dlprep::fuzz
