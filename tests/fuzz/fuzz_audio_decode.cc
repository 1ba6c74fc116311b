// Fuzz target: audio decoding from bytes (audio::DecodeMono over libsndfile's virtual
// I/O: WAV, FLAC, OGG/Vorbis), then resampling to 16 kHz as the `audio` step does. A
// decoded clip must have as many samples as frames, a positive rate and channel count;
// the resampled length must be the one ResampledLength() promises.

#include <cstdint>
#include <vector>

#include "features/audio/decode.h"
#include "fuzz_util.h"

namespace {
constexpr char kTarget[] = "audio_decode";
using dlprep::fuzz::Fail;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::vector<float> mono, scratch, resampled;
  static dlprep::audio::Resampler resampler(16000);
  dlprep::audio::AudioInfo info;
    arrow::Status st = dlprep::audio::DecodeMono(data, static_cast<int64_t>(size), 30.0, &mono,
                                               &scratch, &info);
  if (!st.ok()) return 0;
  if (info.sample_rate <= 0 || info.channels <= 0 || info.frames <= 0) {
    Fail(kTarget, "decoded with rate " + std::to_string(info.sample_rate) + ", channels " +
                      std::to_string(info.channels) + ", frames " +
                      std::to_string(info.frames));
  }
  if (static_cast<int64_t>(mono.size()) != info.frames) {
    Fail(kTarget, std::to_string(mono.size()) + " samples for " +
                      std::to_string(info.frames) + " frames");
  }
  // Resampling cost, not correctness: skip outputs of more than 1M samples.
  if (dlprep::audio::ResampledLength(static_cast<int64_t>(mono.size()), info.sample_rate,
                                     16000) > (1 << 20)) {
    return 0;
  }
  st = resampler.Resample(mono.data(), static_cast<int64_t>(mono.size()), info.sample_rate,
                          &resampled);
  if (st.ok() && static_cast<int64_t>(resampled.size()) !=
                     dlprep::audio::ResampledLength(static_cast<int64_t>(mono.size()),
                                                    info.sample_rate, 16000)) {
    Fail(kTarget, "resampled length differs from ResampledLength()");
  }
  return 0;
}
