#pragma once
// Helpers shared by the TFRecord codec tests (header only; never linked into the
// library).

#include <cstring>
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

// Protobuf wire-format builders for hand-made messages (merge and hostile-input tests).

inline std::string PbVarint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}

/// A tag: field number and wire type (0 varint, 1 fixed64, 2 length-delimited, 3/4
/// start/end group, 5 fixed32).
inline std::string PbTag(uint32_t field, uint32_t wire_type) {
  return PbVarint(uint64_t{field} << 3 | wire_type);
}

/// A length-delimited field.
inline std::string PbLen(uint32_t field, const std::string& payload) {
  return PbTag(field, 2) + PbVarint(payload.size()) + payload;
}

/// Int64List / FloatList with packed values, BytesList.
inline std::string PbInt64List(const std::vector<int64_t>& values) {
  std::string packed;
  for (int64_t v : values) packed += PbVarint(static_cast<uint64_t>(v));
  return PbLen(1, packed);
}
inline std::string PbFloatList(const std::vector<float>& values) {
  std::string packed(values.size() * 4, '\0');
  if (!values.empty()) std::memcpy(packed.data(), values.data(), packed.size());
  return PbLen(1, packed);
}
inline std::string PbBytesList(const std::vector<std::string>& values) {
  std::string out;
  for (const auto& v : values) out += PbLen(1, v);
  return out;
}

/// Feature messages holding one value list.
inline std::string PbInt64Feature(const std::vector<int64_t>& v) { return PbLen(3, PbInt64List(v)); }
inline std::string PbFloatFeature(const std::vector<float>& v) { return PbLen(2, PbFloatList(v)); }
inline std::string PbBytesFeature(const std::vector<std::string>& v) {
  return PbLen(1, PbBytesList(v));
}

/// One map entry field (field 1 of Features / FeatureLists): key, value.
inline std::string PbEntry(const std::string& key, const std::string& value) {
  return PbLen(1, PbLen(1, key) + PbLen(2, value));
}

/// Example{features{entries}} (or SequenceExample.context when `field` is 1, and
/// SequenceExample.feature_lists when it is 2).
inline std::string PbSection(const std::string& entries, uint32_t field = 1) {
  return PbLen(field, entries);
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
