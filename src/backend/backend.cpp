// Backend registry: devices by name, what the build has, and the CPU thread
// setting.
#include <dnnl.h>
#include <omp.h>
#include <sys/resource.h>
#include <unistd.h>
#include <xmmintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "backend/cpu/cpu_executor.h"
#include "backend/cpu/int8.h"
#ifdef UNETIND_HAVE_CUDA
#include "backend/cuda/cuda_executor.h"
#endif
#include "train/host_training.h"
#include "unetind/backend.h"
#include "unetind/error.h"

namespace unetind {

namespace {
// A CPU executor's activations live in this process's memory: checked
// before oneDNN allocates them.
std::unique_ptr<Executor> compile_cpu_checked(const Graph& graph, const ExecConfig& config) {
  check_fits_in_memory(activation_bytes_lower_bound(graph, config),
                       std::string("a ") + (config.training ? "training" : "inference") + " executor for batch " +
                           std::to_string(config.batch) + " at " + std::to_string(config.height) + "x" +
                           std::to_string(config.width));
  return cpu::compile_cpu(graph, config);
}

// Denormal floats (below 1.2e-38) take a microcode path on x86 that costs
// about a hundred times a normal operation. A trained model's backward pass
// is full of them (gradients that fade towards 0): fp32 training of a demo
// model at 512x512 ran 7x slower than from random weights (0.44 against
// 3.1 images/s). TensorFlow's CPU threads flush them (FTZ and DAZ), and so
// does this, for the compute of one call: in the calling thread, restored
// after, and in the OpenMP threads that oneDNN runs on, which keep it.
class FlushDenormals {
 public:
  FlushDenormals() : saved_(_mm_getcsr()) {
#pragma omp parallel
    _mm_setcsr(_mm_getcsr() | kFlushToZero | kDenormalsAreZero);
  }
  ~FlushDenormals() { _mm_setcsr(saved_); }
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  static constexpr unsigned kFlushToZero = 0x8000, kDenormalsAreZero = 0x0040;  // MXCSR bits 15 and 6
  unsigned saved_;
};

// OpenMP's thread count is a per-thread setting: an executor made in one
// thread (a server loading its models) and run in another (its batching
// worker) would otherwise run on every core whatever --threads says. So
// each call sets it in the thread that makes it, and flushes denormals there.
class ThreadCountExecutor final : public Executor {
 public:
  ThreadCountExecutor(std::unique_ptr<Executor> inner, int threads) : inner_(std::move(inner)), threads_(threads) {}
  void set_parameters(const std::vector<NamedTensor>& params) override {
    set_cpu_threads(threads_);
    FlushDenormals flushed;
    inner_->set_parameters(params);
  }
  void forward(const float* input, float* out, bool probabilities) override {
    set_cpu_threads(threads_);
    FlushDenormals flushed;
    inner_->forward(input, out, probabilities);
  }
  void backward(const float* dlogits, std::vector<Tensor>& grads) override {
    set_cpu_threads(threads_);
    FlushDenormals flushed;
    inner_->backward(dlogits, grads);
  }
  const ExecConfig& config() const override { return inner_->config(); }

 private:
  std::unique_ptr<Executor> inner_;
  int threads_;
};

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads) : threads_(threads) {}
  std::string name() const override { return "cpu"; }
  bool shares_activations() const override { return true; }
  std::unique_ptr<Executor> compile(const Graph& graph, const ExecConfig& config) override {
    set_cpu_threads(threads_);  // primitives are laid out for the threads they will run on
    return std::make_unique<ThreadCountExecutor>(compile_cpu_checked(graph, config), threads_);
  }
  // Host memory is the CPU's: today's host code is its training executor.
  std::unique_ptr<TrainingExecutor> compile_training(const Graph& graph, const ExecConfig& config,
                                                     const TrainingConfig& training, Communicator* group) override {
    ExecConfig c = config;
    c.training = true;
    return make_host_training_executor(compile(graph, c), training, group);
  }

 private:
  int threads_;  // 0: OpenMP's default, one a core
};

std::string device_list() {
  std::string names;
  for (const auto& b : available_backends()) names += (names.empty() ? "" : ", ") + b;
  return "available: " + names;
}
}  // namespace

