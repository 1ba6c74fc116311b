// Fuzz target: the response codec of one `score_http` protocol, chosen at build time
// (DLPREP_FUZZ_PROTOCOL: kKServeV2, kTfServing or kRecords). The input is a response
// body. It is decoded for 1 to 4 rows with several sets of outputs (scalar float32,
// float64 with a fixed-shape list, int64 lists, string and int64). A decoded response
// must have the rows asked for, list offsets that fit the values, float32 values that
// are finite, and make valid Arrow arrays.

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <arrow/api.h>

#include "fuzz_util.h"
#include "infer/http/codec.h"

namespace {

using dlprep::fuzz::Fail;
using dlprep::http::DecodedColumn;
using dlprep::http::OutputSpec;
using dlprep::http::Protocol;

constexpr Protocol kProtocol = Protocol::DLPREP_FUZZ_PROTOCOL;

const char* Target() { return dlprep::http::ProtocolName(kProtocol); }

std::vector<OutputSpec> Specs(const std::vector<std::string>& texts) {
  std::vector<OutputSpec> out;
  for (const auto& t : texts) {
    auto spec = dlprep::http::ParseOutputSpec(t);
    if (!spec.ok()) Fail(Target(), "output spec " + t + ": " + spec.status().ToString());
    out.push_back(*spec);
  }
  return out;
}

void Check(const std::vector<OutputSpec>& specs, const std::vector<DecodedColumn>& cols,
           int64_t n) {
  if (cols.size() != specs.size()) Fail(Target(), "one column per output expected");
  for (size_t o = 0; o < specs.size(); ++o) {
    const OutputSpec& spec = specs[o];
    const DecodedColumn& c = cols[o];
    if (c.rows != n) Fail(Target(), spec.name + ": rows != n");
    int64_t values = 0;
    switch (spec.type) {
      case OutputSpec::Type::kFloat32:
        for (double v : c.doubles) {
          if (!std::isfinite(static_cast<float>(v))) {
            Fail(Target(), spec.name + ": a float32 score that is not finite");
          }
        }
        [[fallthrough]];
      case OutputSpec::Type::kFloat64:
        values = static_cast<int64_t>(c.doubles.size());
        break;
      case OutputSpec::Type::kInt64:
        values = static_cast<int64_t>(c.ints.size());
        break;
      case OutputSpec::Type::kString:
        values = static_cast<int64_t>(c.strings.size());
        break;
    }
    if (spec.is_list) {
      if (static_cast<int64_t>(c.offsets.size()) != n + 1 || c.offsets.front() != 0 ||
          c.offsets.back() != values) {
        Fail(Target(), spec.name + ": list offsets do not cover the values");
      }
      for (int64_t r = 0; r < n; ++r) {
        if (c.offsets[r + 1] < c.offsets[r]) Fail(Target(), spec.name + ": offsets decrease");
      }
    } else if (values != n) {
      Fail(Target(), spec.name + ": " + std::to_string(values) + " values for " +
                         std::to_string(n) + " rows");
    }
  }
  auto arrays = dlprep::http::BuildOutputArrays(specs, {&cols});
  if (!arrays.ok()) Fail(Target(), "BuildOutputArrays: " + arrays.status().ToString());
  for (const auto& a : *arrays) {
    if (a->length() != n) Fail(Target(), "array of the wrong length");
    arrow::Status st = a->ValidateFull();
    if (!st.ok()) Fail(Target(), "invalid array: " + st.ToString());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<std::vector<OutputSpec>> spec_sets = {
      Specs({"score"}),
      Specs({"score:float64", "pair:float32[2]"}),
      Specs({"y:int64[]"}),
      Specs({"label:string", "id:int64"}),
  };
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  for (const auto& specs : spec_sets) {
    dlprep::http::ResponseDecoder decoder(kProtocol, specs);
    for (int64_t n = 1; n <= 4; ++n) {
      std::vector<DecodedColumn> out;
      arrow::Status st = decoder.Decode(body, n, &out);
      if (st.ok()) {
        Check(specs, out, n);
      } else if (!st.IsInvalid()) {
        Fail(Target(), "a bad response must be Invalid, got " + st.ToString());
      }
    }
  }
  return 0;
}
