// TIFF through libtiff, read from memory. libtiff's messages go to this
// file's handlers (libtiff 4.5's per-file open options), never to stderr;
// the first error becomes the Error's text.
//
// 8- and 16-bit unsigned gray and RGB(A), in strips or tiles, planes
// interleaved or separate, are read sample by sample, so that 16 bits keep
// their precision. Everything else of at most 8 bits a sample (palette,
// YCbCr, CMYK, CIELab, 1-4 bit gray, another orientation) goes through
// libtiff's RGBA reader, which knows every such layout.
#include <tiffio.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>

#include "io/image_decoders.h"
#include "unetind/error.h"

namespace unetind::image_decoders {

namespace {

struct MemoryFile {
  const char* data = nullptr;
  toff_t size = 0;
  toff_t pos = 0;
  char error[512] = {};  // libtiff's first error
};

MemoryFile* file_of(thandle_t handle) { return static_cast<MemoryFile*>(handle); }

tmsize_t read_proc(thandle_t handle, void* out, tmsize_t length) {
  MemoryFile* f = file_of(handle);
  const toff_t left = f->pos < f->size ? f->size - f->pos : 0;
  const toff_t n = std::min<toff_t>(left, static_cast<toff_t>(length));
  if (n) std::memcpy(out, f->data + f->pos, n);
  f->pos += n;
  return static_cast<tmsize_t>(n);
}

tmsize_t write_proc(thandle_t, void*, tmsize_t) { return -1; }  // opened for reading only

toff_t seek_proc(thandle_t handle, toff_t offset, int whence) {
  MemoryFile* f = file_of(handle);
  // SEEK_CUR and SEEK_END offsets may be negative, passed modulo 2^64.
  const toff_t base = whence == SEEK_CUR ? f->pos : whence == SEEK_END ? f->size : 0;
  f->pos = base + offset;
  return f->pos;
}

int close_proc(thandle_t) { return 0; }
toff_t size_proc(thandle_t handle) { return file_of(handle)->size; }
int map_proc(thandle_t, void**, toff_t*) { return 0; }
void unmap_proc(thandle_t, void*, toff_t) {}

int on_error(TIFF*, void* user, const char* module, const char* format, va_list args) {
  MemoryFile* f = static_cast<MemoryFile*>(user);
  if (f->error[0] == '\0') {
    const int n = std::snprintf(f->error, sizeof f->error, "%s: ", module ? module : "libtiff");
    if (n > 0 && static_cast<size_t>(n) < sizeof f->error)
      std::vsnprintf(f->error + n, sizeof f->error - static_cast<size_t>(n), format, args);
  }
  return 1;  // handled: nothing printed
}

int on_warning(TIFF*, void*, const char*, const char*, va_list) { return 1; }  // a tolerable oddity: ignored

struct TiffCloser {
  void operator()(TIFF* tif) const { TIFFClose(tif); }
};

struct Layout {
  uint32_t width = 0, height = 0;
  uint16_t bits = 1, samples = 1, photometric = PHOTOMETRIC_MINISBLACK, planar = PLANARCONFIG_CONTIG;
  uint16_t sample_format = SAMPLEFORMAT_UINT, orientation = ORIENTATION_TOPLEFT;
  int channels() const { return photometric == PHOTOMETRIC_RGB ? 3 : 1; }
};

class TiffReader {
 public:
  TiffReader(std::string_view bytes, const std::string& name) : name_(name) {
    file_.data = bytes.data();
    file_.size = bytes.size();
    std::unique_ptr<TIFFOpenOptions, void (*)(TIFFOpenOptions*)> options(TIFFOpenOptionsAlloc(), TIFFOpenOptionsFree);
    if (!options) throw std::bad_alloc();
    TIFFOpenOptionsSetErrorHandlerExtR(options.get(), on_error, &file_);
    TIFFOpenOptionsSetWarningHandlerExtR(options.get(), on_warning, &file_);
    // No single buffer beyond what the largest image file could need.
    TIFFOpenOptionsSetMaxSingleMemAlloc(options.get(), kMaxImageFileBytes);
    // "m": no memory mapping, every read goes through read_proc.
    tif_.reset(TIFFClientOpenExt(name.c_str(), "rm", &file_, read_proc, write_proc, seek_proc, close_proc, size_proc,
                                 map_proc, unmap_proc, options.get()));
    if (!tif_) fail("cannot open");
  }
  // libtiff holds a pointer to file_.
  TiffReader(const TiffReader&) = delete;
  TiffReader& operator=(const TiffReader&) = delete;

  [[noreturn]] void fail(const std::string& what) const {
    throw_file_error(name_, "corrupt or unsupported TIFF (" + what + ")" +
                                (file_.error[0] ? std::string(": ") + file_.error : std::string()));
  }

  TIFF* tif() const { return tif_.get(); }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  MemoryFile file_;
  std::unique_ptr<TIFF, TiffCloser> tif_;
};

Layout read_layout(const TiffReader& reader) {
  TIFF* tif = reader.tif();
  Layout l;
  if (!TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &l.width) || !TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &l.height))
    reader.fail("no image width or length");
  TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &l.bits);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &l.samples);
  TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &l.planar);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &l.sample_format);
  TIFFGetFieldDefaulted(tif, TIFFTAG_ORIENTATION, &l.orientation);
  if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &l.photometric))
    l.photometric = l.samples >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK;  // what libtiff assumes too
  return l;
}

// Whether the samples can be read as they are: 8 or 16 unsigned bits of
// gray or RGB, top row first.
bool samples_readable(const Layout& l) {
  const bool gray = l.photometric == PHOTOMETRIC_MINISBLACK || l.photometric == PHOTOMETRIC_MINISWHITE;
  const bool rgb = l.photometric == PHOTOMETRIC_RGB && l.samples >= 3;
  return (l.bits == 8 || l.bits == 16) && l.sample_format == SAMPLEFORMAT_UINT &&
         l.orientation == ORIENTATION_TOPLEFT && (gray || rgb);
}

