// `dlprep windows`: per-key sliding windows of an event history into training examples
// (the churn pipeline): events (+ churn labels) -> one row per window -> TFRecord.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <cstdio>
#include <limits>
#include <set>
#include <thread>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/progress.h"
#include "core/text.h"
#include "core/units.h"
#include "dlprep/pipeline.h"
#include "exec/builtin_ops.h"
#include "features/steps.h"
#include "features/windows.h"

namespace dlprep::cli {

namespace {

struct WindowsFlags {
  std::vector<std::string> events;
  std::string labels;
  std::string key, time, category, label_time;
  std::string values, aggs = "sum,mean,max", categories;
  std::string window, stride, step, horizon = "0s", until;
  OutputFlags output;
  RunFlags run;
  CommonFlags common;
  bool dry_run = false;
};

std::string Absolute(const std::string& path) {
  return std::filesystem::absolute(path).lexically_normal().string();
}

// The pipeline file (JSON, which is YAML) that this command runs, with the discovered
// categories and the computed end of observation filled in.
arrow::Result<std::string> PipelineFileText(const WindowsFlags& f,
                                            const features::WindowOptions& o) {
  InputFlags ein;
  ein.paths = f.events;
  ARROW_ASSIGN_OR_RAISE(std::string format, DetectInputFormat(ein));
  std::vector<std::string> events;
  for (const auto& p : f.events) events.push_back(Absolute(p));
  nlohmann::ordered_json steps = nlohmann::json::array();
  steps.push_back({{"filter", {{"expr", "is_valid(`" + f.key + "`)"}}}});
  if (!f.labels.empty()) {
    InputFlags lin;
    lin.paths = {f.labels};
    ARROW_ASSIGN_OR_RAISE(std::string lformat, DetectInputFormat(lin));
    steps.push_back({{"join",
                      {{"source", {{"format", lformat},
                                   {"paths", {Absolute(f.labels)}},
                                   {"columns", {f.key, f.label_time}}}},
                       {"on", {f.key}}}}});
  }
  nlohmann::ordered_json w = {{"key", o.key}, {"time", o.time}};
  if (!o.category.empty()) {
    w["category"] = o.category;
    w["categories"] = o.categories;
  }
  if (!o.label_time.empty()) w["label_time"] = o.label_time;
  w["values"] = o.values;
  w["aggs"] = o.aggs;
  w["window"] = f.window;
  w["stride"] = f.stride;
  w["step"] = f.step;
  w["horizon"] = f.horizon;
  w["until"] = std::to_string(o.until_s);
  steps.push_back({{"windows", w}});
  nlohmann::ordered_json sink = {{"format", f.output.format},
                                 {"path", Absolute(f.output.output_dir)}};
  if (f.output.format == "tfrecord") sink["compression"] = f.output.compression;
  sink["shards"] = f.output.shards;
  sink["overwrite"] = f.output.overwrite;
  nlohmann::ordered_json doc = {
      {"source", {{"format", format}, {"paths", events}}}, {"steps", steps}, {"sink", sink}};
  return "# dlprep windows as a pipeline file (JSON is YAML): dlprep run FILE\n" +
         DumpJson(doc, 2) + "\n";
}

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// Seconds per unit of a time column; 1 for int64 epoch seconds.
arrow::Result<int64_t> UnitsPerSecond(const arrow::DataType& type, const std::string& column) {
  if (type.id() == arrow::Type::INT64) return 1;
  if (type.id() != arrow::Type::TIMESTAMP) {
    return arrow::Status::TypeError("--time: column '", column, "' has type ", type.ToString(),
                                    "; expected a timestamp or int64 epoch seconds");
  }
  switch (static_cast<const arrow::TimestampType&>(type).unit()) {
    case arrow::TimeUnit::SECOND: return 1;
    case arrow::TimeUnit::MILLI: return 1000;
    case arrow::TimeUnit::MICRO: return 1000000;
    case arrow::TimeUnit::NANO: return 1000000000;
  }
  return 1;
}

// One pass over the time (and category) columns: the latest event time in seconds and
// the distinct non-null categories, sorted bytewise.
// One pass over the time (and category) column of every events file: the largest event
// time and, when `categories` is set, every distinct category. Partitions are scanned by
// `workers` threads.
arrow::Status ScanEvents(const WindowsFlags& f, int workers, int64_t* max_time,
                         std::set<std::string>* categories) {
  InputFlags in;
  in.paths = f.events;
  in.columns = f.time + (f.category.empty() ? "" : "," + f.category);
  ARROW_ASSIGN_OR_RAISE(auto source, OpenInput(in));
  ARROW_ASSIGN_OR_RAISE(int64_t per_s,
                        UnitsPerSecond(*source->schema()->field(0)->type(), f.time));
  struct Partial {
    int64_t max_time = std::numeric_limits<int64_t>::min();
    std::set<std::string> categories;
    arrow::Status status;
  };
  std::atomic<int64_t> next{0};
  auto scan = [&](Partial* out) -> arrow::Status {
    for (int64_t p = next++; p < source->num_partitions(); p = next++) {
      ARROW_ASSIGN_OR_RAISE(auto reader, source->OpenPartition(p));
      while (true) {
        ARROW_RETURN_NOT_OK(CheckInterrupted());
        std::shared_ptr<arrow::RecordBatch> batch;
        ARROW_RETURN_NOT_OK(reader->ReadNext(&batch));
        if (batch == nullptr) break;
        const arrow::Array& time = *batch->column(0);
        const int64_t* v = time.data()->GetValues<int64_t>(1);
        for (int64_t i = 0; i < time.length(); ++i) {
          if (time.IsValid(i)) out->max_time = std::max(out->max_time, FloorDiv(v[i], per_s));
        }
        if (categories != nullptr && batch->num_columns() > 1) {
          ARROW_ASSIGN_OR_RAISE(auto unique, arrow::compute::Unique(batch->column(1)));
          ARROW_ASSIGN_OR_RAISE(auto as_str, arrow::compute::Cast(*unique, arrow::utf8()));
          const auto& s = static_cast<const arrow::StringArray&>(*as_str);
          for (int64_t i = 0; i < s.length(); ++i) {
            if (s.IsValid(i)) out->categories.insert(std::string(s.GetView(i)));
          }
        }
      }
    }
    return arrow::Status::OK();
  };
  if (workers <= 0) workers = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int threads =
      static_cast<int>(std::clamp<int64_t>(source->num_partitions(), 1, workers));
  std::vector<Partial> partials(threads);
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) {
    pool.emplace_back([&, t] { partials[t].status = scan(&partials[t]); });
  }
  partials[0].status = scan(&partials[0]);
  for (auto& th : pool) th.join();
  *max_time = std::numeric_limits<int64_t>::min();
  for (auto& part : partials) {
    ARROW_RETURN_NOT_OK(part.status);
    *max_time = std::max(*max_time, part.max_time);
    if (categories != nullptr) categories->merge(part.categories);
  }
  return arrow::Status::OK();
}

arrow::Status RunWindowsJob(const WindowsFlags& f, nlohmann::json* stats_out) {
  nlohmann::json& stats = *stats_out;
  features::WindowOptions o;
  o.key = f.key;
  o.time = f.time;
  o.category = f.category;
  o.label_time = f.labels.empty() ? "" : f.label_time;
  o.values = SplitCommaList(f.values);
  o.aggs = SplitCommaList(f.aggs);
  ARROW_ASSIGN_OR_RAISE(o.window_s, ParseWholeSeconds(f.window, "--window"));
  ARROW_ASSIGN_OR_RAISE(o.stride_s, ParseWholeSeconds(f.stride, "--stride"));
  ARROW_ASSIGN_OR_RAISE(o.step_s, ParseWholeSeconds(f.step, "--step"));
  ARROW_ASSIGN_OR_RAISE(o.horizon_s, ParseWholeSeconds(f.horizon, "--horizon"));
  if (!f.labels.empty() && f.label_time.empty()) {
    return arrow::Status::Invalid("option --labels needs --label-time (the churn time column)");
  }
  std::set<std::string> found;
  int64_t max_time = 0;
  const bool discover = !f.category.empty() && f.categories.empty();
  if (f.until.empty() || discover) {
    ARROW_RETURN_NOT_OK(ScanEvents(f, f.run.workers, &max_time, discover ? &found : nullptr));
  }
  if (discover) {
    o.categories.assign(found.begin(), found.end());
  } else {
    o.categories = SplitCommaList(f.categories);
  }
  if (!f.until.empty()) {
    ARROW_ASSIGN_OR_RAISE(o.until_s, features::ParseTimePoint(f.until, "--until"));
  } else if (max_time == std::numeric_limits<int64_t>::min()) {
    return arrow::Status::Invalid("the events have no non-null times; pass --until");
  } else if (o.step_s > 0) {
    o.until_s = FloorDiv(max_time, o.step_s) * o.step_s + o.step_s;
  }
  ARROW_ASSIGN_OR_RAISE(auto op, features::WindowsOperator::Make(o));
  if (f.dry_run) {
    ARROW_ASSIGN_OR_RAISE(std::string text, PipelineFileText(f, o));
    std::fputs(text.c_str(), stdout);
    return arrow::Status::OK();
  }

  std::vector<std::string> inputs = f.events;
  if (!f.labels.empty()) inputs.push_back(f.labels);
  ARROW_RETURN_NOT_OK(CheckOutputOutsideInputs(inputs, f.output.output_dir));
  WarnAboutLeftoverAttempts(f.output.output_dir);
  InputFlags in;
  in.paths = f.events;
  ARROW_ASSIGN_OR_RAISE(auto events, OpenInput(in));
  ARROW_ASSIGN_OR_RAISE(auto wopts, MakeWriteOptions(f.output));
  ARROW_ASSIGN_OR_RAISE(auto not_null_key,
                        exec::MakeFilter({"is_valid(`" + f.key + "`)"}));
  Pipeline pipeline = Pipeline::Read(events).Map(not_null_key);
  if (!f.labels.empty()) {
    InputFlags lin;
    lin.paths = {f.labels};
    lin.columns = f.key + "," + f.label_time;
    ARROW_ASSIGN_OR_RAISE(auto labels, OpenInput(lin));
    exec::BroadcastJoinOptions j;
    j.side = labels;
    j.side_name = f.labels;
    j.on = {f.key};
    ARROW_ASSIGN_OR_RAISE(auto join, exec::MakeBroadcastJoin(j));
    pipeline.MapStateful(join);
  }
  pipeline.GroupBy({f.key}, f.time).Apply(op).Write(wopts);

  Progress progress("windows", events->num_partitions(), !f.common.quiet);
  ARROW_ASSIGN_OR_RAISE(RunOptions run, MakeRunOptions(f.run));
  run.progress = &progress;
  auto result = pipeline.Run(run);
  progress.Finish();
  ARROW_RETURN_NOT_OK(CompleteJob(result, RunStats{}, f.output.output_dir,
                                  /*errors=*/nullptr, /*errors_path=*/"", &stats));
  int64_t null_keys = 0;
  for (const auto& st : result->stages) {
    if (st.name == "filter") null_keys = st.rows_in - st.rows_out;
  }
  stats["dropped_null_key_rows"] = null_keys;
  stats["dropped_null_time_rows"] = op->dropped_rows();
  stats["categories"] = o.categories;
  stats["until"] = o.until_s;
  stats["windows"] = result->rows_written;
  if (!f.common.quiet) {
    std::fprintf(stderr,
                 "dlprep windows: %lld events -> %lld windows of %zu features x %lld steps "
                 "in '%s' (%.2f s; dropped %lld rows with a null key, %lld with a null time)\n",
                 static_cast<long long>(result->rows_read),
                 static_cast<long long>(result->rows_written), op->feature_names().size(),
                 static_cast<long long>(o.window_s / o.step_s), f.output.output_dir.c_str(),
                 result->wall_seconds, static_cast<long long>(null_keys),
                 static_cast<long long>(op->dropped_rows()));
  }
  return arrow::Status::OK();
}

arrow::Status RunWindows(const WindowsFlags& f) {
  nlohmann::json stats = {{"command", "windows"}};
  arrow::Status st = RunWindowsJob(f, &stats);
  if (f.dry_run && st.ok()) return st;
  return FinishStats(st, f.common.stats_path, &stats);
}

}  // namespace

