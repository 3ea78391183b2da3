// An image in memory as every reader hands it over: gray, in the 0..255
// range, whatever the file held (image_io.h says how each format gets there),
// and the colour image overlays are drawn in.
#pragma once
#include <cstdint>
#include <vector>

namespace unetind {

// The largest image read, in pixels: a larger one is refused from its
// header, before any memory is taken for it (a few bytes of a file can
// declare gigapixels). The default, kMaxImagePixels, is 8192 x 8192 (256 MB
// of float pixels; a DAGM image is 512 x 512). set_max_image_pixels changes
// it for the whole process: the CLI's --max-image-pixels and the environment
// variable UNETIND_MAX_IMAGE_PIXELS set it. Serve's tensor inputs obey it too.
constexpr int64_t kMaxImagePixels = int64_t{8192} * 8192;
int64_t max_image_pixels();
// Throws Error for a limit below 1.
void set_max_image_pixels(int64_t pixels);

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
