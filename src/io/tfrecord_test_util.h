#pragma once
// Helpers shared by the TFRecord codec tests (header only; never linked into the
// library).

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <arrow/api.h>
#include <arrow/json/from_string.h>
#include <gtest/gtest.h>

#include "dlprep/source.h"

namespace dlprep::io::testing {

/// Builds an array from JSON; fails the test on error.
inline std::shared_ptr<arrow::Array> Json(const std::shared_ptr<arrow::DataType>& type,
                                          const std::string& json) {
  auto r = arrow::json::ArrayFromJSONString(type, json);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ValueOrDie();
}

inline std::string FromHex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

inline std::string ToHex(const std::string& s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}

/// A fresh, empty folder for one test under DLPREP_TEST_TMPDIR.
inline std::string TempDir(const std::string& name) {
#ifdef DLPREP_TEST_TMPDIR
  std::filesystem::path base = DLPREP_TEST_TMPDIR;
#else
  std::filesystem::path base = ::testing::TempDir();
#endif
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string leaf = std::string(info->test_suite_name()) + "." + info->name() + "." + name;
  for (char& c : leaf) {
    if (c == '/') c = '_';  // parameterized test names
  }
  std::filesystem::path dir = base / "h1" / leaf;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

inline bool Contains(const arrow::Status& st, const std::string& text) {
  return st.message().find(text) != std::string::npos;
}

}  // namespace dlprep::io::testing

#define EXPECT_ERROR_HAS(expr, text)                                           \
  do {                                                                         \
    ::arrow::Status _st = (expr);                                              \
    EXPECT_FALSE(_st.ok());                                                    \
    EXPECT_TRUE(::dlprep::io::testing::Contains(_st, text)) << _st.ToString(); \
  } while (0)
