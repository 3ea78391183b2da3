// What TinyUNet's server takes and gives in protocol tensors (docs/serving.md):
// input `images`, FP32 N x H x W x 1 scaled to [-1, 1] (the TF-Hub module's
// interface) or UINT8 N x H x W x 1 raw pixels, any H and W (crop-or-pad as
// `predict` does); outputs `probabilities` (FP32 N x S x S x 1, the TF-Hub
// output), `mask` (UINT8 N x S x S x 1, 255 above the threshold inside the
// image), `defect_score` (FP32 N) and `is_defective` (BOOL N).
#pragma once
#include <nlohmann/json.hpp>

#include "serve/protocol.h"

namespace unetind::serve {

constexpr const char* kInputName = "images";
extern const char* const kOutputNames[4];  // probabilities, mask, defect_score, is_defective

struct ImageBatch {
  int count = 0;
  std::vector<float> inputs;  // count x size x size, prepared
  std::vector<int> widths, heights;
};

// Checks the request's single input and prepares its images for a model of
// size x size. Throws RequestError naming what is wrong.
ImageBatch images_from_request(const InferRequest& request, int size, int max_batch);

// The decision threshold: the request's "threshold" parameter, else `fallback`.
float request_threshold(const InferRequest& request, float fallback);

// The outputs the request asks for (all when it names none), each binary or
// JSON as asked. Throws RequestError for an unknown output name.
std::vector<OutputTensor> outputs_for(const InferRequest& request, const ImageBatch& images,
                                      const std::vector<float>& probs, int size, float threshold);

// The model's metadata (GET /v2/models/{m}) and Triton's model configuration.
nlohmann::json model_metadata(const std::string& name, const std::string& version, int size);
nlohmann::json model_config(const std::string& name, int size, int max_batch, int max_queue_delay_us, int max_queue);

}  // namespace unetind::serve
