// Fuzz target: pipeline files. The input is the YAML text of a pipeline file, loaded as
// `dlprep run` loads it, with every step the CLI registers, from a folder holding
// data.csv (a int64, b string), data.jsonl (the same) and data.tfrecord (one Example).
// A loaded pipeline must give a pipeline, and its normalized YAML (what --dry-run
// prints) must load again.
//
// Inputs that could name a file outside that folder are skipped (a scalar that starts
// with '/', "..", "**", and '\\' for YAML escapes), so that the fuzzer cannot make the
// target list or open the machine's files (a recursive listing of /, /dev/stdin).

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "exec/pipeline_file.h"
#include "features/steps.h"
#include "fuzz_util.h"
#include "infer/http/steps.h"
#include "infer/plugin/score_step.h"
#include "io/tfrecord.h"

namespace {

constexpr char kTarget[] = "pipeline_file";
using dlprep::fuzz::Fail;

std::string BaseDir() {
  for (arrow::Status st : {dlprep::features::RegisterFeatureSteps(),
                           dlprep::http::RegisterHttpSteps(),
                           dlprep::infer::RegisterScoreStep()}) {
    if (!st.ok()) Fail(kTarget, st.ToString());
  }
  const std::filesystem::path dir = dlprep::fuzz::ScratchDir() / "pipeline";
  std::filesystem::create_directories(dir);
  dlprep::fuzz::WriteFile(dir / "data.csv", "a,b\n1,x\n2,y\n");
  dlprep::fuzz::WriteFile(dir / "data.jsonl", "{\"a\": 1, \"b\": \"x\"}\n");
  auto writer = dlprep::io::RecordWriter::Open((dir / "data.tfrecord").string(),
                                               dlprep::TfRecordCompression::kNone);
  if (!writer.ok()) Fail(kTarget, writer.status().ToString());
  // Example{id: [7], name: ["row"]}
  arrow::Status st = (*writer)->Write(std::string_view(
      "\x0a\x1e\x0a\x0b\x0a\x02\x69\x64\x12\x05\x1a\x03\x0a\x01\x07\x0a\x0f\x0a\x04\x6e\x61"
      "\x6d\x65\x12\x07\x0a\x05\x0a\x03\x72\x6f\x77",
      32));
  st &= (*writer)->Close();
  if (!st.ok()) Fail(kTarget, st.ToString());
  return dir.string();
}

// Whether `text` may name a path outside the base folder.
bool MayLeaveBaseDir(const std::string& text) {
  for (const char* bad : {"..", "**", "\\"}) {
    if (text.find(bad) != std::string::npos) return true;
  }
  for (size_t i = text.find('/'); i != std::string::npos; i = text.find('/', i + 1)) {
    size_t j = i;
    while (j > 0 && std::string_view(" \t\r\n").find(text[j - 1]) != std::string_view::npos) --j;
    // '/' first in a scalar: first in the text, after a space (also after a tag or an
    // anchor), or after a flow indicator or quote ("url: http://..." is fine).
    if (j == 0 || j < i || std::string_view("[{,'\"&|>").find(text[j - 1]) != std::string_view::npos) {
      return true;
    }
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string base = BaseDir();
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (MayLeaveBaseDir(text)) return 0;
  auto loaded = dlprep::exec::ParsePipelineYaml(text, "fuzz.yaml", base);
  dlprep::fuzz::Note(kTarget, loaded.status());
  if (!loaded.ok()) return 0;
  (void)loaded->ToPipeline();
  auto again = dlprep::exec::ParsePipelineYaml(loaded->normalized_yaml, "normalized.yaml", base);
  if (!again.ok()) {
    Fail(kTarget, "the normalized pipeline does not load again: " + again.status().ToString() +
                      "\n--- normalized:\n" + loaded->normalized_yaml);
  }
  return 0;
}
