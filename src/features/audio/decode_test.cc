#include "features/audio/decode.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <ogg/ogg.h>

namespace dlprep::audio {
namespace {

// A 16-bit PCM WAV file of interleaved `samples`.
std::string Wav16(int rate, int channels, const std::vector<int16_t>& samples) {
  auto u32 = [](std::string* s, uint32_t v) { s->append(reinterpret_cast<char*>(&v), 4); };
  auto u16 = [](std::string* s, uint16_t v) { s->append(reinterpret_cast<char*>(&v), 2); };
  const uint32_t data_bytes = static_cast<uint32_t>(samples.size() * 2);
  std::string s = "RIFF";
  u32(&s, 36 + data_bytes);
  s += "WAVEfmt ";
  u32(&s, 16);
  u16(&s, 1);
  u16(&s, static_cast<uint16_t>(channels));
  u32(&s, static_cast<uint32_t>(rate));
  u32(&s, static_cast<uint32_t>(rate * channels * 2));
  u16(&s, static_cast<uint16_t>(channels * 2));
  u16(&s, 16);
  s += "data";
  u32(&s, data_bytes);
  s.append(reinterpret_cast<const char*>(samples.data()), data_bytes);
  return s;
}

arrow::Status Decode(const std::string& bytes, std::vector<float>* mono, AudioInfo* info,
                     double max_seconds = 0) {
  std::vector<float> scratch;
  return DecodeMono(reinterpret_cast<const uint8_t*>(bytes.data()),
                    static_cast<int64_t>(bytes.size()), max_seconds, mono, &scratch, info);
}

TEST(DecodeMono, Pcm16ScaledLikeSoundfile) {
  std::vector<float> mono;
  AudioInfo info;
  ASSERT_TRUE(Decode(Wav16(8000, 1, {0, 16384, -32768, 32767, -1}), &mono, &info).ok());
  EXPECT_EQ(info.sample_rate, 8000);
  EXPECT_EQ(info.channels, 1);
  EXPECT_EQ(info.frames, 5);
  EXPECT_NE(info.format.find("WAV"), std::string::npos);
  ASSERT_EQ(mono.size(), 5u);
  EXPECT_EQ(mono[0], 0.0f);
  EXPECT_EQ(mono[1], 0.5f);
  EXPECT_EQ(mono[2], -1.0f);
  EXPECT_EQ(mono[3], 32767.0f / 32768.0f);  // [-1, 1): divided by 2^15
  EXPECT_EQ(mono[4], -1.0f / 32768.0f);
}

TEST(DecodeMono, ChannelsAveraged) {
  std::vector<float> mono;
  AudioInfo info;
  ASSERT_TRUE(Decode(Wav16(16000, 2, {16384, 0, -16384, -16384, 8192, 24576}), &mono, &info).ok());
  EXPECT_EQ(info.channels, 2);
  ASSERT_EQ(mono.size(), 3u);
  EXPECT_FLOAT_EQ(mono[0], 0.25f);
  EXPECT_FLOAT_EQ(mono[1], -0.5f);
  EXPECT_FLOAT_EQ(mono[2], 0.5f);
}

TEST(DecodeMono, BadInputIsAnInvalidStatusWithTheReason) {
  std::vector<float> mono;
  AudioInfo info;
  auto st = Decode("", &mono, &info);
  EXPECT_TRUE(st.IsInvalid());
  EXPECT_NE(st.message().find("empty file"), std::string::npos) << st.message();

  st = Decode("this is not audio at all, just some text bytes......", &mono, &info);
  EXPECT_TRUE(st.IsInvalid());
  EXPECT_NE(st.message().find("not a readable audio file"), std::string::npos) << st.message();

  std::string wav = Wav16(16000, 1, std::vector<int16_t>(1000, 5));
  st = Decode(wav.substr(0, 30), &mono, &info);  // cut inside the header
  EXPECT_TRUE(st.IsInvalid()) << st.ToString();

  st = Decode(wav.substr(0, 44 + 700), &mono, &info);  // cut inside the data
  EXPECT_TRUE(st.IsInvalid());
  EXPECT_NE(st.message().find("truncated: the WAV data chunk announces 2000 bytes but the "
                              "file holds 700"),
            std::string::npos)
      << st.message();

  st = Decode(Wav16(16000, 1, {}), &mono, &info);
  EXPECT_TRUE(st.IsInvalid());
  EXPECT_NE(st.message().find("no audio samples"), std::string::npos) << st.message();

  st = Decode(Wav16(1000, 1, std::vector<int16_t>(3000, 1)), &mono, &info, 2.5);
  EXPECT_TRUE(st.IsInvalid());
  EXPECT_NE(st.message().find("exceeds --max-seconds 2.5"), std::string::npos) << st.message();
  EXPECT_TRUE(Decode(Wav16(1000, 1, std::vector<int16_t>(2500, 1)), &mono, &info, 2.5).ok());

  // An AIFF header: libsndfile reads it, dlprep does not support it.
  std::string aiff = "FORM";
  st = Decode(aiff + std::string("\0\0\0\x2e", 4) + "AIFFCOMM" + std::string("\0\0\0\x12", 4) +
                  std::string("\0\x01\0\0\0\x01\0\x10\x40\x0b\xfa\0\0\0\0\0\0\0", 18) +
                  "SSND" + std::string("\0\0\0\x0a\0\0\0\0\0\0\0\0", 12),
              &mono, &info);
  EXPECT_TRUE(st.IsInvalid());
  EXPECT_NE(st.message().find("unsupported audio format"), std::string::npos) << st.message();
}

// Overwrites the little-endian u32 at `offset` (the RIFF size at 4, the data chunk's
// size at 40 in Wav16's layout).
std::string WithU32(std::string wav, size_t offset, uint32_t v) {
  std::memcpy(wav.data() + offset, &v, 4);
  return wav;
}

// Programs writing a WAV to a pipe cannot go back to fill in the sizes and leave
// 0xFFFFFFFF there (ffmpeg, sox): such a data chunk runs to the end of the file. Any
// other size larger than what the file holds is a truncated file.
TEST(DecodeMono, StreamedWavSizeRunsToTheEndButTruncationIsAnError) {
  std::vector<int16_t> samples(1000);
  for (size_t i = 0; i < samples.size(); ++i) samples[i] = static_cast<int16_t>(i * 16);
  const std::string wav = Wav16(16000, 1, samples);
  std::vector<float> mono;
  AudioInfo info;

  // Data size 0xFFFFFFFF, and the RIFF size too (as a streaming writer leaves both).
  const std::string streamed_data = WithU32(wav, 40, 0xFFFFFFFFu);
  for (const std::string& streamed :
       {streamed_data, WithU32(streamed_data, 4, 0xFFFFFFFFu)}) {
    auto st = Decode(streamed, &mono, &info);
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_EQ(info.frames, 1000);
    ASSERT_EQ(mono.size(), 1000u);
    EXPECT_EQ(mono[999], 999 * 16 / 32768.0f);
  }
  // Streamed and then cut: whatever whole frames are there (an odd byte is dropped).
  auto st = Decode(WithU32(wav, 40, 0xFFFFFFFFu).substr(0, 44 + 601), &mono, &info);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(mono.size(), 300u);

  // Any other size beyond the end: truncated, the largest real one included.
  st = Decode(WithU32(wav, 40, 0xFFFFFFFEu), &mono, &info);
  EXPECT_TRUE(st.IsInvalid());
  EXPECT_NE(st.message().find("truncated: the WAV data chunk announces 4294967294 "
                              "bytes but the file holds 2000"),
            std::string::npos)
      << st.message();
  st = Decode(WithU32(wav, 40, 2002), &mono, &info);
  EXPECT_TRUE(st.IsInvalid());
  EXPECT_NE(st.message().find("announces 2002 bytes but the file holds 2000"),
            std::string::npos)
      << st.message();
  // Truncation is found however much comes before the data chunk (libsndfile's log,
  // where it notes the size it expected, holds 2 KB).
  std::string chunky = wav.substr(0, 36);
  for (int i = 0; i < 150; ++i) chunky += std::string("junk\x02\0\0\0ab", 10);
  chunky += wav.substr(36);
  ASSERT_TRUE(Decode(chunky, &mono, &info).ok());
  EXPECT_EQ(mono.size(), 1000u);
  st = Decode(chunky.substr(0, chunky.size() - 1000), &mono, &info);
  EXPECT_TRUE(st.IsInvalid());
  EXPECT_NE(st.message().find("announces 2000 bytes but the file holds 1000"),
            std::string::npos)
      << st.message();
  // Older sox leaves 0x7FFFF000 (sox reads it as "length unknown" too): to the end.
  st = Decode(WithU32(wav, 40, 0x7FFFF000u), &mono, &info);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(mono.size(), 1000u);
  // A data size of 0 (old ffmpeg to a pipe) is not guessed at: libsndfile reads no
  // samples, and the message says what the header announced.
  st = Decode(WithU32(wav, 40, 0), &mono, &info);
  EXPECT_TRUE(st.IsInvalid());
  EXPECT_NE(st.message().find("no audio samples: the WAV data chunk announces 0 bytes "
                              "and 2000 bytes follow it"),
            std::string::npos)
      << st.message();

  // A data chunk that ends before the file does is not truncated: what follows it is
  // another chunk (or padding), not samples.
  st = Decode(WithU32(wav, 40, 1000), &mono, &info);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(mono.size(), 500u);
}

// Audio files of tests/fuzz/corpus/audio_decode (see its README): the damaged WAVs of
// 100 samples each, and the fuzzer's well-formed starting points (seed_*).
TEST(DecodeMono, CorpusSeeds) {
  int seen = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(DLPREP_FUZZ_CORPUS "/audio_decode")) {
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), {});
    const std::string name = entry.path().filename().string();
    std::vector<float> mono;
    AudioInfo info;
    auto st = Decode(bytes, &mono, &info);
    if (name.rfind("seed_", 0) == 0) {
      ASSERT_TRUE(st.ok()) << name << ": " << st.ToString();
      EXPECT_GT(mono.size(), 0u) << name;
    } else if (name.rfind("streamed_", 0) == 0 || name.rfind("old_sox_", 0) == 0) {
      ASSERT_TRUE(st.ok()) << name << ": " << st.ToString();
      EXPECT_EQ(mono.size(), 100u) << name;
    } else if (name.rfind("vorbis_", 0) == 0) {  // found by the fuzzer; leaked before
      EXPECT_NE(st.message().find("OGG/Vorbis file"), std::string::npos)
          << name << ": " << st.ToString();
    } else if (name.rfind("truncated_", 0) == 0) {
      EXPECT_NE(st.message().find("truncated: the WAV data chunk announces"),
                std::string::npos)
          << name << ": " << st.ToString();
    } else {
      EXPECT_NE(st.message().find("no audio samples"), std::string::npos)
          << name << ": " << st.ToString();
    }
    ++seen;
  }
  EXPECT_GE(seen, 5);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// The packets of the first logical stream of an Ogg file, read with libogg.
