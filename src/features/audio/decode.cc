#include "features/audio/decode.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include <ogg/ogg.h>
#include <sndfile.h>
#include <soxr.h>
#include <vorbis/codec.h>

namespace dlprep::audio {

namespace {

// A file in memory, read through libsndfile's virtual I/O.
struct MemoryFile {
  const uint8_t* data;
  sf_count_t size;
  sf_count_t pos;
};

sf_count_t VioLength(void* user) { return static_cast<MemoryFile*>(user)->size; }

sf_count_t VioSeek(sf_count_t offset, int whence, void* user) {
  auto* f = static_cast<MemoryFile*>(user);
  sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? f->pos : f->size;
  sf_count_t p = base + offset;
  if (p < 0) return -1;
  f->pos = std::min(p, f->size);
  return f->pos;
}

sf_count_t VioRead(void* ptr, sf_count_t count, void* user) {
  auto* f = static_cast<MemoryFile*>(user);
  sf_count_t n = std::max<sf_count_t>(0, std::min(count, f->size - f->pos));
  if (n > 0) std::memcpy(ptr, f->data + f->pos, static_cast<size_t>(n));
  f->pos += n;
  return n;
}

sf_count_t VioWrite(const void*, sf_count_t, void*) { return 0; }
sf_count_t VioTell(void* user) { return static_cast<MemoryFile*>(user)->pos; }

std::string FormatName(int format) {
  SF_FORMAT_INFO fi{};
  fi.format = format;
  if (sf_command(nullptr, SFC_GET_FORMAT_INFO, &fi, sizeof(fi)) != 0 || fi.name == nullptr) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "0x%x", format);
    return buf;
  }
  return fi.name;
}

bool Supported(int format) {
  const int major = format & SF_FORMAT_TYPEMASK;
  const int sub = format & SF_FORMAT_SUBMASK;
  switch (major) {
    case SF_FORMAT_WAV:
    case SF_FORMAT_WAVEX:
    case SF_FORMAT_RF64:
      return sub == SF_FORMAT_PCM_U8 || sub == SF_FORMAT_PCM_S8 || sub == SF_FORMAT_PCM_16 ||
             sub == SF_FORMAT_PCM_24 || sub == SF_FORMAT_PCM_32 || sub == SF_FORMAT_FLOAT ||
             sub == SF_FORMAT_DOUBLE;
    case SF_FORMAT_FLAC:
      return sub == SF_FORMAT_PCM_S8 || sub == SF_FORMAT_PCM_16 || sub == SF_FORMAT_PCM_24;
    case SF_FORMAT_OGG:
      return sub == SF_FORMAT_VORBIS;
    default:
      return false;
  }
}

// Sizes of a WAV data chunk that mean "length unknown": programs writing to a pipe
// cannot go back to fill in the size and leave a placeholder; the data then runs to the
// end of the file. 0xFFFFFFFF is ffmpeg's and current sox's, 0x7FFFF000 older sox's
// (sox's own reader takes both as unknown).
constexpr uint64_t kUnknownWavSize = 0xFFFFFFFFull;
constexpr uint64_t kOldSoxUnknownWavSize = 0x7FFFF000ull;

uint32_t U32(const uint8_t* p, bool big_endian) {
  if (big_endian) {
    return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
  }
  return uint32_t{p[3]} << 24 | uint32_t{p[2]} << 16 | uint32_t{p[1]} << 8 | p[0];
}

uint64_t U64(const uint8_t* p) {  // little-endian (RF64's ds64 chunk)
  return uint64_t{U32(p + 4, false)} << 32 | U32(p, false);
}

