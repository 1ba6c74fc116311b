#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

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
    std::printf("verify: OK, read and decoded all %lld rows%s\n",
                static_cast<long long>(rows),
                format == "tfrecord" ? ", both CRCs of every record checked" : "");
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
      ->check(CLI::IsMember({"auto", "parquet", "csv", "json", "tfrecord"}));
  app->add_option("--head", flags->head, "Rows to print")->capture_default_str();
  app->add_option("--width", flags->width, "Characters per printed row")->capture_default_str();
  app->add_flag("--verify", flags->verify,
                "Read every record (checking both CRCs of each TFRecord record) and exit "
                "non-zero at the first bad one");
  app->add_flag("--skip-corrupt", flags->input.skip_corrupt,
                "Report corrupt TFRecord records and go on");
  app->add_option("--input-compression", flags->input.compression,
                  "TFRecord compression: auto, none, gzip, zlib")
      ->capture_default_str();
  app->add_option("--input-record-type", flags->input.record_type,
                  "TFRecord messages: example or sequence_example")
      ->capture_default_str();
  AddCommonFlags(app, &flags->common);
  app->footer(
      "Examples:\n"
      "  dlprep inspect out/tfr\n"
      "  dlprep inspect 'shards/train-*.tfrecord.gz' --head 2 --verify\n"
      "  dlprep inspect events.parquet --head 10");
  commands->push_back({app, [flags]() { return RunInspect(*flags); }});
}

}  // namespace dlprep::cli