std::vector<std::string> OggPackets(const std::string& file) {
  ogg_sync_state sync;
  ogg_stream_state stream;
  ogg_sync_init(&sync);
  char* buf = ogg_sync_buffer(&sync, static_cast<long>(file.size()));
  std::memcpy(buf, file.data(), file.size());
  ogg_sync_wrote(&sync, static_cast<long>(file.size()));
  std::vector<std::string> packets;
  ogg_page page;
  ogg_packet packet;
  bool started = false;
  while (ogg_sync_pageout(&sync, &page) == 1) {
    if (!started) ogg_stream_init(&stream, ogg_page_serialno(&page));
    started = true;
    ogg_stream_pagein(&stream, &page);
    while (ogg_stream_packetout(&stream, &packet) == 1) {
      packets.emplace_back(reinterpret_cast<char*>(packet.packet), packet.bytes);
    }
  }
  if (started) ogg_stream_clear(&stream);
  ogg_sync_clear(&sync);
  return packets;
}

// An Ogg file of `packets`, each on a page of its own (valid page CRCs).
std::string OggFile(const std::vector<std::string>& packets) {
  ogg_stream_state stream;
  ogg_stream_init(&stream, 1234);
  std::string out;
  ogg_page page;
  for (size_t i = 0; i < packets.size(); ++i) {
    ogg_packet p{};
    p.packet = reinterpret_cast<unsigned char*>(const_cast<char*>(packets[i].data()));
    p.bytes = static_cast<long>(packets[i].size());
    p.b_o_s = i == 0;
    p.e_o_s = i + 1 == packets.size();
    p.granulepos = i < 3 ? 0 : static_cast<ogg_int64_t>(i) * 256;
    p.packetno = static_cast<ogg_int64_t>(i);
    ogg_stream_packetin(&stream, &p);
    while (ogg_stream_flush(&stream, &page) != 0) {
      out.append(reinterpret_cast<char*>(page.header), page.header_len);
      out.append(reinterpret_cast<char*>(page.body), page.body_len);
    }
  }
  ogg_stream_clear(&stream);
  return out;
}

