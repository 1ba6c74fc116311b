#include "infer/http/http_scorer.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <utility>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include "core/text.h"

namespace dlprep::http {

namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kExcerptBytes = 200;

// Requests per second across workers: requests are spaced 1/rate apart; a request that
// comes less than one interval late keeps the schedule, a later one restarts it (no
// bursts after idle time).
class RateLimiter {
 public:
  explicit RateLimiter(double per_second)
      : interval_(per_second > 0 ? std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(1.0 / per_second))
                                 : Clock::duration::zero()) {}

  // 0 when a request may start now (and books it); otherwise seconds to wait.
  double TryAcquire(Clock::time_point now) {
    if (interval_ == Clock::duration::zero()) return 0;
    std::lock_guard<std::mutex> lock(mu_);
    if (now < next_) return std::chrono::duration<double>(next_ - now).count();
    next_ = (now - next_ < interval_ ? next_ : now) + interval_;
    return 0;
  }

 private:
  const Clock::duration interval_;
  std::mutex mu_;
  Clock::time_point next_{};  // guarded by mu_
};

// What every worker's instance shares.
struct Shared {
  HttpScoreOptions options;
  std::vector<OutputSpec> outputs;
  std::vector<std::string> header_lines;  // with secrets: never printed
  std::vector<std::string> secrets;       // values to redact from messages
  std::shared_ptr<HttpStats> stats;
  RateLimiter limiter;
  explicit Shared(double rate) : limiter(rate) {}
};

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Trim(std::string s) {
  const char* ws = " \t\r\n";
  s.erase(0, s.find_first_not_of(ws));
  s.erase(s.find_last_not_of(ws) + 1);
  return s;
}

// An excerpt of a response body for a message: one line, at most kExcerptBytes, with
// the secret header values blanked out.
std::string Excerpt(const std::string& body, const std::vector<std::string>& secrets) {
  std::string s = body.substr(0, kExcerptBytes);
  for (char& c : s) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  for (const auto& secret : secrets) {
    if (secret.empty()) continue;
    for (size_t at = s.find(secret); at != std::string::npos; at = s.find(secret, at)) {
      s.replace(at, secret.size(), "***");
    }
    // A secret cut off at the end of the excerpt.
    for (size_t k = std::min(secret.size() - 1, s.size()); k >= 4; --k) {
      if (s.compare(s.size() - k, k, secret, 0, k) == 0) {
        s.replace(s.size() - k, k, "***");
        break;
      }
    }
  }
  if (body.size() > kExcerptBytes) s += "...";
  return "'" + s + "'";
}

// One request slot: an easy handle, reused for request after request.
struct Slot {
  CURL* easy = nullptr;
  std::string response;
  size_t max_response = 0;  // bytes; OnBody aborts the transfer beyond it
  bool too_large = false;   // the response passed max_response
  std::string retry_after;  // last Retry-After header value of the response
  char error[CURL_ERROR_SIZE] = {0};
  int chunk = -1;  // the chunk in flight; -1: free
};

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* slot = static_cast<Slot*>(user);
  if (slot->response.size() + size * n > slot->max_response) {
    slot->too_large = true;
    return 0;  // curl ends the transfer with CURLE_WRITE_ERROR
  }
  slot->response.append(data, size * n);
  return size * n;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* slot = static_cast<Slot*>(user);
  std::string_view line(data, size * n);
  if (line.substr(0, 5) == "HTTP/") slot->retry_after.clear();  // a new response
  const size_t colon = line.find(':');
  if (colon != std::string_view::npos &&
      Lower(std::string(line.substr(0, colon))) == "retry-after") {
    slot->retry_after = Trim(std::string(line.substr(colon + 1)));
  }
  return size * n;
}

// TLS failures that another attempt cannot fix: the certificate or its files.
bool TlsSetupError(CURLcode rc) {
  switch (rc) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
      return true;
    default:
      return false;
  }
}

bool TransportRetryable(CURLcode rc) {
  if (TlsSetupError(rc)) return false;
  switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_FAILED_INIT:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_OUT_OF_MEMORY:
      return false;
    default:
      return true;
  }
}

