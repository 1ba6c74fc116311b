#pragma once
// A TorchScript model behind an interface without libtorch headers: libtorch's headers
// take long to compile, so only torch_model.cc includes them.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>

namespace dlprep::infer {

/// A float32 tensor in host memory that the caller owns: `data` holds prod(shape)
/// values in row-major order and must stay valid for the call it is passed to.
struct TensorView {
  const float* data = nullptr;
  std::vector<int64_t> shape;
};

/// One output of a forward pass, copied to host memory as float32.
struct OutputTensor {
  /// Dict outputs: the key; tensor and tuple outputs: empty.
  std::string name;
  /// Full shape, the batch dimension first.
  std::vector<int64_t> shape;
  std::vector<float> values;
};

/// A loaded TorchScript module (torch::jit::load) in eval mode on one device.
///
/// Not thread-safe: one instance per worker (each worker of `score` loads its own).
/// Errors from libtorch are caught here and returned as Status (Invalid for a model that
/// does not fit its input, IOError for a file that cannot be read).
class TorchModel {
 public:
  ~TorchModel();

  /// Loads `path` onto `device` ("cpu" or "cuda"; see CheckTorchDevice). IOError when
  /// the file does not exist; Invalid, saying what the file looks like, when it is not
  /// TorchScript.
  static arrow::Result<std::unique_ptr<TorchModel>> Load(const std::string& path,
                                                         const std::string& device);

  /// Names of forward()'s arguments after `self`.
  const std::vector<std::string>& input_names() const { return input_names_; }

  /// Sets the intra-op threads of the calling thread (libtorch's OpenMP pool is per
  /// calling thread, so each worker sets its own).
  static void SetThreads(int threads);

  /// Runs forward() under InferenceMode on `inputs` (one per argument, each with the
  /// batch dimension first). The result is a tensor, a tuple of tensors or a dict of
  /// str -> tensor; anything else is Invalid. `softmax` applies softmax over the last
  /// dimension of each output of rank >= 2 (a [batch] output is left as is). Every output must have the batch dimension first.
  arrow::Result<std::vector<OutputTensor>> Forward(const std::vector<TensorView>& inputs,
                                                   bool softmax);

 private:
  TorchModel();
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
  std::vector<std::string> input_names_;
};

/// OK when tensors can be placed on `device` in this build and on this machine; else
/// Invalid saying why (an unknown device, a CPU-only libtorch, no GPU visible).
arrow::Status CheckTorchDevice(const std::string& device);

/// The libtorch version this backend was built against ("1.13.1").
std::string TorchVersion();

/// Whether this backend's libtorch was built with CUDA.
bool TorchHasCuda();

}  // namespace dlprep::infer
