#include "infer/http/steps.h"

#include <string>

#include "exec/pipeline_file.h"
#include "infer/http/http_scorer.h"

namespace dlprep::http {

arrow::Status RegisterHttpSteps() {
  return exec::RegisterStep(
      "score_http", [](exec::ConfigNode* n) -> arrow::Result<PipelineStep> {
        HttpScoreOptions o;
        ARROW_ASSIGN_OR_RAISE(o.url, n->GetString("url"));
        ARROW_ASSIGN_OR_RAISE(
            std::string protocol,
            n->GetEnum("protocol", {"kserve-v2", "tfserving", "records"}, "kserve-v2"));
        auto parsed = ParseProtocol(protocol);
        if (!parsed.ok()) return n->OptionError("protocol", parsed.status().message());
        o.protocol = *parsed;
        ARROW_ASSIGN_OR_RAISE(o.columns, n->GetStringList("columns"));
        ARROW_ASSIGN_OR_RAISE(o.outputs, n->GetStringList("outputs", {"score"}));
        ARROW_ASSIGN_OR_RAISE(o.batch_size, n->GetInt("batch_size", o.batch_size));
        ARROW_ASSIGN_OR_RAISE(int64_t concurrency,
                              n->GetInt("concurrency", o.concurrency));
        o.concurrency = static_cast<int>(concurrency);
        ARROW_ASSIGN_OR_RAISE(o.timeout_s, n->GetDuration("timeout", o.timeout_s));
        ARROW_ASSIGN_OR_RAISE(o.connect_timeout_s,
                              n->GetDuration("connect_timeout", o.connect_timeout_s));
        ARROW_ASSIGN_OR_RAISE(o.rate_limit, n->GetDouble("rate_limit", o.rate_limit));
        ARROW_ASSIGN_OR_RAISE(o.headers, n->GetStringList("headers", {}));
        ARROW_ASSIGN_OR_RAISE(o.header_env, n->GetStringList("header_env", {}));
        ARROW_ASSIGN_OR_RAISE(int64_t retries, n->GetInt("retries", o.retry.retries));
        o.retry.retries = static_cast<int>(retries);
        ARROW_ASSIGN_OR_RAISE(o.retry.backoff_s,
                              n->GetDuration("backoff", o.retry.backoff_s));
        ARROW_ASSIGN_OR_RAISE(o.retry.max_backoff_s,
                              n->GetDuration("max_backoff", o.retry.max_backoff_s));
        ARROW_ASSIGN_OR_RAISE(o.retry.max_wait_s,
                              n->GetDuration("max_wait", o.retry.max_wait_s));
        ARROW_ASSIGN_OR_RAISE(o.max_response_bytes,
                              n->GetByteSize("max_response_size", o.max_response_bytes));
        ARROW_ASSIGN_OR_RAISE(o.ca_cert, n->GetString("ca_cert", ""));
        ARROW_ASSIGN_OR_RAISE(o.client_cert, n->GetString("client_cert", ""));
        ARROW_ASSIGN_OR_RAISE(o.client_key, n->GetString("client_key", ""));
        ARROW_ASSIGN_OR_RAISE(o.insecure, n->GetBool("insecure", false));
        ARROW_ASSIGN_OR_RAISE(int64_t seed, n->GetInt("seed", 0));
        o.seed = static_cast<uint64_t>(seed);
        auto factory = MakeHttpScorer(o);
        if (!factory.ok()) {
          return arrow::Status::Invalid(n->context(), ": ", factory.status().message());
        }
        PipelineStep s;
        s.kind = PipelineStep::Kind::kStateful;
        s.stateful = *factory;
        return s;
      });
}

}  // namespace dlprep::http
