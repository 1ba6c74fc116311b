#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include <arrow/array.h>
#include <arrow/record_batch.h>
#include <arrow/scalar.h>
#include <arrow/type.h>
#include <arrow/type_traits.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/progress.h"
#include "core/text.h"
#include "core/units.h"

namespace fs = std::filesystem;

namespace dlprep::cli {

namespace {

struct InspectFlags {
  InputFlags input;
  CommonFlags common;
  int64_t head = 5;
  bool verify = false;
  int64_t width = 120;
};

// Cuts `s` to `width` characters (UTF-8 characters, not bytes), ending in "...".
std::string Shorten(const std::string& s, size_t width) {
  size_t chars = 0, cut = 0;
  for (size_t at = 0; at < s.size();) {
    const size_t n = std::max<size_t>(1, Utf8CharLength(std::string_view(s).substr(at)));
    if (chars + 3 < width || chars == 0) cut = at + n;
    ++chars;
    at += n;
  }
  if (chars <= width) return s;
  return s.substr(0, cut) + "...";
}

// "4,096".
std::string WithThousands(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

// Text from the data for one terminal line: control characters as \n, \t, \xNN and
// invalid UTF-8 as \xNN, so that no raw byte reaches the terminal.
std::string PrintableText(std::string_view text) {
  std::string out;
  for (char c : EscapeInvalidUtf8(text)) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

// "<4,096 bytes: 52 49 46 46 ...>": the size and the first bytes in hex.
std::string BinarySummary(std::string_view bytes) {
  constexpr size_t kShown = 4;
  std::string out = "<" + WithThousands(static_cast<int64_t>(bytes.size())) +
                    (bytes.size() == 1 ? " byte" : " bytes");
  for (size_t i = 0; i < bytes.size() && i < kShown; ++i) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "%s%02x", i == 0 ? ": " : " ",
                  static_cast<unsigned char>(bytes[i]));
    out += buf;
  }
  if (bytes.size() > kShown) out += " ...";
  return out + ">";
}

std::string FormatFloat(double v, bool in_list) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), in_list ? "%.4g" : "%.6g", v);
  return buf;
}

