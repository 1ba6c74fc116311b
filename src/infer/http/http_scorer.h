#pragma once
// score_http: batch inference through a model server over HTTP (issue 7).

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <arrow/result.h>

#include "dlprep/operator.h"
#include "infer/http/codec.h"
#include "infer/http/retry.h"

namespace dlprep::http {

/// Options of the HTTP scorer (the flags of `dlprep score-http`).
///
/// Protocols (request -> response), for a request of B rows:
/// * kserve-v2 (Open Inference Protocol, KServe / Triton / MLServer):
///   {"inputs": [{"name": col, "shape": [B, ...], "datatype": "FP32", "data": [...]}]}
///   with one entry per input column, data flattened row-major; scalar columns have
///   shape [B], list columns [B, L] or [B, *dlprep.shape]. Datatypes: FP32, FP64,
///   INT8-64, UINT8-64, BOOL, BYTES (strings). The response's "outputs" entries are
///   found by name (a single declared output also takes a single output of any name);
///   shape[0] must be B and the data is split into B equal rows.
/// * tfserving: {"instances": [row, ...]}, a row being the value of the single input
///   column (nested by dlprep.shape) or an object {col: value} with several;
///   the response's "predictions" must have B entries, each a value or an object with
///   the outputs by name.
/// * records: [{col: value, ...}, ...] (pandas to_json(orient='records')); the
///   response is a JSON array of B entries, each a value or an object as above.
struct HttpScoreOptions {
  /// http:// or https:// URL every request is POSTed to.
  std::string url;
  Protocol protocol = Protocol::kKServeV2;
  /// Input columns sent to the model, in order (at least one).
  std::vector<std::string> columns;
  /// Output columns appended to each row (OutputSpec form, "score", "emb:float32[]").
  std::vector<std::string> outputs = {"score"};
  /// Rows per request.
  int64_t batch_size = 64;
  /// Requests in flight per worker (one connection each, kept alive).
  int concurrency = 8;
  /// Seconds a request may take in all, and to connect.
  double timeout_s = 30;
  double connect_timeout_s = 10;
  /// Requests per second across all workers; 0: unlimited.
  double rate_limit = 0;
  /// Extra headers "Name: value", sent as given.
  std::vector<std::string> headers;
  /// Headers whose value comes from the environment: "Name=ENV_VAR". The value is read
  /// when the scorer is made and never printed (redacted from error excerpts too).
  std::vector<std::string> header_env;
  RetryOptions retry;
  /// TLS, for https:// URLs only. The server's certificate and name are checked against
  /// the system's CA store, or against ca_cert (a PEM bundle) when given; client_cert and
  /// client_key (PEM files; the key may be in client_cert) authenticate dlprep to servers
  /// that require it. insecure: do not check the server at all (testing only).
  std::string ca_cert;
  std::string client_cert;
  std::string client_key;
  bool insecure = false;
  /// Largest response body accepted; a larger response fails its batch (not retried).
  int64_t max_response_bytes = int64_t{256} << 20;
  /// Seed of the backoff jitter (per worker: seed + worker index).
  uint64_t seed = 0;
};

/// Counters shared by all workers' scorer instances. Thread-safe.
struct HttpStats {
  std::atomic<int64_t> requests{0};           // attempts sent, retries included
  std::atomic<int64_t> retries{0};            // attempts that spent a retry
  std::atomic<int64_t> retry_after_waits{0};  // attempts after a Retry-After wait
  std::atomic<int64_t> rows_scored{0};
  std::atomic<int64_t> rows_failed{0};       // rows reported in RowErrors
  std::atomic<int64_t> batches_failed{0};    // requests (batches) that finally failed
  std::atomic<int64_t> bytes_sent{0};        // request bodies
  std::atomic<int64_t> bytes_received{0};    // response bodies
  std::atomic<int64_t> http_errors{0};       // non-2xx responses seen, any attempt
  std::atomic<int64_t> transport_errors{0};  // attempts without a response
  std::atomic<int64_t> in_flight{0};         // requests sent and not yet answered, now
  /// {"requests": .., "retries": .., ...}.
  std::string ToJson() const;
};

/// Checks `options` (URL scheme, protocol, outputs, sizes, header syntax; environment
/// variables of header_env must be set) and returns the factory of per-worker scorer
/// instances for Pipeline::MapStateful. `*stats` (when not null) receives the counters
/// all instances share. Invalid naming the option otherwise.
///
/// The operator ("score_http"): output = the input columns + one column per output
/// spec, for the rows that were scored, in input order. Each input row gets exactly one
/// result or one RowErrors entry. Rows are sent in requests of `batch_size` rows, up
/// to `concurrency` at a time over a libcurl multi handle opened in Open() (its
/// connections are kept alive across batches; the executor gathers small input batches
/// to batch_size x concurrency rows, min_batch_rows()); responses may complete in any order and
/// are put back in order. Failed attempts are retried as DecideRetry() says; a request
/// that finally fails, or whose response is unusable (not JSON, wrong row count, wrong
/// types: never retried, never half-used), makes each of its rows fail with the HTTP
/// status or transport error and an excerpt of the body. Redirects (3xx) are not
/// followed: the rows fail naming the Location, so the URL can be fixed. Process() returns Cancelled
/// promptly (in-flight transfers are aborted) once OperatorContext::stop_requested.
arrow::Result<StatefulOperatorFactory> MakeHttpScorer(
    const HttpScoreOptions& options, std::shared_ptr<HttpStats>* stats = nullptr);

}  // namespace dlprep::http
