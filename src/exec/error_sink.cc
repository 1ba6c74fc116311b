#include "exec/error_sink.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <arrow/array.h>
#include <arrow/record_batch.h>
#include <arrow/scalar.h>
#include <arrow/type.h>
#include <nlohmann/json.hpp>

#include "core/text.h"
#include "core/units.h"

namespace dlprep::exec {

namespace {

nlohmann::json ValueJson(const arrow::Array& column, int64_t row) {
  if (column.IsNull(row)) return nullptr;
  switch (column.type_id()) {
    case arrow::Type::STRING:
      return std::string(static_cast<const arrow::StringArray&>(column).GetView(row));
    case arrow::Type::LARGE_STRING:
      return std::string(static_cast<const arrow::LargeStringArray&>(column).GetView(row));
    case arrow::Type::BINARY:
      return "<" + std::to_string(static_cast<const arrow::BinaryArray&>(column).value_length(row)) +
             " bytes>";
    case arrow::Type::LARGE_BINARY:
      return "<" +
             std::to_string(static_cast<const arrow::LargeBinaryArray&>(column).value_length(row)) +
             " bytes>";
    default: {
      auto scalar = column.GetScalar(row);
      return scalar.ok() ? (*scalar)->ToString() : std::string("<unprintable>");
    }
  }
}

}  // namespace

arrow::Status JsonLinesErrorSink::Write(const FailedRows& failed) {
  std::vector<Entry> local;
  for (size_t i = 0; i < failed.errors.rows.size(); ++i) {
    int64_t r = failed.errors.rows[i];
    nlohmann::ordered_json line = {{"operator", failed.operator_name},
                                   {"partition", failed.partition_name},
                                   {"batch_first_row", failed.first_row},
                                   {"row_in_batch", r},
                                   {"error", i < failed.errors.messages.size()
                                                 ? failed.errors.messages[i]
                                                 : std::string()}};
    nlohmann::ordered_json values = nlohmann::ordered_json::object();
    if (failed.input != nullptr && r >= 0 && r < failed.input->num_rows()) {
      for (int c = 0; c < failed.input->num_columns(); ++c) {
        values[failed.input->schema()->field(c)->name()] =
            ValueJson(*failed.input->column(c), r);
      }
    }
    line["row"] = values;
    local.push_back({failed.partition, failed.first_row, r, DumpJson(line)});
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& e : local) entries_.push_back(std::move(e));
  return arrow::Status::OK();
}

arrow::Result<int64_t> JsonLinesErrorSink::Commit() {
  std::lock_guard<std::mutex> lock(mu_);
  std::sort(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.partition, a.first_row, a.row) < std::tie(b.partition, b.first_row, b.row);
  });
  std::string tmp = path_ + ".tmp-" + RandomUuid();
  {
    std::ofstream out(tmp, std::ios::trunc);
    for (const auto& e : entries_) out << e.line << "\n";
    out.close();
    if (!out) {
      std::remove(tmp.c_str());
      return arrow::Status::IOError("--errors: cannot write '", path_, "'");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path_, ec);
  if (ec) {
    std::remove(tmp.c_str());
    return arrow::Status::IOError("--errors: cannot move the error file into place at '",
                                  path_, "': ", ec.message());
  }
  return static_cast<int64_t>(entries_.size());
}

}  // namespace dlprep::exec
