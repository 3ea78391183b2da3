// PNG decoding from bytes (src/io/png.cpp, over libpng): what `predict`,
// the loader and serve's PNG upload all read images through.
#include <cmath>

#include "fuzz_support.h"
#include "io/checksums.h"
#include "unetind/error.h"
#include "unetind/png.h"

// Chunk CRCs are not checked, so that mutations reach the decoder. A
// limit of 2048 x 2048 keeps each input quick (the row buffers are
// allocated from the header) and makes the limit's own check part of what
// is fuzzed.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  unetind::set_max_image_pixels(int64_t{2048} * 2048);
  unetind::checksums::set_checked(false);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace unetind;
  GrayImage image;
  try {
    image = decode_png_gray(fuzz::as_text(data, size), "input");
  } catch (const Error&) {
    return 0;
  }
  if (image.width < 1 || image.height < 1 || int64_t{image.width} * image.height > max_image_pixels() ||
      image.pixels.size() != static_cast<size_t>(image.width) * image.height)
    fuzz::finding("decoded " + std::to_string(image.width) + "x" + std::to_string(image.height) + " with " +
                  std::to_string(image.pixels.size()) + " pixels");
  // Every value in [0, 255]; rounded to 8 bits, the image survives our own
  // encoder and decoder unchanged.
  std::vector<uint8_t> bytes(image.pixels.size());
  for (size_t i = 0; i < bytes.size(); ++i) {
    const float v = image.pixels[i];
    if (!(v >= 0.0f && v <= 255.0f)) fuzz::finding("pixel " + std::to_string(i) + " is " + std::to_string(v));
    bytes[i] = static_cast<uint8_t>(std::lround(v));
  }
  const GrayImage again = decode_png_gray(encode_png_gray8(image.width, image.height, bytes), "re-encoded");
  for (size_t i = 0; i < bytes.size(); ++i)
    if (again.pixels[i] != bytes[i]) fuzz::finding("re-encoded pixel " + std::to_string(i) + " changed");
  return 0;
}