// The value of `array` at `row` for a person: lists as "[0.47, 1.02, 0.3, ... 32
// values]" (nested lists as values too), binary as "<4,096 bytes: 52 49 46 46 ...>",
// text with its control characters escaped. `in_list`: an element of a list (strings
// quoted, floats shorter).
std::string FormatValue(const arrow::Array& array, int64_t row, bool in_list) {
  if (array.IsNull(row)) return "null";
  switch (array.type_id()) {
    case arrow::Type::FLOAT:
      return FormatFloat(static_cast<const arrow::FloatArray&>(array).Value(row), in_list);
    case arrow::Type::DOUBLE:
      return FormatFloat(static_cast<const arrow::DoubleArray&>(array).Value(row), in_list);
    case arrow::Type::STRING:
    case arrow::Type::LARGE_STRING: {
      const std::string text =
          PrintableText(array.type_id() == arrow::Type::STRING
                            ? static_cast<const arrow::StringArray&>(array).GetView(row)
                            : static_cast<const arrow::LargeStringArray&>(array).GetView(row));
      return in_list ? "\"" + text + "\"" : text;
    }
    case arrow::Type::BINARY:
      return BinarySummary(static_cast<const arrow::BinaryArray&>(array).GetView(row));
    case arrow::Type::LARGE_BINARY:
      return BinarySummary(static_cast<const arrow::LargeBinaryArray&>(array).GetView(row));
    case arrow::Type::FIXED_SIZE_BINARY:
      return BinarySummary(
          static_cast<const arrow::FixedSizeBinaryArray&>(array).GetView(row));
    case arrow::Type::LIST:
    case arrow::Type::LARGE_LIST:
    case arrow::Type::FIXED_SIZE_LIST:
    case arrow::Type::MAP: {
      std::shared_ptr<arrow::Array> values;
      int64_t begin = 0, length = 0;
      if (array.type_id() == arrow::Type::LARGE_LIST) {
        const auto& list = static_cast<const arrow::LargeListArray&>(array);
        values = list.values();
        begin = list.value_offset(row);
        length = list.value_length(row);
      } else if (array.type_id() == arrow::Type::FIXED_SIZE_LIST) {
        const auto& list = static_cast<const arrow::FixedSizeListArray&>(array);
        values = list.values();
        begin = list.value_offset(row);
        length = list.value_length(row);
      } else {  // list and map (a list of key/value structs)
        const auto& list = static_cast<const arrow::ListArray&>(array);
        values = list.values();
        begin = list.value_offset(row);
        length = list.value_length(row);
      }
      const bool nested = arrow::is_nested(values->type_id());
      // Short lists whole; of longer ones the first values and the count.
      const int64_t shown = nested ? 1 : 3;
      const int64_t whole = nested ? 2 : 4;
      std::string out = "[";
      for (int64_t i = 0; i < length && (length <= whole || i < shown); ++i) {
        if (i > 0) out += ", ";
        out += FormatValue(*values, begin + i, /*in_list=*/true);
      }
      if (length > whole) out += ", ... " + WithThousands(length) + " values";
      return out + "]";
    }
    case arrow::Type::STRUCT: {
      const auto& st = static_cast<const arrow::StructArray&>(array);
      std::string out = "{";
      for (int f = 0; f < st.num_fields(); ++f) {
        if (f > 0) out += ", ";
        out += st.type()->field(f)->name() + ": " +
               FormatValue(*st.field(f), row, /*in_list=*/true);
      }
      return out + "}";
    }
    case arrow::Type::DICTIONARY: {
      const auto& dict = static_cast<const arrow::DictionaryArray&>(array);
      return FormatValue(*dict.dictionary(), dict.GetValueIndex(row), in_list);
    }
    default: {
      auto scalar = array.GetScalar(row);
      return scalar.ok() ? PrintableText((*scalar)->ToString()) : "<error>";
    }
  }
}

// One row as `name=value` pairs on one line, each value cut to a readable width.
std::string FormatRow(const arrow::RecordBatch& batch, int64_t row, size_t width) {
  std::string line;
  for (int c = 0; c < batch.num_columns(); ++c) {
    std::string value = FormatValue(*batch.column(c), row, /*in_list=*/false);
    if (c > 0) line += "  ";
    line += PrintableText(batch.schema()->field(c)->name()) + "=" + Shorten(value, width / 2);
  }
  return line;
}

// Rows recorded in a dlprep folder's _manifest.json, or -1.
int64_t ManifestRows(const std::vector<std::string>& paths) {
  if (paths.size() != 1) return -1;
  std::ifstream in(fs::path(paths[0]) / "_manifest.json");
  if (!in) return -1;
  auto j = nlohmann::json::parse(in, nullptr, false);
  if (!j.is_object() || !j.contains("rows") || !j["rows"].is_number_integer()) return -1;
  return j["rows"].get<int64_t>();
}

// The folder of a dlprep dataset that `paths` names (one folder with a _manifest.json),
// or "".
std::string ManifestDir(const std::vector<std::string>& paths) {
  std::error_code ec;
  if (paths.size() != 1 || !fs::is_directory(paths[0], ec)) return "";
  return fs::exists(fs::path(paths[0]) / "_manifest.json", ec) ? paths[0] : "";
}

