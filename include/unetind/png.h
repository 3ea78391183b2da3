// PNG through libpng. Reading gives a grayscale image in the 0..255 range
// whatever the file holds: 8- and 16-bit gray (16-bit is scaled by 255/65535),
// RGB, RGBA and palette images converted to luma (ITU-R BT.601 weights, as
// TensorFlow's rgb_to_grayscale; alpha is ignored). Writing is 8-bit.
// Readers of images in any format use image_io.h, which comes here for PNGs.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "unetind/image.h"

namespace unetind {

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
