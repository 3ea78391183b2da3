#include <cmath>

#include "unetind/error.h"
#include "unetind/trainer.h"

namespace unetind {

TrainingStep::TrainingStep(const ModelConfig& model, Backend& backend, int batch, int image_size,
                           Precision precision, LossKind loss, double weight_decay, ConvAlgorithm conv_algorithm)
    : exec_(backend.compile(build_graph(model),
                            ExecConfig{batch, image_size, image_size, true, precision, conv_algorithm})),
      loss_(loss),
      weight_decay_(weight_decay),
      logits_(static_cast<size_t>(batch) * image_size * image_size),
      dlogits_(logits_.size()) {}

StepResult TrainingStep::run(std::vector<NamedTensor>& params, RmsProp& optimizer, const float* images,
                             const float* masks, float lr) {
  exec_->set_parameters(params);
  exec_->forward(images, logits_.data(), false);
  StepResult r;
  const LossResult loss =
      loss_forward_backward(loss_, logits_.data(), masks, static_cast<int64_t>(logits_.size()), dlogits_.data());
  r.reconstruction = loss.value;
  r.branch = loss.branch;
  if (!std::isfinite(r.reconstruction)) throw Error("the loss is not finite (" + std::to_string(r.reconstruction) + ")");
  exec_->backward(dlogits_.data(), grads_);
  r.l2 = weight_decay(params, weight_decay_, &grads_);
  r.loss = r.reconstruction + r.l2;
  optimizer.step(params, grads_, lr);
  return r;
}

}  // namespace unetind
