#include "unetind/inspection.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "unetind/error.h"
#include "unetind/model.h"

namespace unetind {

Inspection inspect(const float* model_probs, int size, int width, int height, float threshold) {
  check_threshold(threshold, "threshold");
  Inspection r;
  r.width = width;
  r.height = height;
  r.threshold = threshold;
  const std::vector<float> view(model_probs, model_probs + static_cast<size_t>(size) * size);
  r.probabilities = crop_or_pad(view, size, size, width, height);
  for (float p : r.probabilities) {
    r.defect_score = std::max(r.defect_score, p);
    r.defect_pixels += p > threshold;
  }
  r.is_defective = r.defect_score > threshold;
  return r;
}

std::vector<uint8_t> defect_mask(const Inspection& inspection) {
  std::vector<uint8_t> mask(inspection.probabilities.size());
  for (size_t i = 0; i < mask.size(); ++i) mask[i] = inspection.probabilities[i] > inspection.threshold ? 255 : 0;
  return mask;
}

std::vector<float> probabilities_in_model_view(const Inspection& inspection, int size) {
  return crop_or_pad(inspection.probabilities, inspection.width, inspection.height, size, size);
}

void check_threshold(float threshold, const char* what) {
  // Written so that NaN fails too.
  if (!(threshold >= 0.0f && threshold <= 1.0f))
    throw Error(std::string(what) + " must be a number from 0 to 1, not " + std::to_string(threshold));
}

}  // namespace unetind
