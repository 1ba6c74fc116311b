#include "features/steps.h"

#include <charconv>
#include <cstdlib>
#include <string>

#include <arrow/compute/api.h>
#include <arrow/scalar.h>
#include <arrow/type.h>

#include "exec/pipeline_file.h"
#include "features/audio/audio_operator.h"
#include "features/windows.h"

namespace dlprep::features {

arrow::Result<int64_t> ParseTimePoint(std::string_view text, std::string_view option) {
  std::string s(text);
  // Epoch seconds: an integer, exactly; one beyond int64 is an error, not the largest
  // int64 (as strtoll would clamp it).
  std::string_view digits = text;
  if (digits.size() > 1 && digits[0] == '+') digits.remove_prefix(1);
  int64_t n = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (!digits.empty() && end == digits.data() + digits.size()) {
    if (ec == std::errc()) return n;
    if (ec == std::errc::result_out_of_range) {
      return arrow::Status::Invalid("option ", option, ": '", s,
                                    "' is beyond the range of epoch seconds (int64)");
    }
  }
  auto parsed = arrow::compute::Cast(arrow::Datum(arrow::MakeScalar(s)),
                                     arrow::timestamp(arrow::TimeUnit::SECOND));
  if (!parsed.ok()) {
    return arrow::Status::Invalid("option ", option, ": '", s,
                                  "' is not a time; expected epoch seconds or an ISO date "
                                  "such as 2024-06-30 or 2024-06-30T12:00:00");
  }
  return parsed->scalar_as<arrow::TimestampScalar>().value;
}

arrow::Status RegisterFeatureSteps() {
  // windows: the time-series window featurizer, a grouped step by `key` sorted by
  // `time`. Unlike `dlprep windows`, a pipeline file must list `categories` (when
  // `category` is set) and `until`, because a step does not scan the whole input first;
  // `dlprep windows --dry-run` prints them filled in. Join the labels with a `join`
  // step before it.
  arrow::Status windows = exec::RegisterStep("windows", [](exec::ConfigNode* o) -> arrow::Result<PipelineStep> {
    WindowOptions w;
    ARROW_ASSIGN_OR_RAISE(w.key, o->GetString("key"));
    ARROW_ASSIGN_OR_RAISE(w.time, o->GetString("time"));
    ARROW_ASSIGN_OR_RAISE(w.category, o->GetString("category", ""));
    ARROW_ASSIGN_OR_RAISE(w.categories, o->GetStringList("categories", {}));
    ARROW_ASSIGN_OR_RAISE(w.label_time, o->GetString("label_time", ""));
    ARROW_ASSIGN_OR_RAISE(w.values, o->GetStringList("values", {}));
    ARROW_ASSIGN_OR_RAISE(w.aggs, o->GetStringList("aggs", {"sum", "mean", "max"}));
    ARROW_ASSIGN_OR_RAISE(w.window_s, o->GetWholeSeconds("window"));
    ARROW_ASSIGN_OR_RAISE(w.stride_s, o->GetWholeSeconds("stride"));
    ARROW_ASSIGN_OR_RAISE(w.step_s, o->GetWholeSeconds("step"));
    ARROW_ASSIGN_OR_RAISE(w.horizon_s, o->GetWholeSeconds("horizon", 0));
    ARROW_ASSIGN_OR_RAISE(std::string until, o->GetString("until"));
    ARROW_ASSIGN_OR_RAISE(w.until_s, ParseTimePoint(until, "until"));
    auto op = WindowsOperator::Make(w);
    if (!op.ok()) return o->OptionError("window", op.status().message());
    PipelineStep s;
    s.kind = PipelineStep::Kind::kGrouped;
    s.grouped = *op;
    s.group_keys = {w.key};
    s.group_sort_by = w.time;
    return s;
  });
  // audio: the speech featurizer (features/audio), a stateful step over binary_files.
  arrow::Status audio = audio::RegisterAudioStep();
  return windows.ok() ? audio : windows;
}

}  // namespace dlprep::features
