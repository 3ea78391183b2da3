// BMP and PNM (PGM, PPM, PBM) through ImageMagick's MagickCore. MagickCore
// is told the format (the signature was checked in image_io.cpp), so that no
// other of its many coders ever sees the bytes, and it is held to one thread,
// no disk and kMaxImagePixels. Its messages stay in the exception it fills,
// never on stderr.
#include <omp.h>

#include <cstring>
#include <memory>
#include <mutex>

// MagickCore's headers need its configuration (quantum depth, HDRI), which
// its pkg-config file gives on the compiler's command line.
#include <magick/MagickCore.h>

#include "io/image_decoders.h"
#include "unetind/error.h"

namespace unetind::image_decoders {

namespace {

// MagickCore sets OpenMP's thread count (a per-thread setting) to its own
// thread limit. The model runs on OpenMP too, in the calling thread: that
// setting is put back after every call.
class KeepOpenMpThreads {
 public:
  KeepOpenMpThreads() : threads_(omp_get_max_threads()) {}
  ~KeepOpenMpThreads() { omp_set_num_threads(threads_); }
  KeepOpenMpThreads(const KeepOpenMpThreads&) = delete;
  KeepOpenMpThreads& operator=(const KeepOpenMpThreads&) = delete;

 private:
  int threads_;
};

void start_magick() {
  static std::once_flag once;
  std::call_once(once, [] {
    KeepOpenMpThreads keep;
    MagickCoreGenesis(nullptr, MagickFalse);
    // Messages stay in the ExceptionInfo of each call.
    SetWarningHandler(nullptr);
    SetErrorHandler(nullptr);
    SetMagickResourceLimit(ThreadResource, 1);  // the cores are the model's
    SetMagickResourceLimit(DiskResource, 0);    // no pixel cache on disk
    SetMagickResourceLimit(AreaResource, static_cast<MagickSizeType>(kMaxImagePixels));
  });
}

struct ImageInfoFree {
  void operator()(ImageInfo* info) const { DestroyImageInfo(info); }
};
struct ExceptionFree {
  void operator()(ExceptionInfo* e) const { DestroyExceptionInfo(e); }
};
struct ImageFree {
  void operator()(Image* image) const { DestroyImageList(image); }
};
using ImagePtr = std::unique_ptr<Image, ImageFree>;

class MagickCall {
 public:
  MagickCall(ImageFormat format, const std::string& name) : name_(name), format_(to_string(format)) {
    start_magick();
    info_.reset(AcquireImageInfo());
    exception_.reset(AcquireExceptionInfo());
    if (!info_ || !exception_) throw std::bad_alloc();
    // "BMP:" / "PNM:" before the name makes MagickCore take that coder and
    // no other.
    const std::string coder = format == ImageFormat::Bmp ? "BMP" : "PNM";
    std::snprintf(info_->filename, sizeof info_->filename, "%s:image", coder.c_str());
    std::snprintf(info_->magick, sizeof info_->magick, "%s", coder.c_str());
  }

  // Reads the header only (ping) or the whole image; throws on any error.
  ImagePtr read(std::string_view bytes, bool ping) {
    KeepOpenMpThreads keep;
    ImagePtr image(ping ? PingBlob(info_.get(), bytes.data(), bytes.size(), exception_.get())
                        : BlobToImage(info_.get(), bytes.data(), bytes.size(), exception_.get()));
    check(image.get());
    return image;
  }

  // Each pixel's R, G and B as `type` (CharPixel, ShortPixel).
  template <typename T>
  std::vector<T> rgb(const Image* image, StorageType type) {
    KeepOpenMpThreads keep;
    std::vector<T> out(static_cast<size_t>(image->columns) * image->rows * 3);
    const MagickBooleanType ok =
        ExportImagePixels(image, 0, 0, image->columns, image->rows, "RGB", type, out.data(), exception_.get());
    check(ok == MagickTrue ? image : nullptr);
    return out;
  }

  const std::string& name() const { return name_; }
  const std::string& format() const { return format_; }

 private:
  void check(const Image* result) const {
    // Warnings (a tolerable oddity) pass; errors and a missing result do not.
    if (result && exception_->severity < ErrorException) return;
    std::string why = exception_->reason ? exception_->reason : "decoding failed";
    if (exception_->description) why += std::string(" (") + exception_->description + ")";
    throw_file_error(name_, "corrupt or unsupported " + format_ + ": " + why);
  }

  std::string name_;
  std::string format_;
  std::unique_ptr<ImageInfo, ImageInfoFree> info_;
  std::unique_ptr<ExceptionInfo, ExceptionFree> exception_;
};

}  // namespace

GrayImage decode_with_magick(std::string_view bytes, ImageFormat format, const std::string& name) {
  MagickCall call(format, name);
  {
    const ImagePtr header = call.read(bytes, /*ping=*/true);
    check_image_size(name, call.format(), static_cast<int64_t>(header->columns), static_cast<int64_t>(header->rows));
  }
  const ImagePtr image = call.read(bytes, /*ping=*/false);
  check_image_size(name, call.format(), static_cast<int64_t>(image->columns), static_cast<int64_t>(image->rows));
  GrayImage out;
  out.width = static_cast<int>(image->columns);
  out.height = static_cast<int>(image->rows);
  out.pixels.resize(static_cast<size_t>(out.width) * out.height);
  // Up to 8 bits a sample, the samples exactly; more (a 16-bit PGM, or a
  // maxval over 255) through MagickCore's 16-bit quantum, which it scales
  // maxval to.
  if (image->depth <= 8) {
    const std::vector<unsigned char> rgb = call.rgb<unsigned char>(image.get(), CharPixel);
    for (size_t i = 0; i < out.pixels.size(); ++i) out.pixels[i] = luma(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]);
  } else {
    const std::vector<unsigned short> rgb = call.rgb<unsigned short>(image.get(), ShortPixel);
    const double scale = 255.0 / 65535.0;
    for (size_t i = 0; i < out.pixels.size(); ++i)
      out.pixels[i] = luma(rgb[3 * i] * scale, rgb[3 * i + 1] * scale, rgb[3 * i + 2] * scale);
  }
  return out;
}

}  // namespace unetind::image_decoders
