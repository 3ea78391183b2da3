// The CUDA backend: its devices, and the executor of backend.h's Executor
// interface (parameters in, logits or probabilities out, gradients out) over
// a CudaNet.
#include "backend/cuda/cuda_executor.h"

#ifdef UNETIND_HAVE_NCCL
#include <nccl.h>
#endif

#include <algorithm>

#include "backend/cuda/cuda_net.h"
#include "backend/cuda/cuda_training.h"

namespace unetind::cuda {

namespace {

class CudaExecutor final : public Executor {
 public:
  CudaExecutor(const Graph& graph, const ExecConfig& config, int device) : net_(graph, config, device) {}

  void set_parameters(const std::vector<NamedTensor>& params) override {
    net_.plan().check_parameters(params);
    std::vector<const Tensor*> tensors;
    for (const NamedTensor& p : params) tensors.push_back(&p.tensor);
    net_.upload(tensors, net_.parameters());
  }

  void forward(const float* input, float* out, bool probabilities) override {
    const Context& ctx = net_.ctx();
    UNETIND_CUDA_CHECK(cudaSetDevice(ctx.device));
    UNETIND_CUDA_CHECK(cudaMemcpyAsync(net_.input(), input, net_.input_count() * sizeof(float),
                                       cudaMemcpyHostToDevice, ctx.stream));
    net_.forward();
    const float* result = net_.logits();
    if (probabilities) {
      sigmoid_forward(ctx, result, net_.probabilities(), net_.output_count());
      result = net_.probabilities();
    }
    UNETIND_CUDA_CHECK(
        cudaMemcpyAsync(out, result, net_.output_count() * sizeof(float), cudaMemcpyDeviceToHost, ctx.stream));
    UNETIND_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  }

  void backward(const float* dlogits, std::vector<Tensor>& grads) override {
    if (!config().training) throw Error("cuda backend: backward() on an executor compiled for inference");
    const Context& ctx = net_.ctx();
    UNETIND_CUDA_CHECK(cudaSetDevice(ctx.device));
    UNETIND_CUDA_CHECK(cudaMemcpyAsync(net_.logits_gradient(), dlogits, net_.output_count() * sizeof(float),
                                       cudaMemcpyHostToDevice, ctx.stream));
    net_.backward();
    // Unreached convolutions' gradients stay as the zeroed arena has them.
    grads = net_.download(net_.gradients());
  }

  const ExecConfig& config() const override { return net_.plan().config(); }

 private:
  CudaNet net_;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device) {}
  std::string name() const override { return "cuda:" + std::to_string(device_); }
  std::unique_ptr<Executor> compile(const Graph& graph, const ExecConfig& config) override {
    return std::make_unique<CudaExecutor>(graph, config, device_);
  }
  std::unique_ptr<TrainingExecutor> compile_training(const Graph& graph, const ExecConfig& config,
                                                     const TrainingConfig& training, Communicator* group) override {
    return make_cuda_training_executor(graph, config, training, group, device_);
  }

 private:
  int device_;
};

}  // namespace

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: not an error for a caller that only lists devices
    return 0;
  }
  return count;
}

std::string library_versions() {
  auto dotted = [](int major, int minor) { return std::to_string(major) + "." + std::to_string(minor); };
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);  // 0 where no driver is installed
  std::string out = "CUDA runtime " + dotted(runtime / 1000, runtime % 1000 / 10);
  out += driver > 0 ? ", driver " + dotted(driver / 1000, driver % 1000 / 10) : ", no driver";
  int major = 0, minor = 0, patch = 0;
  cudnnGetProperty(MAJOR_VERSION, &major);
  cudnnGetProperty(MINOR_VERSION, &minor);
  cudnnGetProperty(PATCH_LEVEL, &patch);
  out += ", cuDNN " + dotted(major, minor) + "." + std::to_string(patch);
#ifdef UNETIND_HAVE_NCCL
  int nccl = 0;
  ncclGetVersion(&nccl);
  out += ", NCCL " + dotted(nccl / 10000, nccl % 10000 / 100) + "." + std::to_string(nccl % 100);
#else
  out += ", no NCCL";
#endif
  return out;
}

std::unique_ptr<Backend> make_cuda_backend(const std::string& device) {
  int index = 0;
  if (device != "cuda") {
    const std::string prefix = "cuda:";
    const std::string digits = device.rfind(prefix, 0) == 0 ? device.substr(prefix.size()) : "";
    if (digits.empty() || digits.size() > 4 ||
        !std::all_of(digits.begin(), digits.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
      throw Error("unknown device '" + device + "' (CUDA devices are named cuda or cuda:N)");
    index = std::stoi(digits);
  }
  const int count = device_count();
  if (count == 0) throw Error("device '" + device + "': no CUDA device was found");
  if (index >= count)
    throw Error("device '" + device + "': this machine has " + std::to_string(count) + " CUDA device(s), cuda:0 to cuda:" +
                std::to_string(count - 1));
  return std::make_unique<CudaBackend>(index);
}

}  // namespace unetind::cuda