// What is wrong with the data chunk of a WAV (RIFF, RIFX or RF64), or "" when nothing
// is. The chunks are walked here rather than read from libsndfile's log, which is
// capped at 2 KB and so misses the data chunk after many others; libsndfile itself
// reads whatever is there either way.
// * A chunk announcing more bytes than the file holds was cut short: truncated. Unless
//   its size means "length unknown" (kUnknownWavSize, kOldSoxUnknownWavSize; in RF64
//   when its ds64 chunk gives none): such data runs to the end of the file.
// * One announcing 0 bytes with bytes after it: libsndfile reads no samples; the
//   message says so rather than guessing that they are samples.
std::string WavDataProblem(const uint8_t* data, int64_t size) {
  if (size < 12) return "";
  const bool rf64 = std::memcmp(data, "RF64", 4) == 0;
  const bool big_endian = std::memcmp(data, "RIFX", 4) == 0;
  if (std::memcmp(data, "RIFF", 4) != 0 && !big_endian && !rf64) return "";
  uint64_t ds64_data_size = kUnknownWavSize;
  int64_t pos = 12;
  while (pos + 8 <= size) {
    const uint8_t* chunk = data + pos;
    const uint64_t chunk_size = U32(chunk + 4, big_endian);
    if (rf64 && std::memcmp(chunk, "ds64", 4) == 0 && pos + 8 + 16 <= size) {
      ds64_data_size = U64(chunk + 8 + 8);  // after the 64-bit RIFF size
    }
    if (std::memcmp(chunk, "data", 4) == 0) {
      uint64_t announced = chunk_size;
      if (rf64 && announced == kUnknownWavSize) announced = ds64_data_size;
      const uint64_t holds = static_cast<uint64_t>(size - pos - 8);
      if (announced == 0 && holds > 0) {
        return "no audio samples: the WAV data chunk announces 0 bytes and " +
               std::to_string(holds) +
               " bytes follow it (if they are samples, the program that wrote the file "
               "did not fill in the size)";
      }
      if (announced <= holds || announced == kUnknownWavSize ||
          announced == kOldSoxUnknownWavSize) {
        return "";
      }
      return "truncated: the WAV data chunk announces " + std::to_string(announced) +
             " bytes but the file holds " + std::to_string(holds);
    }
    pos += 8 + static_cast<int64_t>(chunk_size + (chunk_size & 1));  // chunks are even
  }
  return "";
}

// What is wrong with the three Vorbis headers of an Ogg/Vorbis file, or "" when nothing
// is (or when the file is not Ogg/Vorbis). libsndfile (1.2.x) leaks the decoder setup it
// allocated (about 6 KB) when such a file's headers are malformed: its header reader
// returns before the codec's close function is installed. A job over many damaged files
// would grow by that much per file, so the headers are read here first, with libogg and
// libvorbis in the order libsndfile reads them, and a file whose headers do not all
// parse never reaches libsndfile.
class VorbisHeaderCheck {
 public:
  VorbisHeaderCheck(const uint8_t* data, int64_t size) : data_(data), size_(size) {
    ogg_sync_init(&sync_);
  }
  ~VorbisHeaderCheck() {
    if (vorbis_) {
      vorbis_comment_clear(&comment_);
      vorbis_info_clear(&info_);
    }
    if (stream_) ogg_stream_clear(&stream_state_);
    ogg_sync_clear(&sync_);
  }
  VorbisHeaderCheck(const VorbisHeaderCheck&) = delete;
  VorbisHeaderCheck& operator=(const VorbisHeaderCheck&) = delete;

  std::string Problem() {
    if (size_ < 4 || std::memcmp(data_, "OggS", 4) != 0) return "";
    ogg_page page;
    ogg_packet packet;
    if (!NextPage(&page)) return "";  // libsndfile finds no stream either
    ogg_stream_init(&stream_state_, ogg_page_serialno(&page));
    stream_ = true;
    if (ogg_stream_pagein(&stream_state_, &page) != 0 ||
        ogg_stream_packetout(&stream_state_, &packet) != 1 || packet.bytes < 7 ||
        std::memcmp(packet.packet, "\x01vorbis", 7) != 0) {
      return "";  // not Vorbis: libsndfile refuses or reads it on another path
    }
    vorbis_info_init(&info_);
    vorbis_comment_init(&comment_);
    vorbis_ = true;
    if (vorbis_synthesis_headerin(&info_, &comment_, &packet) < 0) {
      return "malformed OGG/Vorbis file: its identification header is invalid";
    }
    static constexpr const char* kNames[] = {"", "comment", "setup"};
    for (int headers = 1; headers < 3;) {
      if (!NextPage(&page)) {
        return std::string("truncated: the OGG/Vorbis file ends before its ") +
               kNames[headers] + " header";
      }
      ogg_stream_pagein(&stream_state_, &page);  // a page of another stream is ignored
      while (headers < 3) {
        const int r = ogg_stream_packetout(&stream_state_, &packet);
        if (r == 0) break;
        if (r < 0) {
          return std::string("malformed OGG/Vorbis file: a page of its ") + kNames[headers] +
                 " header is missing or damaged";
        }
        if (vorbis_synthesis_headerin(&info_, &comment_, &packet) < 0) {
          return std::string("malformed OGG/Vorbis file: its ") + kNames[headers] +
                 " header is invalid";
        }
        ++headers;
      }
    }
    return "";
  }

