// The TorchScript plugin loader and the `score` pipeline step (see score_step.h).
#include "infer/plugin/score_step.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "exec/pipeline_file.h"

namespace dlprep::infer {

namespace {

#ifndef DLPREP_HAVE_TORCH
constexpr const char* kNoTorch =
    "this dlprep was built without the TorchScript backend (libtorch was not found "
    "when CMake configured the build, or -DDLPREP_WITH_TORCH=OFF); install libtorch "
    "(Debian: apt-get install libtorch-dev) and rebuild with -DDLPREP_WITH_TORCH=ON";

#endif

}  // namespace

// The backend's function table, loading the plugin on the first call. Thread-safe.
arrow::Result<const TorchBackendApi*> LoadTorchBackend() {
#ifndef DLPREP_HAVE_TORCH
  return arrow::Status::NotImplemented(kNoTorch);
#else
  static std::mutex mu;
  static const TorchBackendApi* api = nullptr;
  std::lock_guard<std::mutex> lock(mu);
  if (api != nullptr) return api;
  namespace fs = std::filesystem;
  std::vector<std::string> candidates;
  std::error_code ec;
  if (const char* env = std::getenv("DLPREP_TORCH_BACKEND"); env != nullptr && *env) {
    candidates.push_back(env);  // set: the only place looked at
  } else {
    fs::path exe_dir = fs::read_symlink("/proc/self/exe", ec).parent_path();
    candidates.push_back((exe_dir / "libdlprep_torch.so").string());
    candidates.push_back((exe_dir / ".." / "lib" / "libdlprep_torch.so").string());
    Dl_info info;
    if (dladdr(reinterpret_cast<void*>(&LoadTorchBackend), &info) != 0 &&
        info.dli_fname != nullptr) {
      candidates.push_back(
          (fs::path(info.dli_fname).parent_path() / "libdlprep_torch.so").string());
    }
  }
  std::string looked;
  for (const auto& path : candidates) {
    if (!fs::exists(path, ec)) {
      looked += (looked.empty() ? "" : ", ") + path;
      continue;
    }
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      return arrow::Status::IOError("the TorchScript backend '", path,
                                    "' could not be loaded: ", dlerror());
    }
    using Entry = const TorchBackendApi* (*)();
    auto entry = reinterpret_cast<Entry>(dlsym(handle, "dlprep_torch_backend_v1"));
    if (entry == nullptr) {
      return arrow::Status::IOError("'", path, "' is not a dlprep TorchScript backend (no "
                                    "dlprep_torch_backend_v1)");
    }
    api = entry();
    return api;
  }
  return arrow::Status::IOError(
      "the TorchScript backend libdlprep_torch.so was not found (looked for ", looked,
      "); it is built, beside the dlprep binary and into the Python package's lib/, when "
      "libtorch is present at build time (Debian: apt-get install libtorch-dev), or set "
      "DLPREP_TORCH_BACKEND to its path");
#endif
}

arrow::Status RegisterScoreStep() {
  // The plugin loads when a pipeline file uses the step, not when it is registered.
  return exec::RegisterStep("score", [](exec::ConfigNode* o) -> arrow::Result<PipelineStep> {
    auto backend = LoadTorchBackend();
    if (!backend.ok()) {
      return o->OptionError("model", "step 'score' is unavailable: " +
                                         backend.status().message());
    }
    const TorchBackendApi& api = **backend;
    ScoreOptions s;
    ARROW_ASSIGN_OR_RAISE(std::string model, o->GetString("model"));
    s.model = o->ResolvePath(model);
    ARROW_ASSIGN_OR_RAISE(s.columns, o->GetStringList("columns"));
    ARROW_ASSIGN_OR_RAISE(auto shapes, o->GetStringList("shapes", {}));
    for (const auto& text : shapes) {
      auto shape = api.parse_shape(text, "shapes");
      if (!shape.ok()) return o->OptionError("shapes", shape.status().message());
      s.shapes.push_back(*shape);
    }
    ARROW_ASSIGN_OR_RAISE(s.batch_size, o->GetInt("batch_size", 256));
    ARROW_ASSIGN_OR_RAISE(s.argmax, o->GetBool("argmax", false));
    ARROW_ASSIGN_OR_RAISE(s.softmax, o->GetBool("softmax", false));
    ARROW_ASSIGN_OR_RAISE(s.output_names, o->GetStringList("output_names", {}));
    if (o->Has("keep")) {
      s.keep_all = false;
      ARROW_ASSIGN_OR_RAISE(s.keep, o->GetStringList("keep"));
    }
    ARROW_ASSIGN_OR_RAISE(s.device, o->GetString("device", "cpu"));
    ARROW_ASSIGN_OR_RAISE(int64_t threads, o->GetInt("threads_per_worker", 0));
    s.threads_per_worker = static_cast<int>(threads);
    auto factory = api.make_score_factory(s);
    if (!factory.ok()) return o->OptionError("model", factory.status().message());
    PipelineStep step;
    step.kind = PipelineStep::Kind::kStateful;
    step.stateful = *std::move(factory);
    return step;
  });
}

}  // namespace dlprep::infer
