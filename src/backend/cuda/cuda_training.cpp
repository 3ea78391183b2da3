#include "backend/cuda/cuda_training.h"

#include <cmath>

#include "backend/cuda/cuda_net.h"
#include "unetind/data_parallel.h"

namespace unetind::cuda {

namespace {

ExecConfig for_training(ExecConfig config) {
  config.training = true;
  return config;
}

std::vector<const Tensor*> tensors_of(const std::vector<RmsPropSlots>& slots, Tensor RmsPropSlots::*which) {
  std::vector<const Tensor*> out;
  for (const RmsPropSlots& s : slots) out.push_back(&(s.*which));
  return out;
}

class CudaTrainingExecutor final : public TrainingExecutor {
 public:
  CudaTrainingExecutor(const Graph& graph, const ExecConfig& config, const TrainingConfig& training,
                       Communicator* group, int device)
      : net_(graph, for_training(config), device),
        training_(training),
        group_(group && group->size() > 1 ? group : nullptr) {
    const int64_t packed = net_.packed_floats();
    const size_t ms = state_.reserve(packed);
    const size_t mg = training_.rmsprop.centered ? state_.reserve(packed) : 0;
    const size_t mom = state_.reserve(packed);
    const size_t masks = state_.reserve(net_.output_count());
    const size_t scratch = state_.reserve(kReductionScratchBytes / int64_t(sizeof(float)));
    const size_t loss = state_.reserve(int64_t((sizeof(LossState) + sizeof(float) - 1) / sizeof(float)));
    state_.allocate();
    ms_ = state_.at(ms);
    mg_ = training_.rmsprop.centered ? state_.at(mg) : nullptr;
    mom_ = state_.at(mom);
    masks_ = state_.at(masks);
    scratch_ = state_.at(scratch);
    loss_ = reinterpret_cast<LossState*>(state_.at(loss));
  }

  void load(const std::vector<NamedTensor>& params, const std::vector<NamedTensor>& optimizer_state) override {
    net_.plan().check_parameters(params);
    RmsProp optimizer(training_.rmsprop);
    if (!optimizer_state.empty()) optimizer.load_state(params, optimizer_state, "optimizer state");
    const std::vector<RmsPropSlots> slots = optimizer.slots(params);
    std::vector<const Tensor*> weights;
    names_.clear();
    for (const NamedTensor& p : params) {
      weights.push_back(&p.tensor);
      names_.push_back(p.name);
    }
    net_.upload(weights, net_.parameters());
    net_.upload(tensors_of(slots, &RmsPropSlots::ms), ms_);
    if (mg_) net_.upload(tensors_of(slots, &RmsPropSlots::mg), mg_);
    net_.upload(tensors_of(slots, &RmsPropSlots::mom), mom_);
  }

  StepResult step(const float* images, const float* masks, float lr) override {
    if (names_.empty()) throw Error("cuda backend: step() before load()");
    const Context& ctx = net_.ctx();
    const int64_t n = net_.output_count();
    UNETIND_CUDA_CHECK(cudaSetDevice(ctx.device));
    UNETIND_CUDA_CHECK(cudaMemcpyAsync(net_.input(), images, net_.input_count() * sizeof(float),
                                       cudaMemcpyHostToDevice, ctx.stream));
    UNETIND_CUDA_CHECK(cudaMemcpyAsync(masks_, masks, n * sizeof(float), cudaMemcpyHostToDevice, ctx.stream));
    net_.forward();
    loss_forward_backward(ctx, training_.loss, net_.logits(), masks_, n, net_.logits_gradient(), scratch_, loss_);
    net_.backward();
    if (group_) average_over_ranks();
    const int64_t packed = net_.packed_floats();
    sum_of_squares(ctx, net_.parameters(), packed, scratch_, loss_);
    weight_decay_rmsprop(ctx, net_.parameters(), net_.gradients(), ms_, mg_, mom_, packed,
                         RmsPropStep(training_.rmsprop, lr), training_.rmsprop.centered,
                         static_cast<float>(training_.weight_decay), loss_);
    LossState state{};
    UNETIND_CUDA_CHECK(cudaMemcpyAsync(&state, loss_, sizeof state, cudaMemcpyDeviceToHost, ctx.stream));
    UNETIND_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));