// Rows [begin, begin + n) of the batch's sendable rows, and what became of them.
struct Chunk {
  int64_t begin = 0;
  int64_t n = 0;
  std::string body;  // encoded on first send, dropped when done
  RetryState retry;
  Clock::time_point not_before{};
  int attempts = 0;
  bool done = false;
  bool failed = false;
  std::string error;
  std::vector<DecodedColumn> result;
};

class HttpScorer : public StatefulOperator {
 public:
  explicit HttpScorer(std::shared_ptr<Shared> shared)
      : shared_(std::move(shared)),
        decoder_(shared_->options.protocol, shared_->outputs) {}

  ~HttpScorer() override { Cleanup(); }

  std::string name() const override { return "score_http"; }

  // Enough rows for `concurrency` full requests in flight, whatever the input batches.
  int64_t min_batch_rows() const override {
    return shared_->options.batch_size * shared_->options.concurrency;
  }

  arrow::Result<std::shared_ptr<arrow::Schema>> OutputSchema(
      const arrow::Schema& input) const override {
    ARROW_RETURN_NOT_OK(
        RequestEncoder::Make(shared_->options.protocol, shared_->options.columns, input)
            .status());
    arrow::FieldVector fields = input.fields();
    for (const auto& spec : shared_->outputs) {
      if (input.GetFieldIndex(spec.name) >= 0) {
        return arrow::Status::Invalid(
            "option --outputs: the input already has a column '", spec.name,
            "'; name the output differently (e.g. --outputs ", spec.name, "_pred)");
      }
      fields.push_back(spec.field());
    }
    return arrow::schema(fields, input.metadata());
  }

