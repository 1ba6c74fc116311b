// `dlprep score-http`: batch inference through a model server over HTTP (issue 7):
// input rows -> batched, concurrent, retried JSON requests -> one output column per
// model output, in input order, with failed rows in --errors.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/progress.h"
#include "core/text.h"
#include "core/units.h"
#include "exec/error_sink.h"
#include "infer/http/http_scorer.h"

namespace dlprep::cli {

namespace {

struct ScoreHttpFlags {
  std::string url;
  std::string protocol = "kserve-v2";
  std::vector<std::string> columns;  // --model-input
  std::vector<std::string> deprecated_columns;  // --column, the former spelling
  std::vector<std::string> outputs;
  int64_t batch_size = 64;
  int concurrency = 8;
  double timeout_s = 30;
  double connect_timeout_s = 10;
  double rate_limit = 0;
  std::vector<std::string> headers;
  std::vector<std::string> header_env;
  int retries = 3;
  double backoff_s = 0.1;
  double max_backoff_s = 10;
  double max_wait_s = 60;
  uint64_t seed = 0;
  std::string ca_cert;
  std::string client_cert;
  std::string client_key;
  bool insecure = false;
  std::string max_response_size = "256MB";
  InputFlags input;
  OutputFlags output;
  RunFlags run;
  CommonFlags common;
  bool fail_on_error = false;
  ErrorLimitFlags limits;
  std::string errors_path;
  bool dry_run = false;
};

std::string Absolute(const std::string& path) {
  return std::filesystem::absolute(path).lexically_normal().string();
}

// The pipeline file (JSON, which is YAML) this command runs. Header values from
// --header-env are not in it: only the NAME=ENV_VAR pairs.
arrow::Result<std::string> PipelineFileText(const ScoreHttpFlags& f,
                                            const http::HttpScoreOptions& o) {
  ARROW_ASSIGN_OR_RAISE(std::string format, DetectInputFormat(f.input));
  std::vector<std::string> paths;
  for (const auto& p : f.input.paths) paths.push_back(Absolute(p));
  nlohmann::ordered_json source = {{"format", format}, {"paths", paths}};
  if (!f.input.columns.empty()) source["columns"] = SplitCommaList(f.input.columns);
  nlohmann::ordered_json step = {{"url", o.url},
                                 {"protocol", http::ProtocolName(o.protocol)},
                                 {"columns", o.columns},
                                 {"outputs", o.outputs},
                                 {"batch_size", o.batch_size},
                                 {"concurrency", o.concurrency},
                                 {"timeout", o.timeout_s},
                                 {"connect_timeout", o.connect_timeout_s},
                                 {"rate_limit", o.rate_limit},
                                 {"headers", o.headers},
                                 {"header_env", o.header_env},
                                 {"retries", o.retry.retries},
                                 {"backoff", o.retry.backoff_s},
                                 {"max_backoff", o.retry.max_backoff_s},
                                 {"max_wait", o.retry.max_wait_s},
                                 {"max_response_size", o.max_response_bytes},
                                 {"seed", o.seed}};
  if (!o.ca_cert.empty()) step["ca_cert"] = Absolute(o.ca_cert);
  if (!o.client_cert.empty()) step["client_cert"] = Absolute(o.client_cert);
  if (!o.client_key.empty()) step["client_key"] = Absolute(o.client_key);
  if (o.insecure) step["insecure"] = true;
  nlohmann::ordered_json sink = {{"format", f.output.format},
                                 {"path", Absolute(f.output.output_dir)}};
  if (f.output.format == "tfrecord") sink["compression"] = f.output.compression;
  sink["shards"] = f.output.shards;
  sink["overwrite"] = f.output.overwrite;
  nlohmann::ordered_json doc = {
      {"source", source}, {"steps", {{{"score_http", step}}}}, {"sink", sink}};
  return "# dlprep score-http as a pipeline file (JSON is YAML): dlprep run FILE\n" +
         DumpJson(doc, 2) + "\n";
}

arrow::Status RunScoreHttp(const ScoreHttpFlags& f) {
  nlohmann::json stats = {{"command", "score-http"}};
  Progress* progress_ptr = nullptr;
  auto finish = [&](const arrow::Status& st) {
    if (progress_ptr != nullptr) progress_ptr->Finish();
    return FinishStats(st, f.common.stats_path, &stats);
  };
  http::HttpScoreOptions o;
  o.url = f.url;
  auto protocol = http::ParseProtocol(f.protocol);
  if (!protocol.ok()) return finish(protocol.status());
  o.protocol = *protocol;
  o.columns = FlattenCommaLists(f.columns);
  if (!f.outputs.empty()) o.outputs = FlattenCommaLists(f.outputs);
  o.batch_size = f.batch_size;
  o.concurrency = f.concurrency;
  o.timeout_s = f.timeout_s;
  o.connect_timeout_s = f.connect_timeout_s;
  o.rate_limit = f.rate_limit;
  o.headers = f.headers;
  o.header_env = f.header_env;
  o.retry.retries = f.retries;
  o.retry.backoff_s = f.backoff_s;
  o.retry.max_backoff_s = f.max_backoff_s;
  o.retry.max_wait_s = f.max_wait_s;
  o.seed = f.seed;
  o.ca_cert = f.ca_cert;
  o.client_cert = f.client_cert;
  o.client_key = f.client_key;
  o.insecure = f.insecure;
  auto max_response = ParseByteSize(f.max_response_size, "--max-response-size");
  if (!max_response.ok()) return finish(max_response.status());
  o.max_response_bytes = *max_response;
  if (o.insecure && !f.common.quiet) {
    std::fprintf(stderr,
                 "dlprep score-http: warning: --insecure: the server's certificate and "
                 "name are not checked\n");
  }
  std::shared_ptr<http::HttpStats> http_stats;
  auto factory = http::MakeHttpScorer(o, &http_stats);
  if (!factory.ok()) return finish(factory.status());

  auto source = OpenInput(f.input);
  if (!source.ok()) return finish(source.status());
  auto wopts = MakeWriteOptions(f.output);
  if (!wopts.ok()) return finish(wopts.status());
  Pipeline pipeline = Pipeline::Read(*source).MapStateful(*factory);
  pipeline.Write(*wopts);
  // Check columns and types before anything is sent or written.
  auto schema = pipeline.OutputSchema();
  if (!schema.ok()) return finish(schema.status());
  if (f.dry_run) {
    auto text = PipelineFileText(f, o);
    if (!text.ok()) return finish(text.status());
    std::fputs(text->c_str(), stdout);
    stats["dry_run"] = true;
    return finish(arrow::Status::OK());
  }

  arrow::Status outside = CheckOutputOutsideInputs(f.input.paths, f.output.output_dir);
  if (!outside.ok()) return finish(outside);
  WarnAboutLeftoverAttempts(f.output.output_dir);
  Progress progress("score-http", (*source)->num_partitions(), !f.common.quiet);
  progress_ptr = &progress;
  progress.SetDetail([h = http_stats] {
    const int64_t retries = h->retries.load();
    const int64_t in_flight = h->in_flight.load();
    return std::to_string(h->rows_scored.load()) + " scored, " +
           std::to_string(h->rows_failed.load()) + " failed, " + std::to_string(retries) +
           (retries == 1 ? " retry, " : " retries, ") + std::to_string(in_flight) +
           (in_flight == 1 ? " request" : " requests") + " in flight";
  });
  std::unique_ptr<exec::JsonLinesErrorSink> errors;
  auto options_r = MakeJobRunOptions(f.run, f.fail_on_error, f.limits, f.errors_path,
                                     &progress, &errors);
  if (!options_r.ok()) return finish(options_r.status());
  RunOptions options = *options_r;
  RunStats failed_run;
  auto run = pipeline.Run(options, &failed_run);
  stats["http"] = nlohmann::json::parse(http_stats->ToJson());
  progress.Finish();
  arrow::Status done = CompleteJob(run, failed_run, f.output.output_dir, errors.get(),
                                   f.errors_path, &stats);
  if (!done.ok()) return finish(done);
  // A run with failed rows says so even with -q.
  if (!f.common.quiet || run->row_errors > 0) {
    const auto& h = *http_stats;
    std::fprintf(stderr,
                 "dlprep score-http: %lld rows read -> %lld scored, %lld failed; %lld "
                 "requests (%lld retries, %lld Retry-After waits) -> '%s' (%.2f s, %d "
                 "workers)\n",
                 static_cast<long long>(run->rows_read),
                 static_cast<long long>(h.rows_scored.load()),
                 static_cast<long long>(h.rows_failed.load()),
                 static_cast<long long>(h.requests.load()),
                 static_cast<long long>(h.retries.load()),
                 static_cast<long long>(h.retry_after_waits.load()),
                 f.output.output_dir.c_str(), run->wall_seconds, run->workers);
    PrintRowErrorSamples(*run);
  }
  return finish(arrow::Status::OK());
}

}  // namespace

void AddScoreHttpCommand(CLI::App* root, std::vector<Command>* commands) {
  auto f = std::make_shared<ScoreHttpFlags>();
  CLI::App* app = root->add_subcommand(
      "score-http",
      "Batch inference through a model server over HTTP (KServe v2, TF "
      "Serving, JSON records): batched, concurrent, retried");
  app->add_option("--url", f->url, "Endpoint every request is POSTed to")->required();
  app->add_option("--protocol", f->protocol,
                  "kserve-v2 (Open Inference Protocol), tfserving ({\"instances\"}) or "
                  "records (a JSON array of row objects)")
      ->capture_default_str()
      ->transform(OneOf({"kserve-v2", "tfserving", "records"}));
  app->add_option("--model-input", f->columns,
                  "Input column(s) sent to the model (repeatable, or a,b; required; "
                  "formerly --column)");
  // The former spelling, which differed from --columns (read only these) by one letter.
  app->add_option("--column", f->deprecated_columns)->group("");
  app->callback([f]() {
    if (!f->deprecated_columns.empty()) {
      WarnDeprecated("score-http", "--column", "--model-input");
      f->columns.insert(f->columns.end(), f->deprecated_columns.begin(),
                        f->deprecated_columns.end());
    }
    if (FlattenCommaLists(f->columns).empty()) throw CLI::RequiredError("--model-input");
  });
  app->add_option("--outputs", f->outputs,
                  "Output columns NAME[:TYPE][[]|[d0,d1]], TYPE float32 (default), "
                  "float64, int64 or string; [] for a list per row (default: score)");
  app->add_option("--batch-size", f->batch_size, "Rows per request")
      ->capture_default_str();
  app->add_option("--concurrency", f->concurrency, "Requests in flight per worker")
      ->capture_default_str();
  app->add_option("--timeout", f->timeout_s,
                  "How long a request may take in all (30s, 500ms, 2m; a bare number is "
                  "seconds)")
      ->capture_default_str()
      ->transform(DurationSeconds("--timeout"));
  app->add_option("--connect-timeout", f->connect_timeout_s, "How long to wait to connect")
      ->capture_default_str()
      ->transform(DurationSeconds("--connect-timeout"));
  app->add_option("--rate-limit", f->rate_limit,
                  "Requests per second across all workers (0: unlimited)")
      ->capture_default_str();
  app->add_option("--header", f->headers, "Extra header 'Name: value' (repeatable)");
  app->add_option("--header-env", f->header_env,
                  "Header whose value is read from an environment variable, "
                  "'Name=ENV_VAR' (repeatable; the value is never printed)");
  app->add_option("--retries", f->retries,
                  "Retries of a request after a connection error, timeout or 5xx")
      ->capture_default_str();
  app->add_option("--backoff", f->backoff_s,
                  "First retry delay (e.g. 100ms), doubled per retry, with jitter")
      ->capture_default_str()
      ->transform(DurationSeconds("--backoff"));
  app->add_option("--max-backoff", f->max_backoff_s, "Longest retry delay (e.g. 10s)")
      ->capture_default_str()
      ->transform(DurationSeconds("--max-backoff"));
  app->add_option("--max-wait", f->max_wait_s,
                  "How long one request may wait on Retry-After (429/503) in all (e.g. 1m)")
      ->capture_default_str()
      ->transform(DurationSeconds("--max-wait"));
  app->add_option("--seed", f->seed, "Seed of the retry jitter")->capture_default_str();
  app->add_option("--max-response-size", f->max_response_size,
                  "Largest response accepted (e.g. 64MB); a larger one fails its rows")
      ->capture_default_str();
  app->add_option("--cacert", f->ca_cert,
                  "https: PEM file of the CA(s) that signed the server's certificate "
                  "(default: the system's CA store)");
  app->add_option("--cert", f->client_cert,
                  "https: client certificate (PEM) for servers that require one");
  app->add_option("--key", f->client_key,
                  "https: private key (PEM) of --cert, when not in the same file");
  app->add_flag("--insecure", f->insecure,
                "https: do not check the server's certificate or name (testing only)");
  AddInputFlags(app, &f->input, /*binary_options=*/false);
  AddOutputFlags(app, &f->output, "tfrecord");
  AddRunFlags(app, &f->run);
  CLI::Option* fail = app->add_flag(
      "--fail-on-error", f->fail_on_error,
      "Fail the job on the first row that cannot be scored (default: report it and go "
      "on, up to --max-error-rate)");
  AddErrorLimitFlags(app, &f->limits, fail);
  app->add_option("--errors", f->errors_path,
                  "Keep the rows that could not be scored, with the HTTP status or error "
                  "and a body excerpt, in this JSON-lines file (written when the job "
                  "succeeds or fails for its failed rows)");
  app->add_flag("--dry-run", f->dry_run,
                "Check the input columns and print the pipeline file this command runs");
  AddCommonFlags(app, &f->common);
  app->footer(
      "Example:\n"
      "  dlprep score-http --url http://127.0.0.1:8080/v2/models/m/infer \\\n"
      "    --protocol kserve-v2 --input data/features --model-input features \\\n"
      "    --batch-size 64 --concurrency 8 --output out/scores --errors failed.jsonl");
  commands->push_back({app, [f]() { return RunScoreHttp(*f); }});
}

}  // namespace dlprep::cli