// Ogg/Vorbis files whose headers are malformed are errors that name the header (and
// do not reach libsndfile, which leaks its decoder setup on them: the fuzzer's leak
// check and `make sanitize` run these under LeakSanitizer).
TEST(DecodeMono, OggVorbisWithBadHeadersNamesTheHeader) {
  const auto packets =
      OggPackets(ReadFile(DLPREP_FUZZ_CORPUS "/audio_decode/seed_vorbis_mono_16k.ogg"));
  ASSERT_GT(packets.size(), 3u);
  std::vector<float> mono;
  AudioInfo info;
  // The rebuilt file decodes: the cases below differ from it only where they say.
  auto st = Decode(OggFile(packets), &mono, &info);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_GT(mono.size(), 0u);

  auto bad_id = packets;
  bad_id[0][11] = 0;  // 0 channels
  st = Decode(OggFile(bad_id), &mono, &info);
  EXPECT_NE(st.message().find("malformed OGG/Vorbis file: its identification header is "
                              "invalid"),
            std::string::npos)
      << st.ToString();

  st = Decode(OggFile({packets[0]}), &mono, &info);
  EXPECT_NE(st.message().find("truncated: the OGG/Vorbis file ends before its comment "
                              "header"),
            std::string::npos)
      << st.ToString();

  st = Decode(OggFile({packets[0], packets[1]}), &mono, &info);
  EXPECT_NE(st.message().find("ends before its setup header"), std::string::npos)
      << st.ToString();

  auto bad_comment = packets;
  bad_comment[1] = "\x03vorbis garbage";
  st = Decode(OggFile(bad_comment), &mono, &info);
  EXPECT_NE(st.message().find("its comment header is invalid"), std::string::npos)
      << st.ToString();

  auto bad_setup = packets;
  bad_setup[2] = std::string("\x05vorbis") + std::string(40, '\x7f');
  st = Decode(OggFile(bad_setup), &mono, &info);
  EXPECT_NE(st.message().find("its setup header is invalid"), std::string::npos)
      << st.ToString();
}

