// An image in memory as every reader hands it over: gray, in the 0..255
// range, whatever the file held (image_io.h says how each format gets there),
// and the colour image overlays are drawn in.
#pragma once
#include <cstdint>
#include <vector>

namespace unetind {

// The largest image read, in pixels (8192 x 8192): a larger one is refused
// from its header, before any memory is taken for it.
constexpr int64_t kMaxImagePixels = int64_t{8192} * 8192;

struct GrayImage {
  int width = 0;
  int height = 0;
  std::vector<float> pixels;  // row-major, height*width values in [0, 255]
};

struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // row-major, interleaved R,G,B
};

}  // namespace unetind