 private:
  // The next whole page, feeding the file to libogg 4 KiB at a time; false at its end.
  bool NextPage(ogg_page* page) {
    for (;;) {
      const int r = ogg_sync_pageout(&sync_, page);
      if (r == 1) return true;
      if (r < 0) continue;  // bytes skipped to the next page boundary
      if (fed_ >= size_) return false;
      const int64_t n = std::min<int64_t>(4096, size_ - fed_);
      char* buf = ogg_sync_buffer(&sync_, static_cast<long>(n));
      if (buf == nullptr) return false;
      std::memcpy(buf, data_ + fed_, static_cast<size_t>(n));
      ogg_sync_wrote(&sync_, static_cast<long>(n));
      fed_ += n;
    }
  }

  const uint8_t* data_;
  int64_t size_;
  int64_t fed_ = 0;
  ogg_sync_state sync_;
  ogg_stream_state stream_state_;
  vorbis_info info_;
  vorbis_comment comment_;
  bool stream_ = false;
  bool vorbis_ = false;
};

struct SndfileCloser {
  void operator()(SNDFILE* f) const { sf_close(f); }
};

}  // namespace

arrow::Status DecodeMono(const uint8_t* data, int64_t size, double max_seconds,
                         std::vector<float>* mono, std::vector<float>* scratch,
                         AudioInfo* info) {
  if (size == 0) return arrow::Status::Invalid("empty file (0 bytes)");
  {
    std::string problem = VorbisHeaderCheck(data, size).Problem();
    if (!problem.empty()) return arrow::Status::Invalid(problem);
  }
  MemoryFile file{data, size, 0};
  SF_VIRTUAL_IO vio{VioLength, VioSeek, VioRead, VioWrite, VioTell};
  SF_INFO sfi{};
  std::unique_ptr<SNDFILE, SndfileCloser> snd(sf_open_virtual(&vio, SFM_READ, &sfi, &file));
  if (snd == nullptr) {
    return arrow::Status::Invalid("not a readable audio file: ", sf_strerror(nullptr));
  }
  info->sample_rate = sfi.samplerate;
  info->channels = sfi.channels;
  info->frames = sfi.frames;
  info->format = FormatName(sfi.format & SF_FORMAT_TYPEMASK) + " / " +
                 FormatName(sfi.format & SF_FORMAT_SUBMASK);
  if (!Supported(sfi.format)) {
    return arrow::Status::Invalid("unsupported audio format ", info->format,
                                  " (supported: WAV PCM 8/16/24/32-bit or float, FLAC, "
                                  "OGG/Vorbis)");
  }
  const int major = sfi.format & SF_FORMAT_TYPEMASK;
  if (major == SF_FORMAT_WAV || major == SF_FORMAT_WAVEX || major == SF_FORMAT_RF64) {
    std::string problem = WavDataProblem(data, size);
    if (!problem.empty()) return arrow::Status::Invalid(problem);
  }
  if (sfi.samplerate <= 0 || sfi.channels <= 0) {
    return arrow::Status::Invalid("invalid header: sample rate ", sfi.samplerate, ", ",
                                  sfi.channels, " channel(s)");
  }
  if (sfi.frames <= 0) return arrow::Status::Invalid("no audio samples (", info->format, ")");
  const double seconds = static_cast<double>(sfi.frames) / sfi.samplerate;
  if (max_seconds > 0 && seconds > max_seconds) {
    char msg[128];
    std::snprintf(msg, sizeof(msg), "too long: %g s of audio exceeds --max-seconds %g",
                  seconds, max_seconds);
    return arrow::Status::Invalid(msg);
  }
  const int ch = sfi.channels;
  if (ch > 1024) return arrow::Status::Invalid("invalid header: ", ch, " channels");
  // Read in blocks, so that a header announcing more frames than the file holds cannot
  // make us allocate for them; what was announced and not decoded is a truncated file.
  std::vector<float>* buf = ch == 1 ? mono : scratch;
  constexpr sf_count_t kBlock = 1 << 16;
  sf_count_t got = 0;
  buf->resize(static_cast<size_t>(std::min<sf_count_t>(sfi.frames, kBlock * 16)) * ch);
  while (got < sfi.frames) {
    const sf_count_t want = std::min(kBlock, sfi.frames - got);
    if (static_cast<size_t>((got + want) * ch) > buf->size()) {
      buf->resize(std::max(buf->size() * 2, static_cast<size_t>((got + want) * ch)));
    }
    const sf_count_t n = sf_readf_float(snd.get(), buf->data() + got * ch, want);
    if (n > 0) got += n;
    if (sf_error(snd.get()) != SF_ERR_NO_ERROR) {
      return arrow::Status::Invalid("decoding failed after ", got, " of ", sfi.frames,
                                    " frames: ", sf_strerror(snd.get()));
    }
    if (n < want) break;
  }
  if (got < sfi.frames) {
    return arrow::Status::Invalid("truncated: the header announces ", sfi.frames,
                                  " frames but only ", got, " could be decoded (",
                                  info->format, ")");
  }
  buf->resize(static_cast<size_t>(got) * ch);
  const float* dst = buf->data();
  if (ch > 1) {
    mono->resize(sfi.frames);
    float* m = mono->data();
    const float inv = 1.0f / static_cast<float>(ch);
    for (sf_count_t i = 0; i < sfi.frames; ++i) {
      const float* frame = dst + i * ch;
      float acc = 0.0f;
      for (int c = 0; c < ch; ++c) acc += frame[c];
      m[i] = acc * inv;
    }
  }
  return arrow::Status::OK();
}

