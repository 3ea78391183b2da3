// PNG through libpng. Reading gives a grayscale image in the 0..255 range
// whatever the file holds: 8- and 16-bit gray (16-bit is scaled by 255/65535),
// RGB, RGBA and palette images converted to luma (ITU-R BT.601 weights, as
// TensorFlow's rgb_to_grayscale; alpha is ignored). Writing is 8-bit.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace unetind {

// The largest image read, in pixels: a larger one is refused from its
// header, before any memory is taken for it (a few bytes of PNG can declare
// gigapixels). The default, kMaxImagePixels, is 8192 x 8192 (256 MB of
// float pixels; a DAGM image is 512 x 512). set_max_image_pixels changes it
// for the whole process: the CLI's --max-image-pixels and the environment
// variable UNETIND_MAX_IMAGE_PIXELS set it. Serve's tensor inputs obey it too.
constexpr int64_t kMaxImagePixels = int64_t{8192} * 8192;
int64_t max_image_pixels();
// Throws Error for a limit below 1.
void set_max_image_pixels(int64_t pixels);
// Throws Error naming `name` when width x height is over the limit.
void check_image_pixels(int64_t width, int64_t height, const std::string& name);

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

// Throws Error naming the path for a missing, corrupt or non-PNG file.
GrayImage read_png_gray(const std::string& path);
// The same from PNG bytes in memory (an upload); `name` stands for them in
// errors.
GrayImage decode_png_gray(std::string_view bytes, const std::string& name);

// Reads only the header: width and height. Throws like read_png_gray (the
// pixel limit included).
void read_png_size(const std::string& path, int& width, int& height);

// PNG bytes in memory (for files and for images embedded in HTML reports).
std::string encode_png_gray8(int width, int height, const std::vector<uint8_t>& pixels);
std::string encode_png_rgb8(const RgbImage& image);

// Written atomically.
void write_png_gray8(const std::string& path, int width, int height, const std::vector<uint8_t>& pixels);
void write_png_rgb8(const std::string& path, const RgbImage& image);

}  // namespace unetind
