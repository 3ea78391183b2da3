// Reading images in the formats a line's cameras write: the one entry point
// that every reader of images (train, evaluate, predict, serve, the Python
// module, the C API) goes through. The format is told by the content, never
// by the file's name:
//   PNG  through libpng           (png.h): 1- to 16-bit gray, RGB(A), palette
//   JPEG through libjpeg-turbo    baseline and progressive, gray or colour
//   TIFF through libtiff          8- and 16-bit gray or RGB(A), any compression
//                                 libtiff has, strips or tiles; other 8-bit
//                                 layouts (palette, YCbCr, CMYK, 1-4 bit)
//                                 through libtiff's RGBA reader; first page only
//   BMP  through ImageMagick's MagickCore: 1- to 32-bit, RLE too
//   PNM  (PGM, PPM, PBM) through MagickCore: any maxval up to 65535
// Every image becomes gray in the model's 0..255 domain:
//   - colour becomes ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B, as
//     TensorFlow's rgb_to_grayscale); alpha is ignored;
//   - 16-bit samples are scaled by 255/65535 (65535 becomes 255.0, values
//     in between stay fractional, nothing is rounded to 8 bits);
//   - PNM samples by 255/maxval (a 12-bit PGM with maxval 4095: 4095 is
//     255.0), through MagickCore's 16-bit quantum (within 0.002 of exact);
//   - JPEG gray is the decoded luminance (the Y channel for colour JPEGs):
//     lossy, so it differs from the image it was made from (docs).
// An image over kMaxImagePixels is refused from its header, before its
// pixels take memory. Every error names the file (or `name`).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "unetind/image.h"

namespace unetind {

enum class ImageFormat { Png, Jpeg, Tiff, Bmp, Pnm };
std::string to_string(ImageFormat format);  // "PNG", "JPEG", "TIFF", "BMP", "PNM"

// The largest image file read (1 GiB; an 8192 x 8192 16-bit RGBA TIFF
// without compression is half of it).
constexpr int64_t kMaxImageFileBytes = int64_t{1} << 30;

// The format the bytes' signature says, or none.
std::optional<ImageFormat> detect_image_format(std::string_view bytes);

// Decodes image bytes of any format above; `name` stands for them in errors
// (an upload: "the request body"). Throws Error for anything else, and for
// a damaged, truncated or oversized image. The fuzz-harness entry point.
GrayImage decode_image_gray(std::string_view bytes, const std::string& name);

// The file at `path`, of any format above.
GrayImage read_image_gray(const std::string& path);

// Whether a file's name says it is an image in one of these formats (.png,
// .jpg, .jpeg, .tif, .tiff, .bmp, .pgm, .ppm, .pbm, .pnm, in any letter
// case): how folders are listed. Reading goes by content all the same.
bool has_image_extension(const std::string& path);

// "PNG, JPEG, TIFF, BMP or PGM/PPM/PBM": for messages about folders without
// images.
extern const char* const kImageFormatsText;

}  // namespace unetind
