#pragma once

#include <arrow/status.h>

namespace dlprep::http {

/// Registers `score_http` as a pipeline-file step. Its options are those of
/// HttpScoreOptions: url, protocol, columns, outputs, batch_size, concurrency, timeout,
/// connect_timeout, rate_limit, headers, header_env, retries, backoff, max_backoff,
/// max_wait, seed. Call once before loading a pipeline file; AlreadyExists on a second
/// call is harmless to ignore.
arrow::Status RegisterHttpSteps();

}  // namespace dlprep::http
