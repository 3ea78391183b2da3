// The model graph compiled for one input shape on one GPU, as the CPU
// backend's Net: forward steps in graph order, backward steps in the plan's
// order, each op's descriptors and algorithms chosen here and reused on every
// call. All activations, gradients and parameters live in one arena; the two
// executors (inference and gradients, cuda_executor.cpp; training with its
// state on the device, cuda_training.cpp) only move data in and out.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "backend/cuda/ops.h"
#include "backend/plan.h"

namespace unetind::cuda {

class CudaNet {
 public:
  CudaNet(const Graph& graph, const ExecConfig& config, int device);
  CudaNet(const CudaNet&) = delete;
  CudaNet& operator=(const CudaNet&) = delete;

  const ExecPlan& plan() const { return plan_; }
  const Context& ctx() const { return ctx_; }

  // The packed parameter region: every parameter tensor at its own offset
  // (kernels KRSC, cuDNN's filter layout for NHWC), aligned as the arena
  // aligns its buffers, the gaps zero. Gradients (training) have the same
  // layout, and so can any per-value state such as the optimiser's slots.
  int64_t packed_floats() const { return int64_t(host_packed_.size()); }
  float* parameters() const { return params_; }
  float* gradients() const { return param_grads_; }

  float* input() const { return outs_[0]; }
  float* logits() const { return outs_[plan_.graph().output]; }
  float* logits_gradient() const { return diffs_[plan_.graph().output]; }
  float* probabilities() const { return probabilities_; }
  int64_t input_count() const { return plan_.size(0).count(); }
  int64_t output_count() const { return plan_.output_size().count(); }

  // Enqueue on ctx().stream: the forward pass from input() to logits(), and
  // (training) the backward pass from logits_gradient() to gradients().
  void forward() const;
  void backward() const;

  // Host tensors (parameters order, HWIO kernels) into a packed device
  // region and back, through the host staging copy; both synchronise.
  void upload(const std::vector<const Tensor*>& tensors, float* packed) const;
  std::vector<Tensor> download(const float* packed) const;

 private:
  void plan(float** slot, int64_t floats) { bindings_.emplace_back(slot, arena_.reserve(floats)); }
  void plan_memory();
  void setup_layers();
  void build_forward();
  void build_backward();

  struct StreamDeleter {
    void operator()(cudaStream_t s) const { cudaStreamDestroy(s); }
  };
  struct CudnnDeleter {
    void operator()(cudnnHandle_t h) const { cudnnDestroy(h); }
  };

  ExecPlan plan_;
  Context ctx_;
  std::unique_ptr<CUstream_st, StreamDeleter> stream_;
  std::unique_ptr<cudnnContext, CudnnDeleter> cudnn_;
  Arena arena_, workspace_;
  std::vector<std::pair<float**, size_t>> bindings_;  // arena pointer slots and their offsets
  std::vector<ConvLayer> convs_;
  std::vector<std::unique_ptr<PoolLayer>> pools_;  // indexed by node
  std::vector<int64_t> offsets_;                   // of each parameter tensor in the packed region
  mutable std::vector<float> host_packed_;         // the staging copy of a packed region
  float* params_ = nullptr;
  float* param_grads_ = nullptr;
  float* probabilities_ = nullptr;
  std::vector<float*> outs_, diffs_;  // every node's output and d(loss)/d(output)
  std::vector<std::function<void()>> forward_, backward_;
};

}  // namespace unetind::cuda