void AddWindowsCommand(CLI::App* root, std::vector<Command>* commands) {
  auto f = std::make_shared<WindowsFlags>();
  CLI::App* app = root->add_subcommand(
      "windows", "Per-key sliding windows of events into training examples (churn)");
  app->add_option("--events", f->events, "Event files, folders or globs (Parquet, CSV, JSON)")
      ->required();
  app->add_option("--labels", f->labels, "Labels: key and churn time per key (absent: not churned)");
  app->add_option("--key", f->key, "Key column (int64 or string)")->required();
  app->add_option("--time", f->time, "Event time column (timestamp or int64 epoch seconds)")
      ->required();
  app->add_option("--category", f->category, "Category column (string) counted per step");
  app->add_option("--categories", f->categories,
                  "Categories to count, in order (default: all distinct, sorted)");
  app->add_option("--values", f->values, "Numeric value columns to aggregate (a,b)");
  app->add_option("--aggs", f->aggs, "Aggregations: any of sum,mean,min,max, in order")
      ->capture_default_str();
  app->add_option("--window", f->window, "Window length W: a duration in whole seconds (e.g. 14d, 1.5d, 2w, 36h)")->required();
  app->add_option("--stride", f->stride, "Stride S between window starts (e.g. 7d)")->required();
  app->add_option("--step", f->step, "Step P inside a window (e.g. 1d)")->required();
  app->add_option("--horizon", f->horizon, "Label horizon H after a window's end (e.g. 30d)")
      ->capture_default_str();
  app->add_option("--label-time", f->label_time, "Churn time column of --labels");
  app->add_option("--until", f->until,
                  "End of observation U: epoch seconds or ISO date (default: latest event "
                  "time floored to the step, plus one step)");
  AddOutputFlags(app, &f->output, "tfrecord");
  AddRunFlags(app, &f->run);
  app->add_flag("--dry-run", f->dry_run,
                "Print the pipeline file this command runs (categories and --until filled "
                "in) and exit");
  AddCommonFlags(app, &f->common);
  app->footer(
      "Example:\n"
      "  dlprep gen churn --customers 10000 --days 120 -o data/churn\n"
      "  dlprep windows --events data/churn/events --labels data/churn/labels \\\n"
      "    --key customer_id --time ts --category event_type --values amount,duration \\\n"
      "    --aggs sum,mean,max --window 14d --stride 7d --step 1d --horizon 30d \\\n"
      "    --label-time churn_ts --output out/windows --memory-limit 1GB");
  commands->push_back({app, [f]() { return RunWindows(*f); }});
}

}  // namespace dlprep::cli