void* ActivationArena::reserve(size_t bytes) {
  if (bytes <= bytes_ && data_) return data_.get();
  constexpr size_t kAlignment = 64;  // as oneDNN aligns its own buffers
  const size_t rounded = (std::max<size_t>(bytes, 1) + kAlignment - 1) / kAlignment * kAlignment;
  // The old one stays until the new one exists: nothing is lost on failure,
  // and the new one is not touched yet, so both at once cost address space.
  std::unique_ptr<void, Free> grown(std::aligned_alloc(kAlignment, rounded));
  if (!grown) throw Error("cannot allocate " + std::to_string(rounded >> 20) + " MB for activations");
  data_ = std::move(grown);
  bytes_ = rounded;
  return data_.get();
}

void ActivationArena::Free::operator()(void* p) const { std::free(p); }

std::string to_string(Precision p) {
  switch (p) {
    case Precision::TF32: return "tf32";
    case Precision::BF16: return "bf16";
    case Precision::INT8: return "int8";
    case Precision::F32: break;
  }
  return "fp32";
}

Precision parse_precision(const std::string& s) {
  if (s == "fp32") return Precision::F32;
  if (s == "tf32") return Precision::TF32;
  if (s == "bf16") return Precision::BF16;
  if (s == "int8") return Precision::INT8;
  throw Error("unknown precision '" + s + "' (choose from fp32, tf32, bf16, int8)");
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

double activation_bytes_lower_bound(const Graph& graph, const ExecConfig& config) {
  const double element = config.precision == Precision::BF16 ? 2.0 : config.precision == Precision::INT8 ? 1.0 : 4.0;
  const int input_scale = graph.nodes.at(0).scale;
  auto bytes = [&](const Node& n) {
    const double side = static_cast<double>(n.scale) / input_scale;
    return config.batch * element * n.channels * (config.height / side) * (config.width / side);
  };
  double all = 0, largest = 0, largest_with_inputs = 0;
  for (const Node& n : graph.nodes) {
    double with_inputs = bytes(n);
    for (int i : n.inputs) with_inputs += bytes(graph.nodes.at(i));
    all += bytes(n);
    largest = std::max(largest, bytes(n));
    largest_with_inputs = std::max(largest_with_inputs, with_inputs);
  }
  return config.training ? all + largest : largest_with_inputs;
}

double usable_memory_bytes() {
  double bytes = static_cast<double>(::sysconf(_SC_PHYS_PAGES)) * static_cast<double>(::sysconf(_SC_PAGESIZE));
  for (int resource : {RLIMIT_AS, RLIMIT_DATA}) {
    rlimit limit{};
    if (::getrlimit(resource, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY)
      bytes = std::min(bytes, static_cast<double>(limit.rlim_cur));
  }
  // cgroup v2: "max" or a byte count.
  std::ifstream cgroup("/sys/fs/cgroup/memory.max");
  double cgroup_limit = 0;
  if (cgroup >> cgroup_limit && cgroup_limit > 0) bytes = std::min(bytes, cgroup_limit);
  return bytes;
}

void check_fits_in_memory(double bytes, const std::string& what) {
  const double usable = usable_memory_bytes();
  if (bytes <= usable) return;
  char text[160];
  std::snprintf(text, sizeof text, " needs at least %.3g GB of memory, but this process may use %.3g GB", bytes / 1e9,
                usable / 1e9);
  throw Error(what + text);
}

void check_outputs_finite(const float* out, size_t per_image, int batch) {
  const size_t n = per_image * static_cast<size_t>(batch);
  // On the bits, which the compiler vectorises (std::isfinite it does not):
  // a float is not finite where its exponent is all ones.
  uint32_t not_finite = 0;
  for (size_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, out + i, sizeof bits);
    not_finite |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  if (!not_finite) return;
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(out[i]))
      throw Error("the model's output is not finite (image " + std::to_string(i / per_image) +
                  " of the batch): its weights are so large that float32 arithmetic overflows");
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
    set_cpu_threads(threads);  // checked here; also the host code's (loss, optimiser) in this thread
    return std::make_unique<CpuBackend>(threads);
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

std::string precision_note(const std::string& device, Precision precision) {
  if (precision == Precision::INT8 && device == "cpu" && !cpu::cpu_has_vnni())
    return "this CPU has no VNNI (AVX512-VNNI or AVX-VNNI): int8 runs on oneDNN's int8 kernels without it, "
           "which are slower and may not beat bf16 or fp32";
  return "";
}

void set_cpu_threads(int threads) {
  if (threads < 0 || threads > available_cpus())
    throw Error("the compute thread count must be from 0 (one per core) to " + std::to_string(available_cpus()) +
                ", the CPUs this process may use, not " + std::to_string(threads));
  if (threads > 0) omp_set_num_threads(threads);
}

int cpu_threads() { return omp_get_max_threads(); }

int available_cpus() { return omp_get_num_procs(); }

}  // namespace unetind
