// Backend registry: devices by name, what the build has, and the CPU thread
// setting.
#include <dnnl.h>
#include <omp.h>

#include <algorithm>

#include "backend/cpu/cpu_executor.h"
#ifdef UNETIND_HAVE_CUDA
#include "backend/cuda/cuda_executor.h"
#endif
#include "train/host_training.h"
#include "unetind/backend.h"
#include "unetind/error.h"

namespace unetind {

namespace {
class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  std::unique_ptr<Executor> compile(const Graph& graph, const ExecConfig& config) override {
    return cpu::compile_cpu(graph, config);
  }
  // Host memory is the CPU's: today's host code is its training executor.
  std::unique_ptr<TrainingExecutor> compile_training(const Graph& graph, const ExecConfig& config,
                                                     const TrainingConfig& training, Communicator* group) override {
    ExecConfig c = config;
    c.training = true;
    return make_host_training_executor(cpu::compile_cpu(graph, c), training, group);
  }
};

std::string device_list() {
  std::string names;
  for (const auto& b : available_backends()) names += (names.empty() ? "" : ", ") + b;
  return "available: " + names;
}
}  // namespace

std::string to_string(Precision p) {
  switch (p) {
    case Precision::TF32: return "tf32";
    case Precision::BF16: return "bf16";
    case Precision::F32: break;
  }
  return "fp32";
}

Precision parse_precision(const std::string& s) {
  if (s == "fp32") return Precision::F32;
  if (s == "tf32") return Precision::TF32;
  if (s == "bf16") return Precision::BF16;
  throw Error("unknown precision '" + s + "' (choose from fp32, tf32, bf16)");
}

void check_exec_shape(const Graph& graph, const ExecConfig& config, const std::string& who) {
  // Node scales are relative to the input's (1 for the model); every node's
  // size must come out whole.
  int divisor = 1;
  for (const Node& node : graph.nodes) divisor = std::max(divisor, node.scale / graph.nodes[0].scale);
  if (config.batch < 1 || config.height < divisor || config.width < divisor || config.height % divisor ||
      config.width % divisor)
    throw Error(who + ": input " + std::to_string(config.height) + "x" + std::to_string(config.width) +
                " must be a positive multiple of " + std::to_string(divisor) + " on both sides");
}

std::string to_string(ConvAlgorithm a) { return a == ConvAlgorithm::Direct ? "direct" : "auto"; }

ConvAlgorithm parse_conv_algorithm(const std::string& s) {
  if (s == "auto") return ConvAlgorithm::Auto;
  if (s == "direct") return ConvAlgorithm::Direct;
  throw Error("unknown convolution algorithm '" + s + "' (choose from auto, direct)");
}

std::vector<std::string> available_backends() {
  std::vector<std::string> names{"cpu"};
#ifdef UNETIND_HAVE_CUDA
  for (int i = 0, n = cuda::device_count(); i < n; ++i) names.push_back("cuda:" + std::to_string(i));
#endif
  return names;
}

std::vector<std::string> compiled_backends() {
  const dnnl_version_t* v = dnnl_version();
  std::vector<std::string> out{"cpu (oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
                               std::to_string(v->patch) + ")"};
#ifdef UNETIND_HAVE_CUDA
  out.push_back("cuda (" + cuda::library_versions() + ")");
#endif
  return out;
}

std::unique_ptr<Backend> make_backend(const std::string& device, int threads) {
  if (device == "cpu") {
    if (threads > 0) set_cpu_threads(threads);
    return std::make_unique<CpuBackend>();
  }
  try {
    if (device == "cuda" || device.starts_with("cuda:")) {
#ifdef UNETIND_HAVE_CUDA
      return cuda::make_cuda_backend(device);
#else
      throw Error("device '" + device +
                  "': this build has no CUDA backend (UNETIND_WITH_CUDA=OFF, or CMake found no CUDA toolkit and cuDNN)");
#endif
    }
    throw Error("unknown device '" + device + "'");
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (" + device_list() + ")");
  }
}

void check_device(const std::string& device) { make_backend(device); }

void set_cpu_threads(int threads) {
  if (threads > 0) omp_set_num_threads(threads);
}

int cpu_threads() { return omp_get_max_threads(); }

}  // namespace unetind
