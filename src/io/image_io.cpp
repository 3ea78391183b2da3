#include <atomic>
#include "unetind/image_io.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "io/image_decoders.h"
#include "unetind/atomic_file.h"
#include "unetind/error.h"
#include "unetind/png.h"

namespace unetind {

const char* const kImageFormatsText = "PNG, JPEG, TIFF, BMP or PGM/PPM/PBM";

std::string to_string(ImageFormat format) {
  switch (format) {
    case ImageFormat::Png: return "PNG";
    case ImageFormat::Jpeg: return "JPEG";
    case ImageFormat::Tiff: return "TIFF";
    case ImageFormat::Bmp: return "BMP";
    case ImageFormat::Pnm: return "PNM";
  }
  return "?";
}

std::optional<ImageFormat> detect_image_format(std::string_view bytes) {
  auto starts = [&](std::string_view magic) { return bytes.substr(0, magic.size()) == magic; };
  if (starts("\x89PNG\r\n\x1a\n")) return ImageFormat::Png;
  if (starts("\xff\xd8\xff")) return ImageFormat::Jpeg;
  // Classic TIFF (42) and BigTIFF (43), little- and big-endian.
  if (starts(std::string_view("II*\0", 4)) || starts(std::string_view("MM\0*", 4)) ||
      starts(std::string_view("II+\0", 4)) || starts(std::string_view("MM\0+", 4)))
    return ImageFormat::Tiff;
  if (starts("BM")) return ImageFormat::Bmp;
  // P1..P6 (PBM, PGM, PPM; plain and raw), then the whitespace the format
  // requires after the magic number.
  if (bytes.size() >= 3 && bytes[0] == 'P' && bytes[1] >= '1' && bytes[1] <= '6' &&
      std::isspace(static_cast<unsigned char>(bytes[2])))
    return ImageFormat::Pnm;
  return std::nullopt;
}

GrayImage decode_image_gray(std::string_view bytes, const std::string& name) {
  if (bytes.empty()) throw_file_error(name, "empty file, not an image");
  const std::optional<ImageFormat> format = detect_image_format(bytes);
  if (!format)
    throw_file_error(name, std::string("not an image in a format read here (") + kImageFormatsText +
                               "): unknown signature");
  switch (*format) {
    case ImageFormat::Png: return decode_png_gray(bytes, name);
    case ImageFormat::Jpeg: return image_decoders::decode_jpeg(bytes, name);
    case ImageFormat::Tiff: return image_decoders::decode_tiff(bytes, name);
    case ImageFormat::Bmp:
    case ImageFormat::Pnm: return image_decoders::decode_with_magick(bytes, *format, name);
  }
  throw_file_error(name, "unhandled image format");
}

GrayImage read_image_gray(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw_file_error(path, "is a folder, not an image file");
  const auto size = fs::file_size(path, ec);
  if (!ec && size > static_cast<uintmax_t>(kMaxImageFileBytes))
    throw_file_error(path, "file is " + std::to_string(size) + " bytes, more than the limit of " +
                               std::to_string(kMaxImageFileBytes) + " for an image");
  return decode_image_gray(read_file(path), path);
}

bool has_image_extension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* known : {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".pgm", ".ppm", ".pbm", ".pnm"})
    if (ext == known) return true;
  return false;
}

namespace {
std::atomic<int64_t> g_max_image_pixels{kMaxImagePixels};
}  // namespace

int64_t max_image_pixels() { return g_max_image_pixels.load(std::memory_order_relaxed); }

void set_max_image_pixels(int64_t pixels) {
  if (pixels < 1) throw Error("the image size limit must be at least 1 pixel, not " + std::to_string(pixels));
  g_max_image_pixels.store(pixels, std::memory_order_relaxed);
}

namespace image_decoders {

void check_image_size(const std::string& name, const std::string& format, int64_t width, int64_t height) {
  if (width <= 0 || height <= 0)
    throw_file_error(name, "corrupt " + format + ": image is " + std::to_string(width) + "x" +
                               std::to_string(height) + " pixels");
  // Compared without multiplying first: a header can declare any width and height.
  if (width > max_image_pixels() / height)
    throw_file_error(name, "image is " + std::to_string(width) + "x" + std::to_string(height) +
                               " pixels, more than the limit of " + std::to_string(max_image_pixels()) +
                               " (--max-image-pixels)");
}

}  // namespace image_decoders

}  // namespace unetind
