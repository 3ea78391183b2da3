// The backend boundary: a backend compiles the model graph (model.h) for one
// input shape into an Executor, which owns its primitives, buffers and memory
// layouts, or into a TrainingExecutor, which owns the training state as well.
// Callers only pass plain host arrays in and out, so the model, trainer and
// CLI never see oneDNN or CUDA.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "unetind/loss.h"
#include "unetind/model.h"
#include "unetind/optimizer.h"
#include "unetind/tensor.h"

namespace unetind {

class Communicator;  // data_parallel.h

// TF32: fp32 tensors, convolutions allowed to use TF32 tensor cores (CUDA;
// the CPU backend computes it as fp32). INT8: inference only, CPU only, with
// the activation ranges of a calibration (ExecConfig::int8_ranges; the
// scheme is in docs/performance.md).
enum class Precision { F32, TF32, BF16, INT8 };
std::string to_string(Precision p);  // "fp32" | "tf32" | "bf16" | "int8"
Precision parse_precision(const std::string& s);

// How convolutions are computed. Auto: the fastest the backend has; on an
// AVX-512 CPU that is Winograd F(4x4, 3x3) for the 3x3 convolutions in fp32,
// forward and backward (1.5x faster inference on AVX-512; logits within 1e-5
// of direct, relative to the largest), direct convolution everywhere else.
// Direct: direct convolution only, the closest to the reference's
// arithmetic.
enum class ConvAlgorithm { Auto, Direct };
std::string to_string(ConvAlgorithm a);  // "auto" | "direct"
ConvAlgorithm parse_conv_algorithm(const std::string& s);

// Host memory that several CPU executors take their activations from in
// turn (ExecConfig::activations), so that executors which never run at the
// same time need only as much as the largest of them: a Predictor's, one
// for each batch size it meets, or all the models' of a server, whose
// forward passes run on one thread. Executors that share one must run one
// at a time, and a run leaves nothing in it for the next: an executor that
// keeps activations between calls (training, between forward() and
// backward()) takes memory of its own.
class ActivationArena {
 public:
  ActivationArena() = default;
  ActivationArena(const ActivationArena&) = delete;
  ActivationArena& operator=(const ActivationArena&) = delete;

  // At least `bytes` (64-byte aligned); growing loses what it held, and
  // moves it, so an executor asks again before every run.
  void* reserve(size_t bytes);
  size_t bytes() const { return bytes_; }
  const void* data() const { return data_.get(); }

 private:
  struct Free {
    void operator()(void* p) const;
  };
  std::unique_ptr<void, Free> data_;
  size_t bytes_ = 0;
};

// H and W must be divisible by the graph's deepest pooling factor (16 for
// the model).
struct ExecConfig {
  int batch = 1;
  int height = kModelImageSize;
  int width = kModelImageSize;
  bool training = false;  // keep what backward() needs
  Precision precision = Precision::F32;
  ConvAlgorithm conv_algorithm = ConvAlgorithm::Auto;
  // INT8 only: for every graph node and each of its channels, the largest
  // |value| its fp32 output took on the calibration images (calibration.h);
  // each channel is quantised to its range.
  std::vector<std::vector<float>> int8_ranges = {};
  // Inference only, where the backend shares_activations(): the arena to
  // take activations from instead of memory of the executor's own.
  std::shared_ptr<ActivationArena> activations = nullptr;
};

// Throws an Error, prefixed by `who`, where `config`'s batch is below 1 or
// its size is not a positive multiple of the graph's deepest pooling factor.
void check_exec_shape(const Graph& graph, const ExecConfig& config, const std::string& who);

// At least the bytes an executor of `config` needs for its activations,
// whatever the backend: for inference the largest node's output together
// with its inputs, for training every node's output (backward needs them)
// and one gradient as large as the largest. Computed in double, so that no
// size overflows it.
double activation_bytes_lower_bound(const Graph& graph, const ExecConfig& config);

// The memory this process may use, in bytes: the machine's physical memory,
// or less where an address-space or data-size limit (ulimit -v, -d) or the
// cgroup's memory.max says so.
double usable_memory_bytes();

// Throws an Error when `bytes` is more than usable_memory_bytes(), before
// anything is allocated: "<what> needs at least X GB, but this process may
// use Y GB".
void check_fits_in_memory(double bytes, const std::string& what);

// Throws an Error naming the image where one of `batch` outputs of
// `per_image` values each is not finite: the weights are so large that
// float32 arithmetic overflowed. Whether such an overflow ends as NaN or as
// an infinite logit depends on the ISA (AVX2's ReLU turns NaN into 0,
// AVX-512's keeps it), so executors check the logits before their sigmoid,
// which would turn an infinite one into a plausible 1.
void check_outputs_finite(const float* out, size_t per_image, int batch);

class Executor {
 public:
  virtual ~Executor() = default;