  arrow::Status Open(const OperatorContext& context) override {
    static std::once_flag curl_init;
    std::call_once(curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    const HttpScoreOptions& o = shared_->options;
    stop_ = context.stop_requested;
    rng_.seed(o.seed + static_cast<uint64_t>(context.worker_index));
    multi_ = curl_multi_init();
    if (multi_ == nullptr)
      return arrow::Status::IOError("score_http: curl_multi_init failed");
    curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS,
                      static_cast<long>(o.concurrency));
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, static_cast<long>(o.concurrency));
    headers_ = curl_slist_append(headers_, "Content-Type: application/json");
    headers_ = curl_slist_append(headers_, "Accept: application/json");
    headers_ = curl_slist_append(headers_, "Expect:");  // no 100-continue round trip
    for (const auto& h : shared_->header_lines)
      headers_ = curl_slist_append(headers_, h.c_str());
    slots_.resize(static_cast<size_t>(o.concurrency));
    for (auto& s : slots_) {
      s = std::make_unique<Slot>();
      CURL* e = curl_easy_init();
      if (e == nullptr)
        return arrow::Status::IOError("score_http: curl_easy_init failed");
      s->easy = e;
      curl_easy_setopt(e, CURLOPT_URL, o.url.c_str());
      curl_easy_setopt(e, CURLOPT_POST, 1L);
      curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers_);
      curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, OnBody);
      curl_easy_setopt(e, CURLOPT_WRITEDATA, s.get());
      curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, OnHeader);
      curl_easy_setopt(e, CURLOPT_HEADERDATA, s.get());
      curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->error);
      curl_easy_setopt(e, CURLOPT_PRIVATE, s.get());
      curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
      curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
      curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
      curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(o.timeout_s * 1000));
      curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                       static_cast<long>(o.connect_timeout_s * 1000));
      curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
      curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
      s->max_response = static_cast<size_t>(o.max_response_bytes);
      if (!o.ca_cert.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, o.ca_cert.c_str());
      if (!o.client_cert.empty()) {
        curl_easy_setopt(e, CURLOPT_SSLCERT, o.client_cert.c_str());
      }
      if (!o.client_key.empty()) curl_easy_setopt(e, CURLOPT_SSLKEY, o.client_key.c_str());
      if (o.insecure) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
      }
    }
    return arrow::Status::OK();
  }

  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Process(
      const std::shared_ptr<arrow::RecordBatch>& batch, RowErrors* row_errors) override {
    const HttpScoreOptions& o = shared_->options;
    HttpStats& stats = *shared_->stats;
    if (encoder_ == nullptr) {
      ARROW_ASSIGN_OR_RAISE(
          encoder_, RequestEncoder::Make(o.protocol, o.columns, *batch->schema()));
      ARROW_ASSIGN_OR_RAISE(out_schema_, OutputSchema(*batch->schema()));
    }
    RowErrors encode_errors;
    ARROW_RETURN_NOT_OK(encoder_->Prepare(*batch, &ok_rows_, &encode_errors));

    chunks_.clear();
    const int64_t total = static_cast<int64_t>(ok_rows_.size());
    for (int64_t b = 0; b < total; b += o.batch_size) {
      Chunk c;
      c.begin = b;
      c.n = std::min(o.batch_size, total - b);
      chunks_.push_back(std::move(c));
    }
    ARROW_RETURN_NOT_OK(RunRequests());

    // Results in input order: chunks are in row order and rows within a chunk too.
    std::vector<std::pair<int64_t, std::string>> failed;
    for (size_t k = 0; k < encode_errors.rows.size(); ++k) {
      failed.emplace_back(encode_errors.rows[k], std::move(encode_errors.messages[k]));
    }
    std::vector<const std::vector<DecodedColumn>*> parts;
    arrow::Int64Builder take;
    int64_t scored = 0;
    for (const Chunk& c : chunks_) {
      if (c.failed) {
        for (int64_t k = 0; k < c.n; ++k)
          failed.emplace_back(ok_rows_[c.begin + k], c.error);
        continue;
      }
      parts.push_back(&c.result);
      ARROW_RETURN_NOT_OK(take.AppendValues(ok_rows_.data() + c.begin, c.n));
      scored += c.n;
    }
    std::sort(failed.begin(), failed.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& f : failed) row_errors->Add(f.first, std::move(f.second));
    stats.rows_scored += scored;
    stats.rows_failed += static_cast<int64_t>(failed.size());

    ARROW_ASSIGN_OR_RAISE(auto outputs, BuildOutputArrays(shared_->outputs, parts));
    std::shared_ptr<arrow::RecordBatch> kept = batch;
    if (scored != batch->num_rows()) {
      ARROW_ASSIGN_OR_RAISE(auto indices, take.Finish());
      ARROW_ASSIGN_OR_RAISE(arrow::Datum taken, arrow::compute::Take(batch, indices));
      kept = taken.record_batch();
    }
    arrow::ArrayVector columns = kept->columns();
    columns.insert(columns.end(), outputs.begin(), outputs.end());
    chunks_.clear();
    return arrow::RecordBatch::Make(out_schema_, scored, std::move(columns));
  }

  arrow::Status Close() override {
    Cleanup();
    return arrow::Status::OK();
  }

 private:
  bool StopRequested() const { return stop_ && stop_(); }

  void Cleanup() {
    for (auto& s : slots_) {
      if (s == nullptr || s->easy == nullptr) continue;
      if (s->chunk >= 0 && multi_ != nullptr) curl_multi_remove_handle(multi_, s->easy);
      curl_easy_cleanup(s->easy);
      s->easy = nullptr;
    }
    slots_.clear();
    if (multi_ != nullptr) curl_multi_cleanup(multi_);
    multi_ = nullptr;
    if (headers_ != nullptr) curl_slist_free_all(headers_);
    headers_ = nullptr;
  }

  void Start(int chunk_index, Slot* slot) {
    Chunk& c = chunks_[static_cast<size_t>(chunk_index)];
    if (c.body.empty()) encoder_->Encode(ok_rows_.data() + c.begin, c.n, &c.body);
    slot->chunk = chunk_index;
    slot->response.clear();
    slot->retry_after.clear();
    slot->too_large = false;
    slot->error[0] = '\0';
    curl_easy_setopt(slot->easy, CURLOPT_POSTFIELDS, c.body.data());
    curl_easy_setopt(slot->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(c.body.size()));
    curl_multi_add_handle(multi_, slot->easy);
    c.attempts += 1;
    shared_->stats->requests += 1;
    shared_->stats->in_flight += 1;
    shared_->stats->bytes_sent += static_cast<int64_t>(c.body.size());
  }

  void Fail(Chunk* c, std::string message) {
    c->failed = true;
    c->error = std::move(message);
    c->body = std::string();
    shared_->stats->batches_failed += 1;
  }

  // Handles a finished transfer of `slot`: the chunk is done, failed, or back in
  // `pending` with the time of its next attempt.
  void Finish(Slot* slot, CURLcode rc, std::set<int>* pending) {
    const HttpScoreOptions& o = shared_->options;
    HttpStats& stats = *shared_->stats;
    Chunk& c = chunks_[static_cast<size_t>(slot->chunk)];
    const int chunk_index = slot->chunk;
    slot->chunk = -1;
    AttemptResult a;
    std::string what;  // this attempt's failure, for the row errors
    if (rc == CURLE_WRITE_ERROR && slot->too_large) {
      a.transport_error = true;
      a.transport_retryable = false;
      stats.transport_errors += 1;
      what = "response from " + o.url + " to a request of " + std::to_string(c.n) +
             " rows is larger than --max-response-size (" +
             std::to_string(o.max_response_bytes) +
             " bytes); raise it or lower --batch-size";
    } else if (rc != CURLE_OK) {
      a.transport_error = true;
      a.transport_retryable = TransportRetryable(rc);
      stats.transport_errors += 1;
      what = std::string("request to ") + o.url + " failed: " +
             (slot->error[0] != '\0' ? slot->error : curl_easy_strerror(rc)) +
             " (curl error " + std::to_string(static_cast<int>(rc)) + ")";
      if (rc == CURLE_PEER_FAILED_VERIFICATION) {
        what += "; give the server's CA with --cacert FILE (or, for testing only, "
                "--insecure)";
      }
    } else {
      curl_easy_getinfo(slot->easy, CURLINFO_RESPONSE_CODE, &a.status);
      stats.bytes_received += static_cast<int64_t>(slot->response.size());
      if (!slot->retry_after.empty()) {
        a.retry_after_s = ParseRetryAfter(slot->retry_after, std::time(nullptr));
      }
      if (a.status < 200 || a.status >= 300) {
        stats.http_errors += 1;
        what = "HTTP " + std::to_string(a.status) + " from " + o.url;
        char* location = nullptr;  // absolute, resolved by curl from Location
        curl_easy_getinfo(slot->easy, CURLINFO_REDIRECT_URL, &location);
        if (a.status >= 300 && a.status < 400 && location != nullptr) {
          what += std::string(", redirected to '") + location +
                  "': redirects are not followed (the request would be sent again "
                  "elsewhere); use --url " + location;
        }
        what += ", body " + Excerpt(slot->response, shared_->secrets);
      }
    }
    RetryDecision d = DecideRetry(o.retry, a, uniform_(rng_), &c.retry);
    switch (d.kind) {
      case RetryDecision::Kind::kSucceeded: {
        arrow::Status st = decoder_.Decode(slot->response, c.n, &c.result);
        if (!st.ok()) {
          Fail(&c, "unusable response (HTTP " + std::to_string(a.status) + ") from " +
                       o.url + " to a request of " + std::to_string(c.n) +
                       " rows: " + st.message() + "; body " +
                       Excerpt(slot->response, shared_->secrets));
          return;
        }
        c.done = true;
        c.body = std::string();
        return;
      }
      case RetryDecision::Kind::kRetry:
        if (d.spends_retry) {
          stats.retries += 1;
        } else {
          stats.retry_after_waits += 1;
        }
        c.not_before = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(d.delay_s));
        pending->insert(chunk_index);
        return;
      case RetryDecision::Kind::kFail:
        Fail(&c, what + " (" + d.reason + "; " + std::to_string(c.attempts) + " attempt" +
                     (c.attempts == 1 ? "" : "s") + ")");
        return;
    }
  }

  // Sends every chunk until each is done or failed.
  arrow::Status RunRequests() {
    std::set<int> pending;
    for (size_t k = 0; k < chunks_.size(); ++k) pending.insert(static_cast<int>(k));
    std::vector<Slot*> free_slots;
    for (auto it = slots_.rbegin(); it != slots_.rend(); ++it)
      free_slots.push_back(it->get());
    int in_flight = 0;
    while (!pending.empty() || in_flight > 0) {
      if (StopRequested()) {
        for (auto& s : slots_) {
          if (s->chunk >= 0) {
            curl_multi_remove_handle(multi_, s->easy);
            s->chunk = -1;
          }
        }
        shared_->stats->in_flight -= in_flight;
        return arrow::Status::Cancelled("score_http: cancelled with ", in_flight,
                                        " request(s) in flight and ", pending.size(),
                                        " waiting");
      }
      // Start what may start: free slot, due chunk, rate limit allowing.
      double wait_s = 0.1;  // poll at least this often, for stop requests
      Clock::time_point now = Clock::now();
      while (!free_slots.empty() && !pending.empty()) {
        int next = -1;
        for (int k : pending) {
          const Chunk& c = chunks_[static_cast<size_t>(k)];
          if (c.not_before <= now) {
            next = k;
            break;
          }
          wait_s =
              std::min(wait_s, std::chrono::duration<double>(c.not_before - now).count());
        }
        if (next < 0) break;
        const double limited = shared_->limiter.TryAcquire(now);
        if (limited > 0) {
          wait_s = std::min(wait_s, limited);
          break;
        }
        pending.erase(next);
        Slot* slot = free_slots.back();
        free_slots.pop_back();
        Start(next, slot);
        ++in_flight;
      }
      int running = 0;
      curl_multi_perform(multi_, &running);
      bool finished_any = false;
      int left = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
        if (msg->msg != CURLMSG_DONE) continue;
        Slot* slot = nullptr;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &slot);
        const CURLcode rc = msg->data.result;
        curl_multi_remove_handle(multi_, msg->easy_handle);
        Finish(slot, rc, &pending);
        free_slots.push_back(slot);
        --in_flight;
        shared_->stats->in_flight -= 1;
        finished_any = true;
      }
      if (finished_any) continue;
      const int wait_ms = std::max(1, static_cast<int>(wait_s * 1000));
      curl_multi_poll(multi_, nullptr, 0, wait_ms, nullptr);
    }
    return arrow::Status::OK();
  }

  std::shared_ptr<Shared> shared_;
  ResponseDecoder decoder_;
  std::unique_ptr<RequestEncoder> encoder_;
  std::shared_ptr<arrow::Schema> out_schema_;
  std::function<bool()> stop_;
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> uniform_{0.0, 1.0};
  CURLM* multi_ = nullptr;
  curl_slist* headers_ = nullptr;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<int64_t> ok_rows_;  // sendable rows of the current batch
  std::vector<Chunk> chunks_;     // requests of the current batch
};

}  // namespace

