#pragma once
// The `score` operator: batch inference with a TorchScript model inside the engine.
// This header has no libtorch include, so the CLI and tests that include it compile fast;
// only torch_model.cc sees libtorch.

#include <cstdint>
#include <string>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>

#include "dlprep/operator.h"

namespace dlprep::infer {

/// What `score` does; the CLI flags and the pipeline-file step map onto these fields.
struct ScoreOptions {
  /// TorchScript file (torch.jit.script(m).save / torch.jit.trace(...).save).
  std::string model;
  /// Tensor input columns, one per argument of forward(), in order. Each is a list,
  /// large_list or fixed_size_list of float32 holding one tensor per row, row-major.
  std::vector<std::string> columns;
  /// Per-row shape of each column (without the batch dimension); empty, or one entry
  /// per column where an empty entry means "from the column's `dlprep.shape` field
  /// metadata, else the fixed_size_list size".
  std::vector<std::vector<int64_t>> shapes;
  /// Rows per forward() call. Small input batches are gathered up to it (across
  /// batches of one partition; output order is kept); a partition's last call may be
  /// smaller.
  int64_t batch_size = 256;
  /// Add `prediction` (int64): the index of the largest value of the first output.
  bool argmax = false;
  /// Apply softmax over the last dimension of every output of rank >= 2 (per row:
  /// outputs with a class dimension) before writing it and before --argmax.
  bool softmax = false;
  /// Names of the output columns, one per model output. Empty: `scores` for a single
  /// tensor, the keys of a dict, `scores_0`, `scores_1`, ... for a tuple.
  std::vector<std::string> output_names;
  /// Input columns passed through. keep_all: every column except the tensor columns.
  bool keep_all = true;
  std::vector<std::string> keep;
  /// "cpu", "cuda" or "cuda:N".
  std::string device = "cpu";
  /// Intra-op threads of each worker's model; 0: hardware threads / workers.
  int threads_per_worker = 0;
};

/// Parses a shape such as "101,64" (or "[101, 64]"); Invalid naming `option` otherwise.
arrow::Result<std::vector<int64_t>> ParseShape(const std::string& text,
                                               const std::string& option);

/// Checks `options`, checks the device, and loads the model once (so a missing file,
/// a file that is not TorchScript or an unavailable device fail here, before any
/// output exists), then returns the factory of `score` instances for
/// Pipeline::MapStateful.
///
/// Each instance loads its own copy of the model in Open() (once per worker). The
/// first OutputSchema() call runs the model on a dummy batch of two rows of the
/// declared shapes, so a model whose inputs do not fit fails while the pipeline is
/// planned, naming the column and shape. A row whose tensor has the wrong number of
/// values, or is null, is a per-row error (RowErrors) naming the column and the sizes.
/// Process() may hold rows back to fill a batch; Flush() scores them.
arrow::Result<StatefulOperatorFactory> MakeScoreFactory(const ScoreOptions& options);

/// "libtorch 1.13.0 (CPU only)" or "libtorch 2.4.0 (CUDA)".
std::string TorchBackendDescription();

/// The backend as the `dlprep` CLI sees it. libtorch (Debian's with its ~300 shared
/// libraries) takes most of a second to load, so the CLI does not link it: the backend
/// is also built as a plugin, libdlprep_torch.so, that `dlprep score` and the `score`
/// step dlopen() when they are used; this table is what the plugin exports (as
/// dlprep_torch_backend_v1()). Tests and benchmarks link the backend directly.
struct TorchBackendApi {
  arrow::Result<std::vector<int64_t>> (*parse_shape)(const std::string& text,
                                                     const std::string& option);
  arrow::Result<StatefulOperatorFactory> (*make_score_factory)(const ScoreOptions& options);
  std::string (*description)();
};

}  // namespace dlprep::infer

/// The plugin's entry point: the backend's function table (static storage).
extern "C" const dlprep::infer::TorchBackendApi* dlprep_torch_backend_v1();
