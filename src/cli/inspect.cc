#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include <arrow/record_batch.h>
#include <arrow/scalar.h>
#include <arrow/type.h>
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

std::string Shorten(std::string s, size_t width) {
  if (s.size() > width) s = s.substr(0, width - 3) + "...";
  return s;
}

// One row as `name=value` pairs on one line, each value cut to a readable width.
std::string FormatRow(const arrow::RecordBatch& batch, int64_t row, size_t width) {
  std::string line;
  for (int c = 0; c < batch.num_columns(); ++c) {
    auto scalar = batch.column(c)->GetScalar(row);
    std::string value = scalar.ok() ? (*scalar)->ToString() : "<error>";
    for (char& ch : value) {
      if (ch == '\n') ch = ' ';
    }
    if (c > 0) line += "  ";
    line += batch.schema()->field(c)->name() + "=" + Shorten(value, width / 2);
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
      "Examples:\n"
      "  dlprep inspect out/tfr\n"
      "  dlprep inspect 'shards/train-*.tfrecord.gz' --head 2 --verify\n"
      "  dlprep inspect events.parquet --head 10");
  commands->push_back({app, [flags]() { return RunInspect(*flags); }});
}

}  // namespace dlprep::cli