// One plane's samples, row-major, `per_pixel` samples a pixel: all of them
// for interleaved planes (plane 0), one for a separate plane.
std::vector<uint8_t> read_plane(const TiffReader& reader, const Layout& l, uint16_t plane, size_t per_pixel) {
  TIFF* tif = reader.tif();
  const size_t sample_bytes = l.bits / 8;
  const size_t row_bytes = static_cast<size_t>(l.width) * per_pixel * sample_bytes;
  std::vector<uint8_t> out(row_bytes * l.height);
  if (!TIFFIsTiled(tif)) {
    if (static_cast<size_t>(TIFFScanlineSize64(tif)) != row_bytes) reader.fail("unexpected scanline size");
    for (uint32_t y = 0; y < l.height; ++y)
      if (TIFFReadScanline(tif, out.data() + y * row_bytes, y, plane) < 0) reader.fail("row " + std::to_string(y));
    return out;
  }
  uint32_t tile_width = 0, tile_height = 0;
  TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tile_width);
  TIFFGetField(tif, TIFFTAG_TILELENGTH, &tile_height);
  const size_t tile_row_bytes = static_cast<size_t>(tile_width) * per_pixel * sample_bytes;
  if (tile_width == 0 || tile_height == 0 || static_cast<size_t>(TIFFTileSize64(tif)) != tile_row_bytes * tile_height)
    reader.fail("unexpected tile size");
  std::vector<uint8_t> tile(tile_row_bytes * tile_height);
  for (uint32_t ty = 0; ty < l.height; ty += tile_height) {
    for (uint32_t tx = 0; tx < l.width; tx += tile_width) {
      if (TIFFReadTile(tif, tile.data(), tx, ty, 0, plane) < 0)
        reader.fail("tile at " + std::to_string(tx) + "," + std::to_string(ty));
      const size_t copy = std::min<size_t>(tile_width, l.width - tx) * per_pixel * sample_bytes;
      for (uint32_t y = ty; y < std::min(l.height, ty + tile_height); ++y)
        std::memcpy(out.data() + y * row_bytes + tx * per_pixel * sample_bytes, tile.data() + (y - ty) * tile_row_bytes,
                    copy);
    }
  }
  return out;
}

GrayImage read_samples(const TiffReader& reader, const Layout& l) {
  const bool separate = l.planar == PLANARCONFIG_SEPARATE;
  const int channels = l.channels();
  // Interleaved: one plane holding every sample; separate: one plane a channel.
  std::vector<std::vector<uint8_t>> planes;
  for (int c = 0; c < (separate ? channels : 1); ++c)
    planes.push_back(read_plane(reader, l, static_cast<uint16_t>(c), separate ? 1 : l.samples));
  const size_t stride = separate ? 1 : l.samples;  // samples from one pixel to the next in a plane
  const bool wide = l.bits == 16;
  const double max = wide ? 65535.0 : 255.0;
  const double scale = 255.0 / max;
  // libtiff hands 16-bit samples over in the host's byte order.
  auto sample = [&](int c, size_t pixel) -> double {
    const std::vector<uint8_t>& p = planes[separate ? c : 0];
    const size_t index = pixel * stride + (separate ? 0 : c);
    if (!wide) return p[index];
    uint16_t v;
    std::memcpy(&v, p.data() + 2 * index, 2);
    return v;
  };
  GrayImage image;
  image.width = static_cast<int>(l.width);
  image.height = static_cast<int>(l.height);
  image.pixels.resize(static_cast<size_t>(l.width) * l.height);
  for (size_t i = 0; i < image.pixels.size(); ++i) {
    if (channels == 3) {
      image.pixels[i] = luma(sample(0, i) * scale, sample(1, i) * scale, sample(2, i) * scale);
    } else {
      const double v = sample(0, i);
      image.pixels[i] = static_cast<float>((l.photometric == PHOTOMETRIC_MINISWHITE ? max - v : v) * scale);
    }
  }
  return image;
}

GrayImage read_rgba(const TiffReader& reader, const Layout& l) {
  char message[1024] = {};
  if (!TIFFRGBAImageOK(reader.tif(), message)) reader.fail(message);
  std::vector<uint32_t> raster(static_cast<size_t>(l.width) * l.height);
  if (!TIFFReadRGBAImageOriented(reader.tif(), l.width, l.height, raster.data(), ORIENTATION_TOPLEFT, 1))
    reader.fail("pixel data");
  GrayImage image;
  image.width = static_cast<int>(l.width);
  image.height = static_cast<int>(l.height);
  image.pixels.resize(raster.size());
  for (size_t i = 0; i < raster.size(); ++i)
    image.pixels[i] = luma(TIFFGetR(raster[i]), TIFFGetG(raster[i]), TIFFGetB(raster[i]));
  return image;
}

}  // namespace

GrayImage decode_tiff(std::string_view bytes, const std::string& name) {
  const TiffReader reader(bytes, name);
  const Layout l = read_layout(reader);
  check_image_size(name, "TIFF", l.width, l.height);
  if (samples_readable(l)) return read_samples(reader, l);
  if (l.bits <= 8) return read_rgba(reader, l);
  throw_file_error(name, "TIFF of " + std::to_string(l.bits) + "-bit samples (format " +
                             std::to_string(l.sample_format) + ", photometric " + std::to_string(l.photometric) +
                             ", orientation " + std::to_string(l.orientation) +
                             ") is not read: over 8 bits, unsigned gray or RGB, top row first, are");
}

}  // namespace unetind::image_decoders
