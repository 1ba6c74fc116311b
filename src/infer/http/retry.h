#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace dlprep::http {

/// How failed requests are retried (`--retries`, `--backoff`, `--max-backoff`,
/// `--max-wait`).
struct RetryOptions {
  /// Further attempts after the first for connection errors, timeouts and 5xx.
  int retries = 3;
  /// Backoff before retry k (0-based) is min(max_backoff_s, backoff_s * 2^k), of
  /// which a random half is taken off ("equal jitter"): uniform in [d/2, d].
  double backoff_s = 0.1;
  double max_backoff_s = 10;
  /// Total time one batch may spend waiting on Retry-After (429, 503). Each such wait
  /// counts at least one second, so `Retry-After: 0` repeated forever cannot keep a
  /// batch alive.
  double max_wait_s = 60;
};

/// What happened to one attempt.
struct AttemptResult {
  /// True when no HTTP response arrived (refused, reset, timed out, DNS).
  bool transport_error = false;
  /// Whether a transport error may go away on its own (false for a malformed URL or an
  /// unsupported scheme).
  bool transport_retryable = true;
  /// HTTP status when a response arrived.
  long status = 0;
  /// Seconds from the Retry-After header (see ParseRetryAfter), if any.
  std::optional<double> retry_after_s;
};

/// What to do next with a batch.
struct RetryDecision {
  enum class Kind { kSucceeded, kRetry, kFail };
  Kind kind = Kind::kFail;
  /// kRetry: seconds to wait before the next attempt.
  double delay_s = 0;
  /// kRetry: whether the retry spends one of RetryOptions::retries (false when the
  /// server said when to come back with Retry-After).
  bool spends_retry = true;
  /// kFail: why no further attempt is made ("not retried: HTTP 404", ...).
  std::string reason;
};

/// Per-batch retry bookkeeping. A value type; not thread-safe.
struct RetryState {
  int retries_spent = 0;
  double waited_s = 0;  // Retry-After waits, as counted against max_wait_s
};

/// The retry policy: 2xx succeeds; connection errors, timeouts and 5xx are retried
/// with exponential backoff while retries are left; 429 and 503 with a Retry-After
/// header wait as told without spending a retry while `max_wait_s` allows (429 without
/// one is retried like a 5xx); any other status (4xx, 3xx) fails at once. `jitter01`
/// is a uniform random number in [0, 1) (the caller's seeded generator). Updates
/// `*state`.
RetryDecision DecideRetry(const RetryOptions& options, const AttemptResult& attempt,
                          double jitter01, RetryState* state);

/// Backoff before retry `k` (0-based), see RetryOptions::backoff_s.
double BackoffSeconds(const RetryOptions& options, int k, double jitter01);

/// Parses a Retry-After header value: delta-seconds ("120") or an HTTP-date
/// ("Wed, 21 Oct 2015 07:28:00 GMT", counted from `now`; a date in the past gives 0).
/// nullopt when the value is neither.
std::optional<double> ParseRetryAfter(std::string_view value, std::time_t now);

}  // namespace dlprep::http
