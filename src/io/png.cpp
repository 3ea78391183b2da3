#include "unetind/png.h"

#include <png.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>

#include "io/checksums.h"
#include "io/image_decoders.h"
#include "unetind/atomic_file.h"
#include "unetind/error.h"

namespace unetind {

// libpng reports errors by longjmp. A longjmp may only cross frames whose
// objects have trivial destructors, so every function that calls setjmp (and
// every libpng callback) below touches plain data only; the C++ objects that
// own the png structs, the FILE and the buffers live in the caller's frame,
// which the longjmp never leaves.

namespace {

struct PngErrorState {
  char message[256] = {};
};

[[noreturn]] void on_png_error(png_structp png, png_const_charp message) {
  auto* state = static_cast<PngErrorState*>(png_get_error_ptr(png));
  std::snprintf(state->message, sizeof state->message, "%s", message);
  png_longjmp(png, 1);
}

// The library never prints; a recoverable oddity in a file is not our concern.
void on_png_warning(png_structp, png_const_charp) {}

// ---------------------------------------------------------------- reading

// Where the bytes come from: an open file, or a buffer in memory (an upload).
struct ByteSource {
  std::FILE* file = nullptr;
  const unsigned char* data = nullptr;
  size_t size = 0;
  size_t pos = 0;

  size_t read(void* out, size_t length) {
    if (file) return std::fread(out, 1, length, file);
    const size_t n = std::min(length, size - pos);
    std::memcpy(out, data + pos, n);
    pos += n;
    return n;
  }
};

void read_from_source(png_structp png, png_bytep out, size_t length) {
  auto* source = static_cast<ByteSource*>(png_get_io_ptr(png));
  if (source->read(out, length) != length) {
    png_error(png, source->file && std::ferror(source->file) ? "read failed" : "unexpected end of file (truncated PNG)");
  }
}

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};

class PngReadStructs {
 public:
  explicit PngReadStructs(PngErrorState* error) {
    png_ = png_create_read_struct(PNG_LIBPNG_VER_STRING, error, on_png_error, on_png_warning);
    if (png_) info_ = png_create_info_struct(png_);
  }
  ~PngReadStructs() {
    if (png_) png_destroy_read_struct(&png_, info_ ? &info_ : nullptr, nullptr);
  }
  PngReadStructs(const PngReadStructs&) = delete;
  PngReadStructs& operator=(const PngReadStructs&) = delete;

  png_structp png() const { return png_; }
  png_infop info() const { return info_; }

 private:
  png_structp png_ = nullptr;
  png_infop info_ = nullptr;
};

class PngReader {
 public:
  // From the file at `path`.
  explicit PngReader(const std::string& path) : name_(path), file_(std::fopen(path.c_str(), "rb")), structs_(&error_) {
    if (!file_) throw_file_error(path, std::string("cannot open for reading: ") + std::strerror(errno));
    source_.file = file_.get();
    start();
  }
  // From `bytes` in memory; `name` stands for them in errors.
  PngReader(std::string_view bytes, const std::string& name) : name_(name), structs_(&error_) {
    source_.data = reinterpret_cast<const unsigned char*>(bytes.data());
    source_.size = bytes.size();
    start();
  }

  [[noreturn]] void fail() const { throw_file_error(name_, std::string("corrupt PNG: ") + error_.message); }

  const std::string& name() const { return name_; }
  png_structp png() const { return structs_.png(); }
  png_infop info() const { return structs_.info(); }

