// Inference on batches of prepared images with one set of weights: the one
// place that predict, evaluate, benchmark, the demo and the server run the
// model. It compiles one executor per batch size it meets (the last batch of
// a data set is usually smaller) and keeps them; on a backend that
// shares_activations() they take turns in one ActivationArena, so that
// their activations take only what the largest batch needs.
#pragma once
#include <map>
#include <memory>

#include "unetind/backend.h"
#include "unetind/model.h"
#include "unetind/image.h"

namespace unetind {

// Precision::INT8 takes the parameters' calibration (calibration.h) and
// throws an Error naming the model file where there is none. `activations`
// (null: an arena of its own) may be shared with other Predictors that
// never run at the same time as this one (a server's models, all run on
// one thread).
class Predictor {
 public:
  Predictor(Parameters params, std::unique_ptr<Backend> backend, int image_size, Precision precision,
            ConvAlgorithm conv_algorithm = ConvAlgorithm::Auto,
            std::shared_ptr<ActivationArena> activations = nullptr);

  // Checks (and the constructor does so for one image) that a batch of
  // `batch` images fits in memory: the executor's activations and the
  // caller's input and output arrays, at least. Throws Error saying how much
  // it would need, before anything of that size is allocated.
  void check_memory(int batch) const;

  // images: count x size x size, prepared (prepare_input); probs: the same
  // size, sigmoid outputs. Throws Error where an output is not finite
  // (weights so large that float32 overflows), rather than hand it on.
  void run(const float* images, int count, float* probs);

  // Compiles the executor for batches of `count` now (run() would at its
  // first batch of that size), without running it.
  void prepare(int count);

  // Whether executors for more batch sizes cost only their weights (their
  // activations take turns in one arena), or memory for activations each.
  bool shares_activations() const { return backend_->shares_activations(); }

  int image_size() const { return image_size_; }
  const Parameters& parameters() const { return params_; }

 private:
  Parameters params_;
  Graph graph_;
  std::unique_ptr<Backend> backend_;
  int image_size_;
  Precision precision_;
  ConvAlgorithm conv_algorithm_;
  std::shared_ptr<ActivationArena> activations_;  // null where the backend does not share them
  std::map<int, std::unique_ptr<Executor>> executors_;
};

// Loads the image at `path` (any format image_io.h reads) and prepares it
// for the model: the gray image as read, and the size x size model input.
struct PreparedImage {
  GrayImage image;
  std::vector<float> input;
};
PreparedImage load_prepared_image(const std::string& path, int size);

// Checks a user-given image size: positive and a multiple of 16.
void check_image_size(int size);

}  // namespace unetind