int64_t ResampledLength(int64_t n, int in_rate, int out_rate) {
  const double ratio = static_cast<double>(out_rate) / static_cast<double>(in_rate);
  return static_cast<int64_t>(std::ceil(static_cast<double>(n) * ratio));
}

Resampler::~Resampler() {
  for (auto& [rate, s] : states_) soxr_delete(s);
}

arrow::Status Resampler::Resample(const float* in, int64_t n, int in_rate,
                                  std::vector<float>* out) {
  const int64_t want = ResampledLength(n, in_rate, out_rate_);
  out->assign(want, 0.0f);
  soxr_t s;
  auto it = states_.find(in_rate);
  if (it != states_.end()) {
    s = it->second;
    soxr_clear(s);
  } else {
    soxr_error_t err = nullptr;
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
    soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
    soxr_runtime_spec_t rt = soxr_runtime_spec(1);
    s = soxr_create(in_rate, out_rate_, 1, &err, &io, &q, &rt);
    if (err != nullptr) {
      return arrow::Status::Invalid("soxr cannot resample ", in_rate, " Hz to ", out_rate_,
                                    " Hz: ", err);
    }
    states_[in_rate] = s;
  }
  // soxr's own length: round(n * out / in); the rest stays zero (librosa fix_length).
  const size_t olen = std::min<size_t>(
      want, static_cast<size_t>(static_cast<double>(n) * out_rate_ / in_rate + 0.5));
  size_t consumed = 0, produced = 0;
  soxr_error_t err = nullptr;
  while (err == nullptr && produced < olen) {
    const bool flush = consumed >= static_cast<size_t>(n);
    size_t idone = 0, odone = 0;
    err = soxr_process(s, flush ? nullptr : in + consumed, flush ? 0 : n - consumed, &idone,
                       out->data() + produced, olen - produced, &odone);
    consumed += idone;
    produced += odone;
    if (flush && odone == 0) break;
  }
  if (err != nullptr) return arrow::Status::Invalid("soxr: ", err);
  return arrow::Status::OK();
}

}  // namespace dlprep::audio