    StepResult r;
    r.reconstruction = group_ ? double(state.gate) : state.coefficients.value;
    r.branch = state.coefficients.branch;
    if (!std::isfinite(state.gate) || !std::isfinite(r.reconstruction))
      throw Error("the loss is not finite (" + std::to_string(r.reconstruction) + ")");
    r.l2 = training_.weight_decay * state.sum_of_squares / 2.0;  // as weight_decay() in loss.cpp
    r.loss = r.reconstruction + r.l2;
    return r;
  }

  std::vector<NamedTensor> parameters() const override { return named(net_.download(net_.parameters())); }

  std::vector<NamedTensor> optimizer_state() const override {
    const std::vector<NamedTensor> params = parameters();
    std::vector<Tensor> ms = net_.download(ms_), mom = net_.download(mom_);
    std::vector<Tensor> mg = mg_ ? net_.download(mg_) : std::vector<Tensor>(ms.size());
    std::vector<RmsPropSlots> slots;
    for (size_t p = 0; p < params.size(); ++p) slots.push_back({std::move(ms[p]), std::move(mg[p]), std::move(mom[p])});
    RmsProp optimizer(training_.rmsprop);
    optimizer.set_slots(std::move(slots));
    return optimizer.state(params);
  }

  const ExecConfig& config() const override { return net_.plan().config(); }

 private:
  std::vector<NamedTensor> named(std::vector<Tensor> tensors) const {
    std::vector<NamedTensor> out;
    for (size_t p = 0; p < tensors.size(); ++p) out.push_back({names_[p], std::move(tensors[p])});
    return out;
  }

  // The gradients and the loss the update goes by become the ranks' means:
  // on the device where the communicator reduces device memory (NCCL), else
  // through host memory.
  void average_over_ranks() {
    const Context& ctx = net_.ctx();
    const int64_t packed = net_.packed_floats();
    float gate = 0;
    UNETIND_CUDA_CHECK(cudaMemcpyAsync(&gate, &loss_->gate, sizeof gate, cudaMemcpyDeviceToHost, ctx.stream));
    UNETIND_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
    if (group_->reduces_device_memory()) {
      group_->all_reduce_mean_device(net_.gradients(), size_t(packed));
    } else {
      host_gradients_.resize(size_t(packed));
      UNETIND_CUDA_CHECK(cudaMemcpy(host_gradients_.data(), net_.gradients(), packed * sizeof(float),
                                    cudaMemcpyDeviceToHost));
      group_->all_reduce_mean(host_gradients_.data(), host_gradients_.size());
      UNETIND_CUDA_CHECK(cudaMemcpy(net_.gradients(), host_gradients_.data(), packed * sizeof(float),
                                    cudaMemcpyHostToDevice));
    }
    group_->all_reduce_mean(&gate, 1);
    UNETIND_CUDA_CHECK(cudaMemcpyAsync(&loss_->gate, &gate, sizeof gate, cudaMemcpyHostToDevice, ctx.stream));
  }

  CudaNet net_;
  TrainingConfig training_;
  Communicator* group_;  // null: this process alone
  Arena state_;          // the optimiser's slots (packed as the parameters), the masks, the loss's scratch
  float *ms_ = nullptr, *mg_ = nullptr, *mom_ = nullptr, *masks_ = nullptr;
  void* scratch_ = nullptr;
  LossState* loss_ = nullptr;
  std::vector<std::string> names_;  // of the loaded parameters
  std::vector<float> host_gradients_;
};

}  // namespace

std::unique_ptr<TrainingExecutor> make_cuda_training_executor(const Graph& graph, const ExecConfig& config,
                                                              const TrainingConfig& training, Communicator* group,
                                                              int device) {
  return std::make_unique<CudaTrainingExecutor>(graph, config, training, group, device);
}

}  // namespace unetind::cuda