std::string HttpStats::ToJson() const {
  nlohmann::ordered_json j = {{"requests", requests.load()},
                              {"retries", retries.load()},
                              {"retry_after_waits", retry_after_waits.load()},
                              {"rows_scored", rows_scored.load()},
                              {"rows_failed", rows_failed.load()},
                              {"batches_failed", batches_failed.load()},
                              {"http_errors", http_errors.load()},
                              {"transport_errors", transport_errors.load()},
                              {"bytes_sent", bytes_sent.load()},
                              {"bytes_received", bytes_received.load()}};
  return DumpJson(j);
}

arrow::Result<StatefulOperatorFactory> MakeHttpScorer(const HttpScoreOptions& options,
                                                      std::shared_ptr<HttpStats>* stats) {
  const auto& o = options;
  if (o.url.rfind("http://", 0) != 0 && o.url.rfind("https://", 0) != 0) {
    return arrow::Status::Invalid("option --url: '", o.url,
                                  "' is not an http:// or https:// URL");
  }
  if (o.columns.empty()) {
    return arrow::Status::Invalid(
        "option --model-input: name at least one input column to send");
  }
  if (o.batch_size < 1) {
    return arrow::Status::Invalid("option --batch-size: ", o.batch_size, " must be >= 1");
  }
  if (o.concurrency < 1 || o.concurrency > 1024) {
    return arrow::Status::Invalid("option --concurrency: ", o.concurrency,
                                  " must be between 1 and 1024");
  }
  if (!(o.timeout_s > 0) || !(o.connect_timeout_s > 0)) {
    return arrow::Status::Invalid(
        "options --timeout and --connect-timeout must be > 0 "
        "seconds");
  }
  const bool https = o.url.rfind("https://", 0) == 0;
  for (const auto& [flag, path] :
       {std::pair<const char*, const std::string*>{"--cacert", &o.ca_cert},
        {"--cert", &o.client_cert},
        {"--key", &o.client_key}}) {
    if (path->empty()) continue;
    if (!https) {
      return arrow::Status::Invalid("option ", flag, ": applies to https:// URLs only; ",
                                    "--url is '", o.url, "'");
    }
    std::FILE* file = std::fopen(path->c_str(), "rb");
    if (file == nullptr) {
      return arrow::Status::Invalid("option ", flag, ": cannot read '", *path,
                                    "': ", std::strerror(errno));
    }
    std::fclose(file);
  }
  if (!o.client_key.empty() && o.client_cert.empty()) {
    return arrow::Status::Invalid(
        "option --key: give the client certificate with --cert too");
  }
  if (o.insecure && !https) {
    return arrow::Status::Invalid("option --insecure: applies to https:// URLs only; ",
                                  "--url is '", o.url, "'");
  }
  if (o.max_response_bytes < 1) {
    return arrow::Status::Invalid("option --max-response-size: ", o.max_response_bytes,
                                  " must be >= 1 byte");
  }
  if (!(o.rate_limit >= 0)) {
    return arrow::Status::Invalid("option --rate-limit: must be >= 0 (0: unlimited)");
  }
  if (o.retry.retries < 0 || !(o.retry.backoff_s >= 0) || !(o.retry.max_backoff_s >= 0) ||
      !(o.retry.max_wait_s >= 0)) {
    return arrow::Status::Invalid(
        "options --retries, --backoff, --max-backoff and "
        "--max-wait must be >= 0");
  }
  auto shared = std::make_shared<Shared>(o.rate_limit);
  shared->options = o;
  shared->stats = std::make_shared<HttpStats>();
  if (o.outputs.empty()) {
    return arrow::Status::Invalid("option --outputs: name at least one output column");
  }
  for (const auto& text : o.outputs) {
    ARROW_ASSIGN_OR_RAISE(auto spec, ParseOutputSpec(text));
    for (const auto& other : shared->outputs) {
      if (other.name == spec.name) {
        return arrow::Status::Invalid("option --outputs: '", spec.name,
                                      "' is named twice");
      }
    }
    shared->outputs.push_back(std::move(spec));
  }
  auto check_header_text = [](const std::string& text) {
    return text.find_first_of("\r\n") == std::string::npos;
  };
  for (const auto& h : o.headers) {
    const size_t colon = h.find(':');
    if (colon == std::string::npos || colon == 0 || !check_header_text(h) ||
        h.find(' ') < colon) {
      return arrow::Status::Invalid("option --header: '", h,
                                    "' is not a header; expected 'Name: value'");
    }
    shared->header_lines.push_back(h);
  }
  for (const auto& h : o.header_env) {
    const size_t eq = h.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == h.size() ||
        h.find_first_of(": \r\n") != std::string::npos) {
      return arrow::Status::Invalid("option --header-env: '", h,
                                    "' is not NAME=ENV_VAR (a header name and the "
                                    "environment variable holding its value)");
    }
    const std::string name = h.substr(0, eq);
    const std::string var = h.substr(eq + 1);
    const char* value = std::getenv(var.c_str());
    if (value == nullptr || *value == '\0') {
      return arrow::Status::Invalid("option --header-env: environment variable '", var,
                                    "' (for header '", name, "') is not set or empty");
    }
    if (!check_header_text(value)) {
      return arrow::Status::Invalid("option --header-env: environment variable '", var,
                                    "' holds a line break");
    }
    shared->header_lines.push_back(name + ": " + value);
    shared->secrets.push_back(value);
  }
  if (stats != nullptr) *stats = shared->stats;
  return StatefulOperatorFactory(
      [shared]() -> arrow::Result<std::unique_ptr<StatefulOperator>> {
        return std::make_unique<HttpScorer>(shared);
      });
}

}  // namespace dlprep::http
