// What the model's output says about one image, in the image's own
// geometry: the probabilities mapped back through the inverse crop-or-pad,
// the defect score, the defect pixel count and the decision. The one place
// that predict, serve and every embedding program turn an output into an
// answer, so that they agree.
#pragma once
#include <cstdint>
#include <vector>

namespace unetind {

struct Inspection {
  int width = 0;   // the image's own size
  int height = 0;
  // width x height, row-major: the model's probabilities where the model saw
  // the image, 0 where a crop cut it away.
  std::vector<float> probabilities;
  float threshold = 0.5f;
  float defect_score = 0;     // the largest probability inside the image
  int64_t defect_pixels = 0;  // pixels inside the image above the threshold
  bool is_defective = false;  // defect_score > threshold
};

// model_probs: the size x size model output for an image of width x height
// that was prepared with prepare_input. Padding the model saw around a small
// image counts for nothing.
Inspection inspect(const float* model_probs, int size, int width, int height, float threshold);

// 255 where the probability is above the threshold, else 0; width x height.
std::vector<uint8_t> defect_mask(const Inspection& inspection);

// The model-geometry (size x size) probabilities with everything outside the
// image set to 0: what the model said about the image's own pixels.
std::vector<float> probabilities_in_model_view(const Inspection& inspection, int size);

// Checks a threshold: a number in [0, 1]. Throws Error naming `what`.
void check_threshold(float threshold, const char* what);

}  // namespace unetind
