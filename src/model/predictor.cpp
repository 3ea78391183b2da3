#include "unetind/predictor.h"

#include "unetind/calibration.h"
#include "unetind/error.h"
#include "unetind/image_io.h"

namespace unetind {

Predictor::Predictor(Parameters params, std::unique_ptr<Backend> backend, int image_size, Precision precision,
                     ConvAlgorithm conv_algorithm, std::shared_ptr<ActivationArena> activations)
    : params_(std::move(params)),
      graph_(build_graph(params_.config)),
      backend_(std::move(backend)),
      image_size_(image_size),
      precision_(precision),
      conv_algorithm_(conv_algorithm),
      activations_(!backend_->shares_activations() ? nullptr
                   : activations                     ? std::move(activations)
                                                     : std::make_shared<ActivationArena>()) {
  check_image_size(image_size);
  if (precision_ == Precision::INT8) int8_ranges_of(params_);  // refused here, naming the file, not at the first run
  check_memory(1);
}

void Predictor::check_memory(int batch) const {
  const ExecConfig config{batch, image_size_, image_size_, false, precision_, conv_algorithm_};
  const double arrays = 2.0 * batch * image_size_ * image_size_ * sizeof(float);
  check_fits_in_memory(activation_bytes_lower_bound(graph_, config) + arrays,
                       "inference on a batch of " + std::to_string(batch) + " at image size " +
                           std::to_string(image_size_));
}

void Predictor::prepare(int count) {
  auto& exec = executors_[count];
  if (exec) return;
  ExecConfig config{count, image_size_, image_size_, false, precision_, conv_algorithm_};
  if (precision_ == Precision::INT8) config.int8_ranges = int8_ranges_of(params_);
  config.activations = activations_;
  exec = backend_->compile(graph_, config);
  exec->set_parameters(params_.tensors);
}

void Predictor::run(const float* images, int count, float* probs) {
  prepare(count);
  Executor& exec = *executors_.at(count);
  exec.forward(images, probs, true);
  // The CPU executor checks its logits; this catches a NaN from any backend.
  check_outputs_finite(probs, static_cast<size_t>(image_size_) * image_size_, count);
}

PreparedImage load_prepared_image(const std::string& path, int size) {
  PreparedImage p;
  p.image = read_image_gray(path);
  p.input = prepare_input(p.image.pixels, p.image.width, p.image.height, size);
  return p;
}

void check_image_size(int size) {
  if (size < 16 || size % 16 != 0)
    throw Error("image size " + std::to_string(size) + " must be a positive multiple of 16 (the model pools 4 times)");
}

}  // namespace unetind
