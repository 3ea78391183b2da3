// JPEG through libjpeg-turbo's TurboJPEG API, decoded straight to gray: a
// colour JPEG gives its luminance (Y, which JFIF defines by the BT.601
// weights), a gray one its samples. Decoding is strict: libjpeg's warnings
// about damaged data (a truncated file, a bad Huffman code) are errors, so a
// damaged image is never silently filled with gray.
#include <turbojpeg.h>

#include <memory>

#include "io/image_decoders.h"
#include "unetind/error.h"

namespace unetind::image_decoders {

namespace {

struct HandleCloser {
  void operator()(void* handle) const { tjDestroy(handle); }
};

}  // namespace

GrayImage decode_jpeg(std::string_view bytes, const std::string& name) {
  std::unique_ptr<void, HandleCloser> handle(tjInitDecompress());
  if (!handle) throw_file_error(name, std::string("cannot start the JPEG decoder: ") + tjGetErrorStr2(nullptr));
  auto fail = [&](const char* what) {
    throw_file_error(name, std::string("corrupt or unsupported JPEG (") + what + "): " + tjGetErrorStr2(handle.get()));
  };
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  int width = 0, height = 0, subsampling = 0, colorspace = 0;
  if (tjDecompressHeader3(handle.get(), data, bytes.size(), &width, &height, &subsampling, &colorspace) != 0)
    fail("header");
  check_image_size(name, "JPEG", width, height);

  std::vector<unsigned char> gray(static_cast<size_t>(width) * height);
  // Accurate DCT (libjpeg's ISLOW: its default, and Pillow's and OpenCV's);
  // a progressive image with an absurd number of scans is refused rather
  // than decoded for minutes.
  const int flags = TJFLAG_ACCURATEDCT | TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS;
  if (tjDecompress2(handle.get(), data, bytes.size(), gray.data(), width, 0, height, TJPF_GRAY, flags) != 0)
    fail("data");

  GrayImage image;
  image.width = width;
  image.height = height;
  image.pixels.assign(gray.begin(), gray.end());
  return image;
}

}  // namespace unetind::image_decoders
