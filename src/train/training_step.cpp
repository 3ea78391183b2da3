#include "unetind/trainer.h"

namespace unetind {

TrainingStep::TrainingStep(const ModelConfig& model, Backend& backend, int batch, int image_size,
                           Precision precision, LossKind loss, double weight_decay, ConvAlgorithm conv_algorithm)
    : backend_(backend),
      graph_(build_graph(model)),
      exec_config_{batch, image_size, image_size, true, precision, conv_algorithm},
      training_{loss, weight_decay, {}} {}

StepResult TrainingStep::run(std::vector<NamedTensor>& params, RmsProp& optimizer, const float* images,
                             const float* masks, float lr) {
  // The optimiser's configuration is part of the executor: compiled for the
  // first one seen, and again only if another comes.
  if (!exec_ || !(optimizer.config() == training_.rmsprop)) {
    training_.rmsprop = optimizer.config();
    exec_ = backend_.compile_training(graph_, exec_config_, training_, nullptr);
  }
  exec_->load(params, optimizer.state(params));
  const StepResult r = exec_->step(images, masks, lr);
  params = exec_->parameters();
  optimizer.load_state(params, exec_->optimizer_state(), "the training executor's state");
  return r;
}

}  // namespace unetind
