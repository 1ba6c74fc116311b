// Fuzz target: the _manifest.json reader. The input is the text of a dataset folder's
// manifest; the folder also holds part-00000.tfrecord (two Examples: id int64, name
// bytes). The manifest is read by ReadManifestSchema and ReadManifestFiles (what
// `inspect --verify` checks against), then the folder is read by the TFRecord source,
// which takes its schema, compression and record type from the manifest. Listed names
// must stay inside the folder, counts must not be negative, and batches must be valid.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include <arrow/api.h>

#include "dlprep/sink.h"
#include "dlprep/source.h"
#include "fuzz_util.h"
#include "io/manifest.h"
#include "io/tfrecord.h"

namespace {

constexpr char kTarget[] = "manifest";
using dlprep::fuzz::Fail;

// The folder, with its one data file written once.
std::string DatasetDir() {
  const std::filesystem::path dir = dlprep::fuzz::ScratchDir() / "dataset";
  std::filesystem::create_directories(dir);
  auto writer = dlprep::io::RecordWriter::Open((dir / "part-00000.tfrecord").string(),
                                               dlprep::TfRecordCompression::kNone);
  if (!writer.ok()) Fail(kTarget, writer.status().ToString());
  // Example{id: [7], name: ["row"]}
  const std::string_view example(
      "\x0a\x1e\x0a\x0b\x0a\x02\x69\x64\x12\x05\x1a\x03\x0a\x01\x07\x0a\x0f\x0a\x04\x6e\x61"
      "\x6d\x65\x12\x07\x0a\x05\x0a\x03\x72\x6f\x77",
      32);
  arrow::Status st = (*writer)->Write(example);
  st &= (*writer)->Write(example);
  st &= (*writer)->Close();
  if (!st.ok()) Fail(kTarget, st.ToString());
  return dir.string();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = DatasetDir();
  dlprep::fuzz::WriteFile(std::filesystem::path(dir) / "_manifest.json",
                          std::string_view(reinterpret_cast<const char*>(data), size));

  dlprep::fuzz::Note(kTarget, dlprep::io::ReadManifestSchema(dir).status());

  auto files = dlprep::ReadManifestFiles(dir);
  dlprep::fuzz::Note(kTarget, files.status());
  if (files.ok()) {
    if (files->rows < 0 || files->bytes < 0) Fail(kTarget, "negative counts accepted");
    for (const auto& f : files->files) {
      const std::filesystem::path p(f.name);
      bool inside = !f.name.empty() && p.is_relative();
      for (const auto& part : p) inside = inside && part != "..";
      if (!inside || f.rows < 0 || f.bytes < 0) {
        Fail(kTarget, "file entry '" + f.name + "' accepted");
      }
    }
  }

  dlprep::TfRecordSourceOptions options;
  options.paths = {dir};
  options.skip_corrupt = true;
  auto source = dlprep::OpenTfRecordSource(options);
  dlprep::fuzz::Note(kTarget, source.status());
  if (!source.ok()) return 0;
  for (int64_t p = 0; p < (*source)->num_partitions(); ++p) {
    auto reader = (*source)->OpenPartition(p);
    if (!reader.ok()) continue;
    while (true) {
      auto batch = (*reader)->Next();
      if (!batch.ok() || *batch == nullptr) break;
      dlprep::fuzz::CheckBatch(kTarget, **batch);
    }
  }
  return 0;
}