// Compares what --verify read with the folder's _manifest.json: every file it lists is
// there with its rows and bytes, and no other file was read. Records removed or added
// whole leave every CRC valid; only these counts show them.
arrow::Status CheckManifest(const std::string& dir, const Source& source,
                            const std::vector<int64_t>& partition_rows) {
  auto listed = ReadManifestFiles(dir);
  if (!listed.ok()) return listed.status().WithMessage("verify failed: ", listed.status().message());
  const fs::path base = fs::absolute(dir).lexically_normal();
  std::map<std::string, int64_t> read;  // rows per file, by name relative to `dir`
  for (int64_t p = 0; p < source.num_partitions(); ++p) {
    const fs::path file = fs::absolute(source.partition_name(p)).lexically_normal();
    read[file.lexically_relative(base).generic_string()] += partition_rows[p];
  }
  std::vector<std::string> problems;
  for (const WrittenFile& w : listed->files) {
    auto it = read.find(fs::path(w.name).lexically_normal().generic_string());
    if (it == read.end()) {
      problems.push_back(w.name + ": listed in _manifest.json but missing");
      continue;
    }
    if (it->second != w.rows) {
      problems.push_back(w.name + ": _manifest.json lists " + std::to_string(w.rows) +
                         " rows, read " + std::to_string(it->second));
    }
    std::error_code ec;
    const auto size = fs::file_size(base / w.name, ec);
    if (!ec && static_cast<int64_t>(size) != w.bytes) {
      problems.push_back(w.name + ": _manifest.json lists " + std::to_string(w.bytes) +
                         " bytes, the file has " + std::to_string(size));
    }
    read.erase(it);
  }
  for (const auto& [name, rows] : read) problems.push_back(name + ": not listed in _manifest.json");
  if (problems.empty()) return arrow::Status::OK();
  std::string all;
  for (const auto& p : problems) all += (all.empty() ? "" : "; ") + p;
  return arrow::Status::IOError("verify failed: '", dir, "' does not match its _manifest.json: ",
                                EscapeInvalidUtf8(all));
}

arrow::Status RunInspect(const InspectFlags& f) {
  ARROW_ASSIGN_OR_RAISE(std::string format, DetectInputFormat(f.input));
  InputFlags in = f.input;
  in.format = format;
  ARROW_ASSIGN_OR_RAISE(auto source, OpenInput(in));
  std::printf("path: %s\n", f.input.paths[0].c_str());
  std::printf("format: %s\n", format.c_str());
  std::printf("files (partitions): %lld\n", static_cast<long long>(source->num_partitions()));
  std::printf("schema:\n");
  for (const auto& field : source->schema()->fields()) {
    std::printf("  %s\n", field->ToString(/*show_metadata=*/true).c_str());
  }
  std::fflush(stdout);

  int64_t manifest_rows = ManifestRows(f.input.paths);
  bool read_all = f.verify || manifest_rows < 0;
  const std::atomic<bool>* cancel = InstallCancelHandler();
  Progress progress(f.verify ? "verify" : "inspect", source->num_partitions(),
                    !f.common.quiet);
  std::vector<std::string> head_lines;
  int64_t rows = 0;
  std::vector<int64_t> partition_rows(static_cast<size_t>(source->num_partitions()), 0);
  for (int64_t p = 0; p < source->num_partitions(); ++p) {
    if (!read_all && static_cast<int64_t>(head_lines.size()) >= f.head) break;
    ARROW_ASSIGN_OR_RAISE(auto reader, source->OpenPartition(p));
    while (true) {
      if (cancel->load()) return arrow::Status::Cancelled("interrupted");
      std::shared_ptr<arrow::RecordBatch> batch;
      arrow::Status st = reader->ReadNext(&batch);
      if (!st.ok()) {
        progress.Finish();
        if (f.verify) return st.WithMessage("verify failed: ", st.message());
        return st;
      }
      if (batch == nullptr) break;
      for (int64_t r = 0; r < batch->num_rows() &&
                          static_cast<int64_t>(head_lines.size()) < f.head;
           ++r) {
        head_lines.push_back(FormatRow(*batch, r, static_cast<size_t>(f.width)));
      }
      rows += batch->num_rows();
      partition_rows[p] += batch->num_rows();
      progress.Add(batch->num_rows(), 0);
      if (!read_all && static_cast<int64_t>(head_lines.size()) >= f.head) break;
    }
    progress.PartDone();
  }
  progress.Finish();
  if (read_all) {
    std::printf("rows: %lld\n", static_cast<long long>(rows));
  } else {
    std::printf("rows: %lld (from _manifest.json; --verify reads them all)\n",
                static_cast<long long>(manifest_rows));
  }
  if (source->skipped_records() > 0) {
    std::printf("skipped corrupt records: %lld\n",
                static_cast<long long>(source->skipped_records()));
    for (const auto& m : source->skipped_messages()) std::printf("  %s\n", m.c_str());
  }
  if (!head_lines.empty()) {
    std::printf("first %zu rows:\n", head_lines.size());
    for (size_t i = 0; i < head_lines.size(); ++i) {
      std::printf("  [%zu] %s\n", i, head_lines[i].c_str());
    }
  }
  if (f.verify) {
    if (source->skipped_records() > 0) {
      return arrow::Status::IOError("verify failed: ", source->skipped_records(),
                                    " corrupt record(s) (listed above)");
    }
    const std::string dir = ManifestDir(f.input.paths);
    if (!dir.empty()) ARROW_RETURN_NOT_OK(CheckManifest(dir, *source, partition_rows));
    std::printf("verify: OK, read and decoded all %lld rows%s\n",
                static_cast<long long>(rows),
                format == "tfrecord" ? ", both CRCs of every record checked" : "");
    if (!dir.empty()) {
      std::printf("verify: rows and bytes of every file match _manifest.json (%lld files)\n",
                  static_cast<long long>(source->num_partitions()));
    }
  }
  nlohmann::json stats = {{"command", "inspect"},
                          {"format", format},
                          {"partitions", source->num_partitions()},
                          {"rows", read_all ? rows : manifest_rows},
                          {"skipped_records", source->skipped_records()},
                          {"verified", f.verify}};
  return WriteStats(f.common.stats_path, DumpJson(stats, 2));
}

}  // namespace

