#include "infer/http/retry.h"

#include <gtest/gtest.h>

namespace dlprep::http {
namespace {

AttemptResult Status(long status) {
  AttemptResult a;
  a.status = status;
  return a;
}

AttemptResult Transport(bool retryable = true) {
  AttemptResult a;
  a.transport_error = true;
  a.transport_retryable = retryable;
  return a;
}

TEST(RetryTest, SuccessIsDone) {
  RetryState s;
  EXPECT_EQ(DecideRetry({}, Status(200), 0.5, &s).kind, RetryDecision::Kind::kSucceeded);
  EXPECT_EQ(DecideRetry({}, Status(204), 0.5, &s).kind, RetryDecision::Kind::kSucceeded);
}

TEST(RetryTest, RetriesTransientFailuresUntilSpent) {
  RetryOptions o;
  o.retries = 2;
  o.backoff_s = 0.1;
  for (const AttemptResult& a :
       {Status(500), Status(502), Status(503), Status(504), Status(429), Transport()}) {
    RetryState s;
    auto d1 = DecideRetry(o, a, 1.0, &s);
    ASSERT_EQ(d1.kind, RetryDecision::Kind::kRetry);
    EXPECT_TRUE(d1.spends_retry);
    EXPECT_DOUBLE_EQ(d1.delay_s, 0.1);  // jitter 1.0: the whole backoff
    auto d2 = DecideRetry(o, a, 0.0, &s);
    ASSERT_EQ(d2.kind, RetryDecision::Kind::kRetry);
    EXPECT_DOUBLE_EQ(d2.delay_s, 0.1);  // 0.2 with jitter 0: half of it
    auto d3 = DecideRetry(o, a, 0.0, &s);
    EXPECT_EQ(d3.kind, RetryDecision::Kind::kFail);
    EXPECT_EQ(d3.reason, "gave up after 2 retries");
    EXPECT_EQ(s.retries_spent, 2);
  }
}

TEST(RetryTest, ZeroRetriesFailsAtOnce) {
  RetryOptions o;
  o.retries = 0;
  RetryState s;
  auto d = DecideRetry(o, Status(500), 0.5, &s);
  EXPECT_EQ(d.kind, RetryDecision::Kind::kFail);
  EXPECT_EQ(d.reason, "gave up after 0 retries");
}

TEST(RetryTest, ClientErrorsAreNotRetried) {
  for (long status : {400L, 401L, 403L, 404L, 413L, 422L, 301L}) {
    RetryState s;
    auto d = DecideRetry({}, Status(status), 0.5, &s);
    EXPECT_EQ(d.kind, RetryDecision::Kind::kFail) << status;
    EXPECT_EQ(d.reason, "not retried: HTTP " + std::to_string(status));
    EXPECT_EQ(s.retries_spent, 0);
  }
  RetryState s;
  EXPECT_EQ(DecideRetry({}, Transport(/*retryable=*/false), 0.5, &s).kind,
            RetryDecision::Kind::kFail);
}

TEST(RetryTest, RetryAfterWaitsWithoutSpendingRetries) {
  RetryOptions o;
  o.retries = 0;
  o.max_wait_s = 10;
  for (long status : {429L, 503L}) {
    AttemptResult a = Status(status);
    a.retry_after_s = 3;
    RetryState s;
    auto d = DecideRetry(o, a, 0.5, &s);
    ASSERT_EQ(d.kind, RetryDecision::Kind::kRetry);
    EXPECT_FALSE(d.spends_retry);
    EXPECT_DOUBLE_EQ(d.delay_s, 3);
    EXPECT_EQ(s.retries_spent, 0);
    EXPECT_DOUBLE_EQ(s.waited_s, 3);
    EXPECT_EQ(DecideRetry(o, a, 0.5, &s).kind, RetryDecision::Kind::kRetry);
    EXPECT_DOUBLE_EQ(s.waited_s, 6);
    EXPECT_EQ(DecideRetry(o, a, 0.5, &s).kind, RetryDecision::Kind::kRetry);
    auto over = DecideRetry(o, a, 0.5, &s);  // 9 + 3 > 10
    EXPECT_EQ(over.kind, RetryDecision::Kind::kFail);
    EXPECT_NE(over.reason.find("beyond --max-wait"), std::string::npos) << over.reason;
  }
}

TEST(RetryTest, RetryAfterZeroStillCountsOneSecond) {
  RetryOptions o;
  o.max_wait_s = 2.5;
  AttemptResult a = Status(429);
  a.retry_after_s = 0;
  RetryState s;
  EXPECT_EQ(DecideRetry(o, a, 0.5, &s).kind, RetryDecision::Kind::kRetry);
  EXPECT_EQ(DecideRetry(o, a, 0.5, &s).kind, RetryDecision::Kind::kRetry);
  EXPECT_EQ(DecideRetry(o, a, 0.5, &s).kind, RetryDecision::Kind::kFail);
}

TEST(RetryTest, RetryAfterOnOtherStatusIsIgnored) {
  // A 500 with Retry-After is an ordinary 5xx; a 400 with one is still not retried.
  RetryOptions o;
  o.retries = 1;
  AttemptResult a = Status(500);
  a.retry_after_s = 100;
  RetryState s;
  auto d = DecideRetry(o, a, 1.0, &s);
  EXPECT_EQ(d.kind, RetryDecision::Kind::kRetry);
  EXPECT_TRUE(d.spends_retry);
  EXPECT_DOUBLE_EQ(d.delay_s, o.backoff_s);
  AttemptResult b = Status(400);
  b.retry_after_s = 1;
  EXPECT_EQ(DecideRetry(o, b, 0.5, &s).kind, RetryDecision::Kind::kFail);
}

TEST(RetryTest, BackoffDoublesCapsAndJitters) {
  RetryOptions o;
  o.backoff_s = 0.5;
  o.max_backoff_s = 3;
  EXPECT_DOUBLE_EQ(BackoffSeconds(o, 0, 1.0), 0.5);
  EXPECT_DOUBLE_EQ(BackoffSeconds(o, 1, 1.0), 1.0);
  EXPECT_DOUBLE_EQ(BackoffSeconds(o, 2, 1.0), 2.0);
  EXPECT_DOUBLE_EQ(BackoffSeconds(o, 3, 1.0), 3.0);
  EXPECT_DOUBLE_EQ(BackoffSeconds(o, 1000, 1.0), 3.0);
  EXPECT_DOUBLE_EQ(BackoffSeconds(o, 2, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(BackoffSeconds(o, 2, 0.5), 1.5);
}

TEST(RetryTest, ParsesRetryAfter) {
  EXPECT_EQ(ParseRetryAfter("120", 0), 120.0);
  EXPECT_EQ(ParseRetryAfter(" 0 ", 0), 0.0);
  // Wed, 21 Oct 2015 07:28:00 GMT is 1445412480.
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 - 30), 30.0);
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 + 30), 0.0);
  EXPECT_FALSE(ParseRetryAfter("", 0).has_value());
  EXPECT_FALSE(ParseRetryAfter("soon", 0).has_value());
  EXPECT_FALSE(ParseRetryAfter("-5", 0).has_value());
  EXPECT_EQ(ParseRetryAfter("99999999999999", 0), 1e9);
}

}  // namespace
}  // namespace dlprep::http
