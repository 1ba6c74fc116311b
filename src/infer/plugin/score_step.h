#pragma once
// The TorchScript backend as the CLI and the Python module see it: a plugin,
// libdlprep_torch.so, dlopen()ed on first use (loading Debian's libtorch takes most of a
// second, which no other command should pay), and the `score` pipeline step over it.

#include <arrow/result.h>
#include <arrow/status.h>

#include "infer/torchscript/score.h"

namespace dlprep::infer {

/// The backend's function table, loading the plugin on the first call. It is looked for
/// in $DLPREP_TORCH_BACKEND, beside the running executable, in ../lib from it, and
/// beside the shared object this code is linked into (libdlprep.so in the Python
/// package). NotImplemented when the build has no TorchScript backend; IOError naming
/// the paths when the plugin is missing or cannot be loaded. Thread-safe.
arrow::Result<const TorchBackendApi*> LoadTorchBackend();

/// Registers `score` as a pipeline step (model, columns, shapes, batch_size, argmax,
/// softmax, output_names, keep, device, threads_per_worker). The plugin loads when a
/// pipeline uses the step, not here. AlreadyExists on a second call.
arrow::Status RegisterScoreStep();

}  // namespace dlprep::infer
