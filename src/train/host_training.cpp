#include "train/host_training.h"

#include <cmath>

#include "unetind/data_parallel.h"
#include "unetind/error.h"

namespace unetind {

namespace {

class HostTrainingExecutor final : public TrainingExecutor {
 public:
  HostTrainingExecutor(std::unique_ptr<Executor> exec, const TrainingConfig& training, Communicator* group)
      : exec_(std::move(exec)), training_(training), group_(group && group->size() > 1 ? group : nullptr),
        optimizer_(training.rmsprop) {
    const ExecConfig& c = exec_->config();
    if (!c.training) throw Error("training executor: the executor was compiled for inference");
    logits_.resize(size_t(c.batch) * c.height * c.width);
    dlogits_.resize(logits_.size());
  }

  void load(const std::vector<NamedTensor>& params, const std::vector<NamedTensor>& optimizer_state) override {
    exec_->set_parameters(params);  // checks the shapes
    RmsProp optimizer(training_.rmsprop);
    if (!optimizer_state.empty()) optimizer.load_state(params, optimizer_state, "optimizer state");
    params_ = params;
    optimizer_ = std::move(optimizer);
  }

  StepResult step(const float* images, const float* masks, float lr) override {
    if (params_.empty()) throw Error("training executor: step() before load()");
    exec_->forward(images, logits_.data(), false);
    const LossResult loss = loss_forward_backward(training_.loss, logits_.data(), masks,
                                                  static_cast<int64_t>(logits_.size()), dlogits_.data());
    StepResult r;
    r.reconstruction = loss.value;
    r.branch = loss.branch;
    if (!group_) check_finite(r.reconstruction);  // before backward: nothing to wait for
    exec_->backward(dlogits_.data(), grads_);
    if (group_) {
      // Every rank decides on the mean loss, so that all of them throw or
      // none does.
      group_->all_reduce_mean(grads_);
      float mean_loss = static_cast<float>(r.reconstruction);
      group_->all_reduce_mean(&mean_loss, 1);
      r.reconstruction = mean_loss;
      check_finite(r.reconstruction);
    }
    r.l2 = weight_decay(params_, training_.weight_decay, &grads_);
    r.loss = r.reconstruction + r.l2;
    optimizer_.step(params_, grads_, lr);
    exec_->set_parameters(params_);
    return r;
  }

  std::vector<NamedTensor> parameters() const override { return params_; }
  std::vector<NamedTensor> optimizer_state() const override { return optimizer_.state(params_); }
  const ExecConfig& config() const override { return exec_->config(); }

 private:
  static void check_finite(double loss) {
    if (!std::isfinite(loss)) throw Error("the loss is not finite (" + std::to_string(loss) + ")");
  }

  std::unique_ptr<Executor> exec_;
  TrainingConfig training_;
  Communicator* group_;  // null: this process alone
  std::vector<NamedTensor> params_;
  RmsProp optimizer_;
  std::vector<float> logits_, dlogits_;
  std::vector<Tensor> grads_;
};

}  // namespace

std::unique_ptr<TrainingExecutor> make_host_training_executor(std::unique_ptr<Executor> exec,
                                                              const TrainingConfig& training, Communicator* group) {
  return std::make_unique<HostTrainingExecutor>(std::move(exec), training, group);
}

}  // namespace unetind
