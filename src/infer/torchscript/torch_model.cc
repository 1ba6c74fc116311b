// The only file that includes libtorch headers (slow to compile).
#include "infer/torchscript/torch_model.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/version.h>

namespace dlprep::infer {

namespace fs = std::filesystem;

struct TorchModel::Impl {
  torch::jit::Module module;
  torch::Device device{torch::kCPU};
};

namespace {

// libtorch messages carry a C++ backtrace or a TorchScript traceback; the last line
// that says what went wrong is what a user needs.
std::string Short(const std::string& what) {
  std::vector<std::string> lines;
  std::stringstream ss(what);
  std::string line;
  while (std::getline(ss, line)) {
    if (line.find_first_not_of(" \t") != std::string::npos) lines.push_back(line);
  }
  if (lines.empty()) return what;
  // A TorchScript traceback ends with "RuntimeError: <message>" (or another error
  // type); plain errors put the message first and a backtrace after it.
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    if (it->find("Error: ") != std::string::npos) {
      return it->substr(it->find_first_not_of(" \t"));
    }
  }
  for (const auto& l : lines) {
    if (l.rfind("Exception raised from", 0) == 0) break;
    return l;
  }
  return lines.front();
}

std::string Message(const std::exception& e) {
  if (auto* c10e = dynamic_cast<const c10::Error*>(&e)) {
    return Short(c10e->what_without_backtrace());
  }
  return Short(e.what());
}

arrow::Result<torch::Device> ParseDevice(const std::string& device) {
  if (device == "cpu") return torch::Device(torch::kCPU);
  if (device == "cuda" || device.rfind("cuda:", 0) == 0) {
    ARROW_RETURN_NOT_OK(CheckTorchDevice(device));
    return torch::Device(device);
  }
  return arrow::Status::Invalid("option --device: '", device,
                                "' is not a device; expected cpu, cuda or cuda:N");
}

bool LooksLikeZip(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {0, 0, 0, 0};
  in.read(magic, 4);
  return in.gcount() == 4 && magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 &&
         magic[3] == 4;
}

}  // namespace

TorchModel::TorchModel() : impl_(std::make_unique<Impl>()) {}
TorchModel::~TorchModel() = default;

arrow::Result<std::unique_ptr<TorchModel>> TorchModel::Load(const std::string& path,
                                                            const std::string& device) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    return arrow::Status::IOError("model file '", path, "' does not exist");
  }
  if (fs::is_directory(path, ec)) {
    return arrow::Status::IOError("model path '", path,
                                  "' is a folder; expected a TorchScript file (.pt)");
  }
  ARROW_ASSIGN_OR_RAISE(torch::Device dev, ParseDevice(device));
  std::unique_ptr<TorchModel> model(new TorchModel());
  model->path_ = path;
  model->impl_->device = dev;
  if (!LooksLikeZip(path)) {
    return arrow::Status::Invalid(
        "model file '", path,
        "' is not a TorchScript file (not a zip archive); write one with "
        "torch.jit.script(model).save(path) or torch.jit.trace(model, example).save(path)");
  }
  try {
    model->impl_->module = torch::jit::load(path, dev);
    model->impl_->module.eval();
  } catch (const std::exception& e) {
    std::string msg = Message(e);
    std::string hint;
    if (msg.find("constants.pkl") != std::string::npos) {
      hint = " (it looks like a torch.save() checkpoint, not TorchScript; export with "
             "torch.jit.script(model).save(path))";
    } else if (msg.find("version") != std::string::npos) {
      hint = " (written by a PyTorch newer than this libtorch " + TorchVersion() + ")";
    } else if (msg.find("Unknown builtin op") != std::string::npos ||
               msg.find("Unknown type name") != std::string::npos) {
      hint = " (an operator or type this libtorch " + TorchVersion() +
             " does not have: the model was probably exported by a newer PyTorch; "
             "export it with PyTorch " + TorchVersion() + " or build dlprep against a "
             "newer libtorch)";
    }
    return arrow::Status::Invalid("model file '", path,
                                  "' could not be loaded as TorchScript: ", msg, hint);
  }
  auto forward = model->impl_->module.find_method("forward");
  if (!forward) {
    return arrow::Status::Invalid("model file '", path, "' has no forward() method");
  }
  const auto& args = forward->function().getSchema().arguments();
  for (size_t i = 1; i < args.size(); ++i) model->input_names_.push_back(args[i].name());
  return model;
}

void TorchModel::SetThreads(int threads) {
  // The first parallel region of a thread resets its thread count from the global one
  // (at::init_num_threads); run that first so our per-thread setting sticks.
  (void)at::get_num_threads();
  at::set_num_threads(std::max(1, threads));
}