 private:
  void start() {
    png_byte signature[8];
    size_t got = source_.read(signature, sizeof signature);
    if (got != sizeof signature || png_sig_cmp(signature, 0, sizeof signature) != 0) {
      throw_file_error(name_, "not a PNG file (bad signature)");
    }
    if (!png() || !info()) throw std::bad_alloc();
    png_set_read_fn(png(), &source_, read_from_source);
    png_set_sig_bytes(png(), sizeof signature);
    // A CRC mismatch means the file is damaged; do not silently drop chunks
    // (unless checksums are not checked: io/checksums.h).
    if (checksums::checked())
      png_set_crc_action(png(), PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
    else
      png_set_crc_action(png(), PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
  }

  std::string name_;
  PngErrorState error_;
  std::unique_ptr<std::FILE, FileCloser> file_;
  ByteSource source_;
  PngReadStructs structs_;
};

// Layout of the rows libpng hands back after the transforms set in
// read_header: gray or RGB (tRNS and the alpha channel are kept out of the
// luma but may still be present as a channel), 8 or 16 bits a sample.
struct RowLayout {
  png_uint_32 width = 0;
  png_uint_32 height = 0;
  int channels = 0;   // 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA
  int bit_depth = 0;  // 8 or 16
  size_t row_bytes = 0;
};

bool read_header(png_structp png, png_infop info, RowLayout* layout) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_info(png, info);
  int color_type = png_get_color_type(png, info);
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  // Scales 1/2/4-bit gray to the full 0..255 range (packing alone would not).
  if (color_type == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8) png_set_expand_gray_1_2_4_to_8(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  layout->width = png_get_image_width(png, info);
  layout->height = png_get_image_height(png, info);
  layout->channels = png_get_channels(png, info);
  layout->bit_depth = png_get_bit_depth(png, info);
  layout->row_bytes = png_get_rowbytes(png, info);
  return true;
}

bool read_rows(png_structp png, png_infop info, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_image(png, rows);
  // Reading to the end checks the CRCs and the zlib stream of what follows.
  png_read_end(png, info);
  return true;
}

}  // namespace

void read_png_size(const std::string& path, int& width, int& height) {
  PngReader reader(path);
  RowLayout layout;
  if (!read_header(reader.png(), reader.info(), &layout)) reader.fail();
  image_decoders::check_image_size(reader.name(), "PNG", layout.width, layout.height);
  width = static_cast<int>(layout.width);
  height = static_cast<int>(layout.height);
}

namespace {

GrayImage read_gray(PngReader& reader) {
  RowLayout layout;
  if (!read_header(reader.png(), reader.info(), &layout)) reader.fail();
  if (layout.bit_depth != 8 && layout.bit_depth != 16) {
    throw_file_error(reader.name(), "unsupported bit depth " + std::to_string(layout.bit_depth));
  }
  // Checked from the header before anything is allocated: a few bytes of
  // PNG can declare gigapixels.
  image_decoders::check_image_size(reader.name(), "PNG", layout.width, layout.height);

  std::vector<png_byte> bytes(layout.row_bytes * layout.height);
  std::vector<png_bytep> rows(layout.height);
  for (png_uint_32 y = 0; y < layout.height; ++y) rows[y] = bytes.data() + y * layout.row_bytes;
  if (!read_rows(reader.png(), reader.info(), rows.data())) reader.fail();

  GrayImage image;
  image.width = static_cast<int>(layout.width);
  image.height = static_cast<int>(layout.height);
  image.pixels.resize(static_cast<size_t>(layout.width) * layout.height);
  const bool wide = layout.bit_depth == 16;
  const double scale = wide ? 255.0 / 65535.0 : 1.0;  // in double, as every decoder (image_decoders.h)
  const size_t sample_bytes = wide ? 2 : 1;
  const size_t pixel_bytes = sample_bytes * layout.channels;
  const bool color = layout.channels >= 3;
  for (png_uint_32 y = 0; y < layout.height; ++y) {
    const png_byte* row = rows[y];
    float* out = image.pixels.data() + static_cast<size_t>(y) * layout.width;
    for (png_uint_32 x = 0; x < layout.width; ++x) {
      const png_byte* p = row + x * pixel_bytes;
      // PNG samples are big-endian.
      auto sample = [&](int c) {
        const png_byte* s = p + c * sample_bytes;
        return static_cast<double>(wide ? (s[0] << 8) | s[1] : s[0]) * scale;
      };
      out[x] = color ? image_decoders::luma(sample(0), sample(1), sample(2)) : static_cast<float>(sample(0));
    }
  }
  return image;
}

}  // namespace

GrayImage read_png_gray(const std::string& path) {
  PngReader reader(path);
  return read_gray(reader);
}

GrayImage decode_png_gray(std::string_view bytes, const std::string& name) {
  PngReader reader(bytes, name);
  return read_gray(reader);
}

// ---------------------------------------------------------------- writing

namespace {

struct WriteSink {
  std::string* bytes = nullptr;
  bool out_of_memory = false;
};

void write_to_string(png_structp png, png_bytep data, size_t length) {
  auto* sink = static_cast<WriteSink*>(png_get_io_ptr(png));
  try {
    sink->bytes->append(reinterpret_cast<const char*>(data), length);
  } catch (const std::bad_alloc&) {
    // An exception must not unwind through libpng's C frames.
    sink->out_of_memory = true;
    png_error(png, "out of memory");
  }
}

void flush_nothing(png_structp) {}

bool write_rows(png_structp png, png_infop info, int width, int height, int color_type, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8, color_type,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, info);
  return true;
}

// `label` names the destination in error messages (a path, or the function
// for in-memory encoding).
std::string encode_png(const std::string& label, int width, int height, int channels, const uint8_t* pixels,
                       size_t pixel_count) {
  if (width <= 0 || height <= 0) {
    throw_file_error(label, "cannot encode a " + std::to_string(width) + "x" + std::to_string(height) + " PNG");
  }
  const size_t row_bytes = static_cast<size_t>(width) * channels;
  if (pixel_count != row_bytes * static_cast<size_t>(height)) {
    throw_file_error(label, "pixel buffer holds " + std::to_string(pixel_count) + " bytes, expected " +
                                std::to_string(row_bytes * height) + " for " + std::to_string(width) + "x" +
                                std::to_string(height) + "x" + std::to_string(channels));
  }

  std::string bytes;
  PngErrorState error;
  WriteSink sink{&bytes};
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &error, on_png_error, on_png_warning);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  struct Destroy {
    png_structp& png;
    png_infop& info;
    ~Destroy() {
      if (png) png_destroy_write_struct(&png, info ? &info : nullptr);
    }
  } destroy{png, info};
  if (!png || !info) throw std::bad_alloc();
  png_set_write_fn(png, &sink, write_to_string, flush_nothing);
  // zlib level 3: most of level 6's size at a fraction of its time (the
  // synthetic data generator writes thousands of images).
  png_set_compression_level(png, 3);

