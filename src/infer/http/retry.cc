#include "infer/http/retry.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>

#include <curl/curl.h>

namespace dlprep::http {

double BackoffSeconds(const RetryOptions& options, int k, double jitter01) {
  const double d = std::min(options.max_backoff_s,
                            options.backoff_s * std::ldexp(1.0, std::min(k, 60)));
  return d * (0.5 + 0.5 * jitter01);
}

RetryDecision DecideRetry(const RetryOptions& options, const AttemptResult& attempt,
                          double jitter01, RetryState* state) {
  RetryDecision d;
  if (!attempt.transport_error && attempt.status >= 200 && attempt.status < 300) {
    d.kind = RetryDecision::Kind::kSucceeded;
    return d;
  }
  const bool says_when = !attempt.transport_error && attempt.retry_after_s.has_value() &&
                         (attempt.status == 429 || attempt.status == 503);
  if (says_when) {
    const double wait = std::max(0.0, *attempt.retry_after_s);
    const double charge = std::max(1.0, wait);
    if (state->waited_s + charge > options.max_wait_s) {
      d.kind = RetryDecision::Kind::kFail;
      d.reason = "the server asked to retry after " + std::to_string(std::lround(wait)) +
                 " s, beyond --max-wait (" +
                 std::to_string(std::lround(options.max_wait_s)) + " s per batch, " +
                 std::to_string(std::lround(state->waited_s)) + " s already waited)";
      return d;
    }
    state->waited_s += charge;
    d.kind = RetryDecision::Kind::kRetry;
    d.delay_s = wait;
    d.spends_retry = false;
    return d;
  }
  bool retryable;
  if (attempt.transport_error) {
    retryable = attempt.transport_retryable;
    if (!retryable) d.reason = "not retried";
  } else {
    retryable = attempt.status >= 500 || attempt.status == 429;
    if (!retryable) d.reason = "not retried: HTTP " + std::to_string(attempt.status);
  }
  if (!retryable) {
    d.kind = RetryDecision::Kind::kFail;
    return d;
  }
  if (state->retries_spent >= options.retries) {
    d.kind = RetryDecision::Kind::kFail;
    d.reason = "gave up after " + std::to_string(state->retries_spent) + " retr" +
               (state->retries_spent == 1 ? "y" : "ies");
    return d;
  }
  d.kind = RetryDecision::Kind::kRetry;
  d.delay_s = BackoffSeconds(options, state->retries_spent, jitter01);
  d.spends_retry = true;
  state->retries_spent += 1;
  return d;
}

std::optional<double> ParseRetryAfter(std::string_view value, std::time_t now) {
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front()))) {
    value.remove_prefix(1);
  }
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) {
    value.remove_suffix(1);
  }
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(),
                  [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    if (value.size() > 9) return 1e9;  // absurdly far; --max-wait refuses it
    return static_cast<double>(std::stol(std::string(value)));
  }
  const std::string text(value);
  const std::time_t when = curl_getdate(text.c_str(), nullptr);
  if (when == -1) return std::nullopt;
  return std::max(0.0, std::difftime(when, now));
}

}  // namespace dlprep::http