arrow::Result<std::vector<OutputTensor>> TorchModel::Forward(
    const std::vector<TensorView>& inputs, bool softmax) {
  if (inputs.empty()) return arrow::Status::Invalid("no inputs");
  const int64_t batch = inputs[0].shape.empty() ? 0 : inputs[0].shape[0];
  std::vector<OutputTensor> outputs;
  try {
    c10::InferenceMode guard;
    std::vector<c10::IValue> args;
    args.reserve(inputs.size());
    for (const auto& in : inputs) {
      auto t = torch::from_blob(const_cast<float*>(in.data), in.shape, torch::kFloat32);
      if (impl_->device != torch::Device(torch::kCPU)) t = t.to(impl_->device);
      args.emplace_back(std::move(t));
    }
    c10::IValue result = impl_->module.forward(std::move(args));
    std::vector<std::pair<std::string, torch::Tensor>> tensors;
    auto not_tensor = [&](const std::string& what) {
      return arrow::Status::Invalid("model '", path_, "' returned ", what,
                                    "; expected a tensor, a tuple of tensors or a dict "
                                    "of str -> tensor");
    };
    if (result.isTensor()) {
      tensors.emplace_back("", result.toTensor());
    } else if (result.isTuple()) {
      for (const auto& e : result.toTupleRef().elements()) {
        if (!e.isTensor()) return not_tensor("a tuple holding a " + e.tagKind());
        tensors.emplace_back("", e.toTensor());
      }
    } else if (result.isTensorList()) {
      for (const auto& t : result.toTensorVector()) tensors.emplace_back("", t);
    } else if (result.isGenericDict()) {
      for (const auto& kv : result.toGenericDict()) {
        if (!kv.key().isString() || !kv.value().isTensor()) {
          return not_tensor("a dict of " + kv.key().tagKind() + " -> " +
                            kv.value().tagKind());
        }
        tensors.emplace_back(kv.key().toStringRef(), kv.value().toTensor());
      }
    } else {
      return not_tensor("a " + result.tagKind());
    }
    for (size_t k = 0; k < tensors.size(); ++k) {
      torch::Tensor t = tensors[k].second;
      if (t.dim() == 0 || t.size(0) != batch) {
        return arrow::Status::Invalid(
            "model '", path_, "' output ", k, " has shape ", c10::str(t.sizes()),
            " for a batch of ", batch, " rows; expected the batch dimension first");
      }
      t = t.to(torch::kCPU, torch::kFloat32);
      // Over each row's last dimension; a [B] output has none and is left as is.
      if (softmax && t.dim() > 1) t = torch::softmax(t, -1);
      t = t.contiguous();
      OutputTensor out;
      out.name = tensors[k].first;
      out.shape.assign(t.sizes().begin(), t.sizes().end());
      const float* p = t.data_ptr<float>();
      out.values.assign(p, p + t.numel());
      outputs.push_back(std::move(out));
    }
  } catch (const std::exception& e) {
    return arrow::Status::Invalid("model '", path_, "' failed: ", Message(e));
  }
  return outputs;
}

arrow::Status CheckTorchDevice(const std::string& device) {
  if (device == "cpu") return arrow::Status::OK();
  if (device != "cuda" && device.rfind("cuda:", 0) != 0) {
    return arrow::Status::Invalid("option --device: '", device,
                                  "' is not a device; expected cpu, cuda or cuda:N");
  }
  if (!TorchHasCuda()) {
    return arrow::Status::Invalid(
        "--device ", device, " is unavailable: this dlprep was built against a CPU-only "
        "libtorch ", TorchVersion(), "; rebuild with a CUDA-enabled libtorch "
        "(cmake -DTorch_DIR=<CUDA libtorch>/share/cmake/Torch -DDLPREP_TORCH_CUDA=ON)");
  }
  int64_t n = 0;
  try {
    n = static_cast<int64_t>(torch::cuda::device_count());
  } catch (const std::exception& e) {
    return arrow::Status::Invalid("--device ", device, " is unavailable: ", Message(e));
  }
  if (n == 0) {
    return arrow::Status::Invalid("--device ", device,
                                  " is unavailable: no CUDA device is visible on this "
                                  "machine (driver missing or CUDA_VISIBLE_DEVICES empty)");
  }
  if (device.size() > 5) {
    int64_t index = std::atoll(device.c_str() + 5);
    if (index < 0 || index >= n) {
      return arrow::Status::Invalid("--device ", device, ": only ", n,
                                    " CUDA device(s) are visible");
    }
  }
  return arrow::Status::OK();
}

std::string TorchVersion() { return TORCH_VERSION; }

bool TorchHasCuda() {
  // Set by CMake when the libtorch found was built with CUDA (CAFFE2_USE_CUDA).
#ifdef DLPREP_TORCH_HAS_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace dlprep::infer