  // libpng takes non-const row pointers but does not write through them.
  std::vector<png_bytep> rows(height);
  for (int y = 0; y < height; ++y) rows[y] = const_cast<png_bytep>(pixels + y * row_bytes);
  const int color_type = channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB;
  if (!write_rows(png, info, width, height, color_type, rows.data())) {
    if (sink.out_of_memory) throw std::bad_alloc();
    throw_file_error(label, std::string("PNG encoding failed: ") + error.message);
  }
  return bytes;
}

}  // namespace

std::string encode_png_gray8(int width, int height, const std::vector<uint8_t>& pixels) {
  return encode_png("encode_png_gray8", width, height, 1, pixels.data(), pixels.size());
}

std::string encode_png_rgb8(const RgbImage& image) {
  return encode_png("encode_png_rgb8", image.width, image.height, 3, image.pixels.data(), image.pixels.size());
}

void write_png_gray8(const std::string& path, int width, int height, const std::vector<uint8_t>& pixels) {
  write_file_atomic(path, encode_png(path, width, height, 1, pixels.data(), pixels.size()));
}

void write_png_rgb8(const std::string& path, const RgbImage& image) {
  write_file_atomic(path, encode_png(path, image.width, image.height, 3, image.pixels.data(), image.pixels.size()));
}

}  // namespace unetind
