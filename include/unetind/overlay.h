// A picture of one prediction for people: the gray image in colour, the
// predicted region (prob > threshold) tinted red and outlined in red, and the
// labelled region (mask > threshold, as the metrics binarise it) outlined in
// green on top.
#pragma once
#include "unetind/png.h"

namespace unetind {

// prob (and true_mask, which may be null) hold image.width * image.height
// values, row-major, in [0, 1]. Outlines are 1 px wide per 256 px of the
// shorter side (2 px at 512). Throws Error for an empty image or one whose
// pixel count does not match its size.
RgbImage make_overlay(const GrayImage& image, const float* prob, float threshold, const float* true_mask);

}  // namespace unetind