void AddInspectCommand(CLI::App* root, std::vector<Command>* commands) {
  auto flags = std::make_shared<InspectFlags>();
  CLI::App* app = root->add_subcommand(
      "inspect", "Print the schema, row and file counts and first rows of a dataset");
  app->add_option("path", flags->input.paths, "A file, folder or glob (TFRecord, Parquet, CSV, JSON)")
      ->required();
  app->add_option("--input-format", flags->input.format,
                  "auto, parquet, csv, json or tfrecord")
      ->capture_default_str()
      ->transform(OneOf({"auto", "parquet", "csv", "json", "tfrecord"}));
  app->add_option("--head", flags->head, "Rows to print")->capture_default_str();
  app->add_option("--width", flags->width, "Characters per printed row")->capture_default_str();
  app->add_flag("--verify", flags->verify,
                "Read every record (checking both CRCs of each TFRecord record) and exit "
                "non-zero at the first bad one");
  auto& tfrecord_only = flags->input.format_specific;
  tfrecord_only.emplace_back(app->add_flag("--skip-corrupt", flags->input.skip_corrupt,
                                           "Report corrupt TFRecord records and go on"),
                             "tfrecord");
  tfrecord_only.emplace_back(app->add_option("--input-compression", flags->input.compression,
                                             "TFRecord compression: auto, none, gzip, zlib")
                                 ->capture_default_str()
                                 ->transform(OneOf({"auto", "none", "gzip", "zlib"})),
                             "tfrecord");
  tfrecord_only.emplace_back(app->add_option("--input-record-type", flags->input.record_type,
                                             "TFRecord messages: example or sequence_example")
                                 ->capture_default_str()
                                 ->transform(OneOf({"example", "sequence_example"})),
                             "tfrecord");
  AddCommonFlags(app, &flags->common);
  app->footer(
      "Values are shown for reading: lists as [0.47, 1.02, 2.5, ... 32 values], binary as\n"
      "<4,096 bytes: 52 49 46 46 ...>, control characters escaped (\\n, \\x1b).\n\n"
      "Examples:\n"
      "  dlprep inspect out/tfr\n"
      "  dlprep inspect 'shards/train-*.tfrecord.gz' --head 2 --verify\n"
      "  dlprep inspect events.parquet --head 10");
  commands->push_back({app, [flags]() { return RunInspect(*flags); }});
}

}  // namespace dlprep::cli