TEST(Resampler, LengthAsLibrosaAndToneKept) {
  EXPECT_EQ(ResampledLength(44100, 44100, 16000), 16000);
  EXPECT_EQ(ResampledLength(1, 44100, 16000), 1);
  EXPECT_EQ(ResampledLength(100, 8000, 16000), 200);
  EXPECT_EQ(ResampledLength(22051, 22050, 16000), 16001);
  Resampler r(16000);
  const int in_rate = 44100;
  std::vector<float> x(in_rate), y;
  for (int i = 0; i < in_rate; ++i) x[i] = 0.5f * std::sin(2 * M_PI * 440 * i / in_rate);
  for (int pass = 0; pass < 2; ++pass) {  // the second pass reuses the soxr state
    ASSERT_TRUE(r.Resample(x.data(), in_rate, in_rate, &y).ok());
    ASSERT_EQ(y.size(), 16000u);
    // Away from the edges the output is the same tone sampled at 16 kHz (the filter's
    // delay is compensated by soxr).
    double err = 0;
    for (int i = 1000; i < 15000; ++i) {
      err = std::max(err, std::abs(y[i] - 0.5 * std::sin(2 * M_PI * 440 * i / 16000.0)));
    }
    EXPECT_LT(err, 1e-3) << "pass " << pass;
  }
  ASSERT_TRUE(r.Resample(x.data(), 1000, 8000, &y).ok());  // a second rate
  EXPECT_EQ(y.size(), 2000u);
}

}  // namespace
}  // namespace dlprep::audio
