// `dlprep gen churn`: realistic synthetic telecom events and churn labels as Parquet,
// for the demo, tests and benchmarks of the churn (time-series window) pipeline.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

#include <arrow/api.h>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/units.h"
#include "dlprep/sink.h"

namespace dlprep::cli {

namespace {

struct GenFlags {
  int64_t customers = 10000;
  int64_t days = 90;
  int64_t seed = 42;
  double churn_rate = 0.2;
  std::string output;
  bool overwrite = false;
  bool quiet = false;
};

constexpr int64_t kEpoch = 1704067200;  // 2024-01-01T00:00:00Z
const char* kTypes[] = {"call", "sms", "data", "topup", "support"};
const double kTypeWeights[] = {0.35, 0.25, 0.3, 0.07, 0.03};

std::shared_ptr<arrow::Schema> EventSchema() {
  return arrow::schema({arrow::field("customer_id", arrow::int64(), false),
                        arrow::field("ts", arrow::timestamp(arrow::TimeUnit::SECOND, "UTC"), false),
                        arrow::field("event_type", arrow::utf8(), false),
                        arrow::field("amount", arrow::float64()),
                        arrow::field("duration", arrow::float64())});
}

std::shared_ptr<arrow::Schema> LabelSchema() {
  return arrow::schema(
      {arrow::field("customer_id", arrow::int64(), false),
       arrow::field("churn_ts", arrow::timestamp(arrow::TimeUnit::SECOND, "UTC"))});
}

// Builders for one batch of events.
struct EventBatch {
  arrow::Int64Builder id;
  arrow::TimestampBuilder ts{arrow::timestamp(arrow::TimeUnit::SECOND, "UTC"),
                             arrow::default_memory_pool()};
  arrow::StringBuilder type;
  arrow::DoubleBuilder amount, duration;
  int64_t rows = 0;

  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Finish() {
    std::shared_ptr<arrow::Array> a, b, c, d, e;
    ARROW_RETURN_NOT_OK(id.Finish(&a));
    ARROW_RETURN_NOT_OK(ts.Finish(&b));
    ARROW_RETURN_NOT_OK(type.Finish(&c));
    ARROW_RETURN_NOT_OK(amount.Finish(&d));
    ARROW_RETURN_NOT_OK(duration.Finish(&e));
    int64_t n = rows;
    rows = 0;
    return arrow::RecordBatch::Make(EventSchema(), n, {a, b, c, d, e});
  }
};

arrow::Result<std::unique_ptr<DatasetWriter>> OpenParquet(const std::string& dir,
                                                          std::shared_ptr<arrow::Schema> schema,
                                                          bool overwrite) {
  WriteOptions o;
  o.output_dir = dir;
  o.format = OutputFormat::kParquet;
  o.max_rows_per_file = 4'000'000;
  o.overwrite = overwrite;
  return DatasetWriter::Open(o, std::move(schema));
}

arrow::Status RunGenChurn(const GenFlags& f) {
  if (f.customers <= 0) return arrow::Status::Invalid("option --customers: expected N >= 1");
  if (f.days <= 0) return arrow::Status::Invalid("option --days: expected N >= 1");
  if (f.churn_rate < 0 || f.churn_rate > 1) {
    return arrow::Status::Invalid("option --churn-rate: expected a fraction in [0, 1]");
  }
  ARROW_ASSIGN_OR_RAISE(auto events, OpenParquet(f.output + "/events", EventSchema(), f.overwrite));
  ARROW_ASSIGN_OR_RAISE(auto labels, OpenParquet(f.output + "/labels", LabelSchema(), f.overwrite));
  std::mt19937_64 rng(static_cast<uint64_t>(f.seed));
  std::normal_distribution<double> log_rate(1.5, 1.0);  // events/day, skewed (log-normal)
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::discrete_distribution<int> type_dist(std::begin(kTypeWeights), std::end(kTypeWeights));
  std::gamma_distribution<double> amount_dist(2.0, 2.5);
  std::exponential_distribution<double> call_seconds(1.0 / 180.0);

  EventBatch batch;
  arrow::Int64Builder label_id;
  arrow::TimestampBuilder label_ts(arrow::timestamp(arrow::TimeUnit::SECOND, "UTC"),
                                   arrow::default_memory_pool());
  int64_t total_events = 0, churners = 0;
  const int64_t end = kEpoch + f.days * 86400;
  for (int64_t c = 0; c < f.customers; ++c) {
    ARROW_RETURN_NOT_OK(CheckInterrupted());  // the writers' attempt folders go with them
    const int64_t id = 1'000'000 + c;
    const double rate = std::min(200.0, std::exp(log_rate(rng)));
    const int64_t first_day = static_cast<int64_t>(unit(rng) * static_cast<double>(f.days) / 3);
    const int64_t start = kEpoch + first_day * 86400 + static_cast<int64_t>(unit(rng) * 86400);
    int64_t churn = -1;
    if (unit(rng) < f.churn_rate) {
      // Churn between two weeks after the first event and 30 days after the end.
      double span = static_cast<double>(end + 30 * 86400 - start - 14 * 86400);
      churn = start + 14 * 86400 + static_cast<int64_t>(unit(rng) * std::max(span, 86400.0));
      ++churners;
    }
    ARROW_RETURN_NOT_OK(label_id.Append(id));
    ARROW_RETURN_NOT_OK(churn >= 0 ? label_ts.Append(churn) : label_ts.AppendNull());
    // Activity fades before churn: a Poisson process whose rate halves in the last
    // two weeks.
    const int64_t stop = churn >= 0 ? std::min(churn, end) : end;
    std::exponential_distribution<double> gap(rate / 86400.0);
    for (double t = static_cast<double>(start); t < static_cast<double>(stop);) {
      int64_t ts = static_cast<int64_t>(t);
      int type = type_dist(rng);
      ARROW_RETURN_NOT_OK(batch.id.Append(id));
      ARROW_RETURN_NOT_OK(batch.ts.Append(ts));
      ARROW_RETURN_NOT_OK(batch.type.Append(kTypes[type]));
      if (type == 2 && unit(rng) < 0.05) {
        ARROW_RETURN_NOT_OK(batch.amount.AppendNull());  // some usage records lack a price
      } else {
        ARROW_RETURN_NOT_OK(batch.amount.Append(std::round(amount_dist(rng) * 100) / 100));
      }
      ARROW_RETURN_NOT_OK(batch.duration.Append(type == 0 ? std::round(call_seconds(rng)) : 0.0));
      ++batch.rows;
      ++total_events;
      if (batch.rows == 65536) {
        ARROW_ASSIGN_OR_RAISE(auto b, batch.Finish());
        ARROW_RETURN_NOT_OK(events->Write(0, b));
      }
      double step = gap(rng);
      if (churn >= 0 && ts > churn - 14 * 86400) step *= 2;
      t += step;
    }
  }
  if (batch.rows > 0) {
    ARROW_ASSIGN_OR_RAISE(auto b, batch.Finish());
    ARROW_RETURN_NOT_OK(events->Write(0, b));
  }
  std::shared_ptr<arrow::Array> li, lt;
  ARROW_RETURN_NOT_OK(label_id.Finish(&li));
  ARROW_RETURN_NOT_OK(label_ts.Finish(&lt));
  ARROW_RETURN_NOT_OK(
      labels->Write(0, arrow::RecordBatch::Make(LabelSchema(), f.customers, {li, lt})));
  ARROW_RETURN_NOT_OK(events->Commit().status());
  ARROW_RETURN_NOT_OK(labels->Commit().status());
  if (!f.quiet) {
    std::fprintf(stderr,
                 "dlprep gen churn: %lld customers (%lld churn), %lld events over %lld days "
                 "-> %s/events, %s/labels\n",
                 static_cast<long long>(f.customers), static_cast<long long>(churners),
                 static_cast<long long>(total_events), static_cast<long long>(f.days),
                 f.output.c_str(), f.output.c_str());
  }
  return arrow::Status::OK();
}

}  // namespace

void AddGenCommand(CLI::App* root, std::vector<Command>* commands) {
  CLI::App* gen = root->add_subcommand("gen", "Generate synthetic sample data");
  gen->require_subcommand(1);
  // Without its own footer a subcommand shows the top-level examples.
  gen->footer(
      "Examples:\n"
      "  dlprep gen churn --customers 10000 --days 120 --output data/churn\n"
      "  dlprep gen churn --customers 1000000 --days 365 --churn-rate 0.1 --seed 7 \\\n"
      "    --output data/churn_big --overwrite\n"
      "Run 'dlprep gen churn --help' for its options and the columns it writes.");
  auto flags = std::make_shared<GenFlags>();
  CLI::App* churn = gen->add_subcommand(
      "churn", "Telecom events and churn labels as Parquet (events/ and labels/): skewed "
               "activity per customer, five event types, churners whose activity stops");
  churn->add_option("--customers", flags->customers, "Number of customers")->capture_default_str();
  churn->add_option("--days", flags->days, "Days of history, from 2024-01-01")->capture_default_str();
  churn->add_option("--churn-rate", flags->churn_rate, "Fraction of customers who churn")
      ->capture_default_str();
  churn->add_option("--seed", flags->seed, "Random seed (same seed, same data)")->capture_default_str();
  churn->add_option("-o,--output", flags->output, "Output folder")->required();
  churn->add_flag("--overwrite", flags->overwrite, "Replace existing output folders");
  churn->add_flag("-q,--quiet", flags->quiet, "No summary line");
  churn->footer(
      "Writes OUTPUT/events (customer_id int64, ts timestamp[UTC] (seconds; Parquet\n"
      "stores them as milliseconds), event_type string,\n"
      "amount float64 nullable, duration float64) and OUTPUT/labels (customer_id,\n"
      "churn_ts timestamp[s, UTC], null when the customer did not churn).\n\n"
      "Example:\n  dlprep gen churn --customers 100000 --days 180 --output data/churn");
  commands->push_back({churn, [flags]() { return RunGenChurn(*flags); }});
}

}  // namespace dlprep::cli
