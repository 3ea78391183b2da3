// The decoders behind image_io.h, one a format, each from bytes in memory,
// and what they share: the pixel limit and the conversion to gray.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "unetind/image.h"
#include "unetind/image_io.h"

namespace unetind::image_decoders {

GrayImage decode_jpeg(std::string_view bytes, const std::string& name);
GrayImage decode_tiff(std::string_view bytes, const std::string& name);
// BMP or PNM (`format` says which: MagickCore is told, not left to guess).
GrayImage decode_with_magick(std::string_view bytes, ImageFormat format, const std::string& name);

// Throws Error naming `name` where a header's size is empty or over
// kMaxImagePixels: called before the pixels are allocated.
void check_image_size(const std::string& name, const std::string& format, int64_t width, int64_t height);

// ITU-R BT.601 luma, as TensorFlow's rgb_to_grayscale. Computed in double,
// so that a gray pixel (r = g = b) keeps its value exactly.
inline float luma(double r, double g, double b) { return static_cast<float>(0.299 * r + 0.587 * g + 0.114 * b); }

}  // namespace unetind::image_decoders
