#pragma once
// Decoding (libsndfile, from memory) and resampling (soxr) of audio clips.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <arrow/status.h>

struct soxr;

namespace dlprep::audio {

/// What DecodeMono() found in a file.
struct AudioInfo {
  int sample_rate = 0;
  int channels = 0;
  int64_t frames = 0;
  std::string format;  ///< e.g. "WAV (Microsoft) / Signed 16 bit PCM"
};

/// Decodes a WAV (PCM 8/16/24/32-bit, 32/64-bit float), FLAC or OGG/Vorbis file held in
/// memory with libsndfile's virtual I/O (no temporary file), into mono float samples:
/// integers are scaled to [-1, 1) by libsndfile exactly as Python's soundfile does
/// (`sf_readf_float`), several channels are averaged. `mono` is resized (its capacity is
/// reused); `scratch` holds the interleaved frames.
///
/// Fails with Invalid and the decoder's reason for an empty, truncated, non-audio or
/// unsupported file, a file without samples, or one longer than `max_seconds` (> 0;
/// checked from the header before decoding).
arrow::Status DecodeMono(const uint8_t* data, int64_t size, double max_seconds,
                         std::vector<float>* mono, std::vector<float>* scratch,
                         AudioInfo* info);

/// Output length of a resampling from `in_rate` to `out_rate`, as librosa
/// `resample(fix=True)` computes it: ceil(n * (out_rate / in_rate)) in double.
int64_t ResampledLength(int64_t n, int in_rate, int out_rate);

/// Resamples mono float signals with soxr at high quality (SOXR_HQ, librosa's default
/// `soxr_hq`), keeping one soxr state per input rate for reuse. The output has
/// ResampledLength() samples: soxr's round(n * out / in), zero-padded at the end as
/// librosa's fix_length does. Not thread-safe: one instance per thread.
class Resampler {
 public:
  explicit Resampler(int out_rate) : out_rate_(out_rate) {}
  ~Resampler();
  Resampler(const Resampler&) = delete;
  Resampler& operator=(const Resampler&) = delete;

  /// in -> *out (resized). Fails (Invalid) only on a soxr error.
  arrow::Status Resample(const float* in, int64_t n, int in_rate, std::vector<float>* out);

 private:
  int out_rate_;
  std::map<int, soxr*> states_;
};

}  // namespace dlprep::audio
