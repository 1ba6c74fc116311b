#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type_fwd.h>

#include "dlprep/operator.h"

namespace dlprep::features {

/// Options of the time-series window featurizer (issue 4). Durations are in seconds.
struct WindowOptions {
  /// Key column (int64 or string).
  std::string key;
  /// Event time column: a timestamp of any unit, or int64 epoch seconds.
  std::string time;
  /// Category column (string); empty: no per-category counts.
  std::string category;
  /// Churn time column (nullable timestamp of any unit, or int64 epoch seconds), the
  /// same value on every row of a key; null: the key has not churned. Empty: no label
  /// column, no key churned.
  std::string label_time;
  /// Numeric value columns aggregated per step, in this order.
  std::vector<std::string> values;
  /// Aggregations applied to each value column, in this order: sum, mean, min, max.
  std::vector<std::string> aggs;
  /// Categories counted per step (`count_<c>`), in this order. Required when
  /// `category` is set: an operator sees one key at a time and cannot discover them.
  std::vector<std::string> categories;
  int64_t window_s = 0;   ///< W
  int64_t stride_s = 0;   ///< S
  int64_t step_s = 0;     ///< P
  int64_t horizon_s = 0;  ///< H (0 allowed: churn must fall before the window's end)
  /// End of observation U, epoch seconds; required (INT64_MIN: unset).
  int64_t until_s = std::numeric_limits<int64_t>::min();
};

/// The window featurizer as a grouped operator: all events of one key (sorted by time,
/// with the key's churn time joined onto every row) -> one row per window.
///
/// Semantics (issue 4): times are converted to epoch seconds, floored for sub-second
/// units. Rows with a null time are dropped and counted (dropped_rows()). Origin
/// O = floor(min t, P) (floored from the epoch, also for negative times); limit
/// Z = min(U, churn) when churned, else U. Window k has start = O + k*S and
/// end = start + W and is emitted while end <= Z. An event at t is in window k when
/// start <= t < end, at step floor((t - start) / P). Features per step: `count` (all
/// events), `count_<c>` per category (an event whose category is null or not in the
/// list counts only in `count`), then `<agg>_<v>` per value column and aggregation.
/// Aggregates are computed in double and stored as float32; null values are ignored
/// (mean over the non-null values); a step without non-null values gives 0, as does an
/// empty step. label = 1 when churned and churn < end + H, else 0.
///
/// Output columns: the key (same name and type), `window_start`, `window_end`
/// (timestamp[s, UTC]), `label` (int64) and `features` (list<float32>, (W/P)*F values
/// per row, time-major) with field metadata `dlprep.shape` = "[W/P,F]" and
/// `dlprep.names` = JSON array of the F feature names.
///
/// Thread-safe: Apply() keeps no state except the atomic dropped-row counter.
class WindowsOperator : public GroupedOperator,
                        public std::enable_shared_from_this<WindowsOperator> {
 public:
  /// Validates option values that do not depend on the input schema (durations,
  /// aggregations, required names); column checks happen in OutputSchema().
  static arrow::Result<std::shared_ptr<WindowsOperator>> Make(WindowOptions options);

  std::string name() const override { return "windows"; }
  std::vector<std::string> key_columns() const override { return {options_.key}; }
  std::string sort_column() const override { return options_.time; }

  /// Checks the columns and their types (TypeError naming the column).
  arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(
      const arrow::Schema& input) const override;

  arrow::Result<std::shared_ptr<arrow::Table>> Apply(
      const arrow::Table& group) const override;

  /// Huge keys (over --max-group-bytes) are streamed: events arrive in time order and
  /// only those of the current window and later are kept, so one key's history may be
  /// far larger than memory. The output equals Apply()'s.
  bool supports_streaming() const override { return true; }
  arrow::Status ApplyStream(
      arrow::RecordBatchReader* group,
      const std::function<arrow::Status(std::shared_ptr<arrow::RecordBatch>)>& emit)
      const override;

  /// The map-side step `windows.prepare`: projects the input to the columns Apply()
  /// reads, turns the time and label columns into int64 epoch seconds, the category
  /// into an int16 code column (kCategoryCodeColumn; -1: null or not listed) and drops
  /// rows with a null time (counted in dropped_rows()). Apply() accepts both its
  /// output and the raw input.
  std::shared_ptr<BatchOperator> PreGroup() const override;

  /// Name of the category code column PreGroup() writes.
  static constexpr char kCategoryCodeColumn[] = "__dlprep_windows_category";

  /// Feature names per step, in output order (F entries).
  const std::vector<std::string>& feature_names() const { return feature_names_; }
  /// Rows dropped so far because their time was null (across all Apply() calls).
  int64_t dropped_rows() const { return dropped_rows_.load(); }
  const WindowOptions& options() const { return options_; }
  /// Index of `category` in options().categories, -1 when not listed.
  int32_t CategoryIndex(std::string_view category) const;

 private:
  explicit WindowsOperator(WindowOptions options);

  enum class Agg { kSum, kMean, kMin, kMax };
  class Emitter;

  /// Windows of a key whose first step starts at `origin`.
  int64_t NumWindows(int64_t origin, bool churned, int64_t churn) const;

  WindowOptions options_;
  std::vector<Agg> aggs_;
  std::vector<std::string> feature_names_;
  std::string names_json_;  // feature_names_ as a JSON array (dlprep.names)
  /// Category -> its index in options_.categories.
  std::unordered_map<std::string_view, int32_t> category_index_;
  mutable std::atomic<int64_t> dropped_rows_{0};
};

}  // namespace dlprep::features