  // Parameters in Parameters order, HWIO kernels. Called once for inference,
  // after every update for training.
  virtual void set_parameters(const std::vector<NamedTensor>& params) = 0;

  // input: batch x H x W x C (NHWC; C = 1 for the model, scaled to [-1, 1]);
  // out: the output node's batch x H' x W' x C' (for the model: batch x H x W
  // logits), or its sigmoid when `probabilities` is set.
  virtual void forward(const float* input, float* out, bool probabilities) = 0;

  // Training executors only, after forward(): d(loss)/d(output) in, the
  // gradient of every parameter out (same order and shapes as the parameters;
  // `grads` is resized as needed).
  virtual void backward(const float* dlogits, std::vector<Tensor>& grads) = 0;

  virtual const ExecConfig& config() const = 0;
};

// What a training step computes besides the network (SPEC.md section 2):
// the loss, weight decay and centred RMSProp.
struct TrainingConfig {
  LossKind loss = LossKind::Adaptive;
  double weight_decay = 1e-5;
  RmsPropConfig rmsprop;
};

struct StepResult {
  double loss = 0;            // reconstruction + l2
  double reconstruction = 0;
  double l2 = 0;
  LossKind branch = LossKind::Adaptive;
};

// Training with its state in the backend, in llm.c's few verbs: load the
// parameters and the optimiser's state once; step() runs forward, the loss,
// backward, weight decay and the RMSProp update where the backend computes
// (on a GPU: without the host in between) and returns only the loss and its
// parts; reading the state back is explicit, for checkpoints, evaluation and
// the weights file.
class TrainingExecutor {
 public:
  virtual ~TrainingExecutor() = default;

  // params: Parameters order, HWIO kernels. optimizer_state: RmsProp::state's
  // tensors (TF1's slot names), or empty for TF1's initial slots. Errors name
  // the tensor that does not fit.
  virtual void load(const std::vector<NamedTensor>& params, const std::vector<NamedTensor>& optimizer_state) = 0;

  // images, masks: batch x H x W (the executor's shape). One update at
  // learning rate `lr`. With a process group of several ranks, the
  // gradients and the reconstruction loss are averaged over the ranks before
  // weight decay and the update (data_parallel.h). A loss that is not finite
  // (on any rank) throws an Error before anything is updated.
  virtual StepResult step(const float* images, const float* masks, float lr) = 0;

  // The state as load() takes it: copies, and on a GPU a transfer.
  virtual std::vector<NamedTensor> parameters() const = 0;
  virtual std::vector<NamedTensor> optimizer_state() const = 0;

  virtual const ExecConfig& config() const = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;  // "cpu", "cuda:0"
  // Whether its inference executors take ExecConfig::activations (the CPU's
  // do; a CUDA executor keeps its activations in device memory of its own).
  virtual bool shares_activations() const { return false; }
  virtual std::unique_ptr<Executor> compile(const Graph& graph, const ExecConfig& config) = 0;
  // `config.training` is implied. `group` (null: this process alone) must
  // outlive the executor.
  virtual std::unique_ptr<TrainingExecutor> compile_training(const Graph& graph, const ExecConfig& config,
                                                             const TrainingConfig& training, Communicator* group) = 0;
};

// "cpu" (and, when built with CUDA, "cuda" / "cuda:N"). A name that is not a
// device of this build and machine gives an Error that lists the available
// devices.
std::unique_ptr<Backend> make_backend(const std::string& device, int threads = 0);
// The same check without making the backend.
void check_device(const std::string& device);
// The devices usable now: "cpu", then "cuda:0", ... for each visible GPU.
std::vector<std::string> available_backends();
// The backends this build has, each with the versions of its libraries:
// "cpu (oneDNN 2.6.3)", "cuda (CUDA runtime 12.4, cuDNN 9.1.0, NCCL 2.21.5)".
std::vector<std::string> compiled_backends();

// What a user should know before running `precision` on `device`, or "":
// int8 on a CPU without VNNI runs oneDNN's slower non-VNNI kernels.
std::string precision_note(const std::string& device, Precision precision);

// Compute threads for CPU backends; 0 = one per physical core available.
// More than available_cpus(), or a negative count, is an Error: more OpenMP
// threads than cores only wait for each other at every barrier.
void set_cpu_threads(int threads);
int cpu_threads();
// The CPUs this process may run on (its affinity mask).
int available_cpus();

}  // namespace unetind
