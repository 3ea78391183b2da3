#include "unetind/overlay.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "unetind/error.h"

namespace unetind {

namespace {

constexpr float kTintAlpha = 0.4f;
constexpr uint8_t kPredictedRgb[3] = {255, 0, 0};
constexpr uint8_t kLabelledRgb[3] = {0, 255, 0};

std::vector<uint8_t> binarise(const float* values, std::size_t n, float threshold) {
  std::vector<uint8_t> region(n);
  for (std::size_t i = 0; i < n; ++i) region[i] = values[i] > threshold;
  return region;
}

// The region's pixels that have a pixel outside it within `radius` (Chebyshev
// distance). Beyond the image counts as outside, so a region that touches the
// border is closed there.
std::vector<uint8_t> inner_outline(const std::vector<uint8_t>& region, int width, int height, int radius) {
  auto at = [width](int x, int y) { return static_cast<std::size_t>(y) * width + x; };
  std::vector<uint8_t> near_outside_row(region.size());
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      bool near = x - radius < 0 || x + radius >= width;
      for (int dx = -radius; !near && dx <= radius; ++dx) near = !region[at(x + dx, y)];
      near_outside_row[at(x, y)] = near;
    }
  }
  std::vector<uint8_t> outline(region.size());
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      if (!region[at(x, y)]) continue;
      bool near = y - radius < 0 || y + radius >= height;
      for (int dy = -radius; !near && dy <= radius; ++dy) near = near_outside_row[at(x, y + dy)];
      outline[at(x, y)] = near;
    }
  }
  return outline;
}

void paint(uint8_t* rgb, const uint8_t colour[3]) { std::copy(colour, colour + 3, rgb); }

}  // namespace

RgbImage make_overlay(const GrayImage& image, const float* prob, float threshold, const float* true_mask) {
  if (image.width <= 0 || image.height <= 0) throw Error("overlay: the image is empty");
  std::size_t n = static_cast<std::size_t>(image.width) * static_cast<std::size_t>(image.height);
  if (image.pixels.size() != n) {
    throw Error("overlay: the image holds " + std::to_string(image.pixels.size()) + " pixels, not " +
                std::to_string(image.width) + "x" + std::to_string(image.height));
  }
  if (prob == nullptr) throw Error("overlay: no probability map given");
  int radius = std::max(1, std::min(image.width, image.height) / 256);

  std::vector<uint8_t> predicted = binarise(prob, n, threshold);
  std::vector<uint8_t> predicted_outline = inner_outline(predicted, image.width, image.height, radius);
  std::vector<uint8_t> labelled_outline;
  if (true_mask != nullptr) {
    labelled_outline = inner_outline(binarise(true_mask, n, threshold), image.width, image.height, radius);
  }

  RgbImage out;
  out.width = image.width;
  out.height = image.height;
  out.pixels.resize(n * 3);
  for (std::size_t i = 0; i < n; ++i) {
    uint8_t* rgb = &out.pixels[i * 3];
    float gray = std::clamp(image.pixels[i], 0.0f, 255.0f);
    if (predicted[i]) {
      for (int c = 0; c < 3; ++c) {
        rgb[c] = static_cast<uint8_t>(std::lround(gray * (1.0f - kTintAlpha) + kPredictedRgb[c] * kTintAlpha));
      }
    } else {
      std::fill(rgb, rgb + 3, static_cast<uint8_t>(std::lround(gray)));
    }
    if (predicted_outline[i]) paint(rgb, kPredictedRgb);
    if (!labelled_outline.empty() && labelled_outline[i]) paint(rgb, kLabelledRgb);
  }
  return out;
}

}  // namespace unetind
