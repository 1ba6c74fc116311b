// Fuzz target: TFRecord framing. The input is a whole file. It is read three ways with
// io::RecordReader, going on after each corrupt record as --skip-corrupt does: as it is
// (compression detected), and wrapped in a GZIP and in a ZLIB stream (so the fuzzer
// reaches the framing code behind the decompressor too). Then the file is read whole
// by the TFRecord source with skip_corrupt, as `dlprep convert` reads it, and every
// batch must be valid Arrow data.

#include <zlib.h>

#include <cstdint>
#include <string>
#include <string_view>

#include <arrow/record_batch.h>

#include "dlprep/source.h"
#include "fuzz_util.h"
#include "io/tfrecord.h"

namespace {

constexpr char kTarget[] = "tfrecord_framing";
using dlprep::fuzz::Fail;

// `data` deflated into a GZIP (window_bits 31) or ZLIB (15) stream.
std::string Deflate(std::string_view data, int window_bits) {
  z_stream zs{};
  if (deflateInit2(&zs, 1, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    Fail(kTarget, "deflateInit2 failed");
  }
  std::string out(deflateBound(&zs, data.size()) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) Fail(kTarget, "deflate failed");
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// Reads every record of `path`, skipping corrupt ones; checks what the reader says
// against `stream_size`, the size of the uncompressed stream.
void ReadAll(const std::string& path, dlprep::TfRecordCompression compression,
             int64_t stream_size, int64_t file_size) {
  auto opened = dlprep::io::RecordReader::Open(path, compression);
  if (!opened.ok()) return;
  auto reader = std::move(*opened);
  std::string_view record;
  int64_t last_offset = -1;
  for (int guard = 0; guard < 1 << 20; ++guard) {
    auto next = reader->Next(&record);
    if (!next.ok()) {
      auto resync = reader->SkipCorrupt();
      if (!resync.ok()) Fail(kTarget, "SkipCorrupt failed: " + resync.status().ToString());
      if (*resync) continue;
      if (reader->lost_bytes() < 0 || reader->lost_bytes() > file_size) {
        Fail(kTarget, "lost_bytes " + std::to_string(reader->lost_bytes()) +
                          " outside the file of " + std::to_string(file_size));
      }
      return;
    }
    if (!*next) return;
    const int64_t offset = reader->record_offset();
    if (offset <= last_offset || offset < 0 ||
        offset + 16 + static_cast<int64_t>(record.size()) > stream_size) {
      Fail(kTarget, "record at offset " + std::to_string(offset) + " of " +
                        std::to_string(record.size()) + " bytes outside the stream of " +
                        std::to_string(stream_size) + " (previous offset " +
                        std::to_string(last_offset) + ")");
    }
    last_offset = offset;
  }
  Fail(kTarget, "reader did not come to an end");
}

void ReadWithSource(const std::string& path) {
  dlprep::TfRecordSourceOptions options;
  options.paths = {path};
  options.skip_corrupt = true;
  options.batch_rows = 7;
  auto source = dlprep::OpenTfRecordSource(options);
  if (!source.ok()) return;
  for (int64_t p = 0; p < (*source)->num_partitions(); ++p) {
    auto reader = (*source)->OpenPartition(p);
    if (!reader.ok()) continue;
    while (true) {
      auto batch = (*reader)->Next();
      if (!batch.ok() || *batch == nullptr) break;
      dlprep::fuzz::CheckBatch(kTarget, **batch);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const std::string path = (dlprep::fuzz::ScratchDir() / "input.tfrecord").string();
  const auto n = static_cast<int64_t>(size);

  dlprep::fuzz::WriteFile(path, bytes);
  // As it is: the stream size is not known when the input is itself compressed.
  ReadAll(path, dlprep::TfRecordCompression::kAuto, INT64_MAX, n);
  ReadWithSource(path);

  const std::string gz = Deflate(bytes, 15 + 16);
  dlprep::fuzz::WriteFile(path, gz);
  ReadAll(path, dlprep::TfRecordCompression::kGzip, n, static_cast<int64_t>(gz.size()));

  const std::string zl = Deflate(bytes, 15);
  dlprep::fuzz::WriteFile(path, zl);
  ReadAll(path, dlprep::TfRecordCompression::kZlib, n, static_cast<int64_t>(zl.size()));
  return 0;
}
