// PNG I/O: our encoder checked by libpng's own decoder, our decoder checked on
// files written here through libpng directly (16-bit, palette, low bit depths,
// interlaced), on corrupt files, and on the real DAGM 2007 images.
#include <gtest/gtest.h>
#include <png.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <csetjmp>
#include <filesystem>
#include <functional>
#include <random>
#include <set>
#include <string>

#include "test_util.h"
#include "unetind/atomic_file.h"
#include "unetind/error.h"
#include "unetind/png.h"

namespace fs = std::filesystem;
using namespace unetind;
using unetind::test::expect_error_naming;

namespace {

class PngTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("unetind_test_png_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

// A PNG written with libpng's classic API. `rows` holds packed samples exactly
// as they go in the file (big-endian for 16 bits, several pixels a byte below 8).
struct RawPng {
  RawPng(int width, int height, int bit_depth, int color_type, bool interlaced = false)
      : width(width), height(height), bit_depth(bit_depth), color_type(color_type), interlaced(interlaced) {}

  int width;
  int height;
  int bit_depth;
  int color_type;
  bool interlaced;
  std::vector<png_color> palette;
  std::vector<png_byte> palette_alpha;  // tRNS for palette images
  std::vector<std::vector<png_byte>> rows;
};

// Plain data only between setjmp and libpng (see src/io/png.cpp).
bool write_raw_png_rows(png_structp png, png_infop info, const RawPng* raw, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_IHDR(png, info, raw->width, raw->height, raw->bit_depth, raw->color_type,
               raw->interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (!raw->palette.empty()) png_set_PLTE(png, info, raw->palette.data(), static_cast<int>(raw->palette.size()));
  if (!raw->palette_alpha.empty()) {
    png_set_tRNS(png, info, raw->palette_alpha.data(), static_cast<int>(raw->palette_alpha.size()), nullptr);
  }
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, info);
  return true;
}

void write_raw_png(const std::string& path, RawPng raw) {
  FILE* file = std::fopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr) << path;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_init_io(png, file);
  std::vector<png_bytep> rows;
  for (auto& row : raw.rows) rows.push_back(row.data());
  bool ok = write_raw_png_rows(png, info, &raw, rows.data());
  png_destroy_write_struct(&png, &info);
  std::fclose(file);
  ASSERT_TRUE(ok) << "libpng could not write the test image " << path;
}

// Decodes with libpng's simplified API (independent of our reader).
std::vector<uint8_t> decode_with_libpng(const std::string& bytes, png_uint_32 format, int& width, int& height) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  EXPECT_TRUE(png_image_begin_read_from_memory(&image, bytes.data(), bytes.size())) << image.message;
  image.format = format;
  std::vector<uint8_t> pixels(PNG_IMAGE_SIZE(image));
  EXPECT_TRUE(png_image_finish_read(&image, nullptr, pixels.data(), 0, nullptr)) << image.message;
  width = static_cast<int>(image.width);
  height = static_cast<int>(image.height);
  return pixels;
}

float luma(float r, float g, float b) { return 0.299f * r + 0.587f * g + 0.114f * b; }

std::vector<uint8_t> random_bytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

}  // namespace

TEST_F(PngTest, Gray8RoundTripsExactly) {
  const int w = 37, h = 23;
  std::vector<uint8_t> pixels = random_bytes(w * h, 1);
  pixels[0] = 0;
  pixels[1] = 255;
  write_png_gray8(path("g.png"), w, h, pixels);

  int width = 0, height = 0;
  read_png_size(path("g.png"), width, height);
  EXPECT_EQ(width, w);
  EXPECT_EQ(height, h);
  GrayImage image = read_png_gray(path("g.png"));
  ASSERT_EQ(image.width, w);
  ASSERT_EQ(image.height, h);
  ASSERT_EQ(image.pixels.size(), pixels.size());
  for (size_t i = 0; i < pixels.size(); ++i) ASSERT_EQ(image.pixels[i], static_cast<float>(pixels[i])) << i;

  // The in-memory encoder gives the bytes of the file, and libpng agrees.
  const std::string bytes = encode_png_gray8(w, h, pixels);
  EXPECT_EQ(bytes, read_file(path("g.png")));
  EXPECT_EQ(decode_with_libpng(bytes, PNG_FORMAT_GRAY, width, height), pixels);
}

TEST_F(PngTest, Rgb8RoundTripsExactly) {
  RgbImage rgb;
  rgb.width = 19;
  rgb.height = 31;
  rgb.pixels = random_bytes(rgb.width * rgb.height * 3, 2);
  write_png_rgb8(path("c.png"), rgb);
  const std::string bytes = read_file(path("c.png"));
  EXPECT_EQ(bytes, encode_png_rgb8(rgb));

  int width = 0, height = 0;
  EXPECT_EQ(decode_with_libpng(bytes, PNG_FORMAT_RGB, width, height), rgb.pixels);
  EXPECT_EQ(width, rgb.width);
  EXPECT_EQ(height, rgb.height);

  GrayImage gray = read_png_gray(path("c.png"));
  ASSERT_EQ(gray.pixels.size(), static_cast<size_t>(rgb.width * rgb.height));
  for (size_t i = 0; i < gray.pixels.size(); ++i) {
    const uint8_t* p = &rgb.pixels[3 * i];
    ASSERT_NEAR(gray.pixels[i], luma(p[0], p[1], p[2]), 1e-3) << i;
  }
}

TEST_F(PngTest, EncoderRejectsWrongBufferSize) {
  EXPECT_THROW(encode_png_gray8(4, 4, std::vector<uint8_t>(15)), Error);
  EXPECT_THROW(encode_png_gray8(0, 4, {}), Error);
  RgbImage rgb{2, 2, std::vector<uint8_t>(4 * 3 - 1)};
  EXPECT_THROW(encode_png_rgb8(rgb), Error);
  expect_error_naming(path("x.png"), [&] { write_png_rgb8(path("x.png"), rgb); });
  EXPECT_FALSE(fs::exists(path("x.png")));
}

TEST_F(PngTest, Reads16BitGrayScaled) {
  const std::vector<int> values = {0, 1, 257, 1000, 32768, 40000, 65534, 65535};
  RawPng raw(4, 2, 16, PNG_COLOR_TYPE_GRAY);
  raw.rows.assign(2, {});
  for (size_t i = 0; i < values.size(); ++i) {
    raw.rows[i / 4].push_back(static_cast<png_byte>(values[i] >> 8));
    raw.rows[i / 4].push_back(static_cast<png_byte>(values[i] & 0xff));
  }
  write_raw_png(path("g16.png"), raw);
  GrayImage image = read_png_gray(path("g16.png"));
  ASSERT_EQ(image.pixels.size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) EXPECT_NEAR(image.pixels[i], values[i] * 255.0 / 65535.0, 1e-4) << i;
}

TEST_F(PngTest, ReadsLowBitDepthGrayScaledToFullRange) {
  // 5 pixels a row, so the last byte of each row is only partly used.
  for (int depth : {1, 2, 4}) {
    const int max = (1 << depth) - 1;
    RawPng raw(5, 3, depth, PNG_COLOR_TYPE_GRAY);
    std::vector<int> samples;
    for (int y = 0; y < 3; ++y) {
      std::vector<png_byte> row((5 * depth + 7) / 8, 0);
      for (int x = 0; x < 5; ++x) {
        int v = (x + 2 * y) % (max + 1);
        samples.push_back(v);
        int bit = x * depth;
        row[bit / 8] |= static_cast<png_byte>(v << (8 - depth - bit % 8));
      }
      raw.rows.push_back(row);
    }
    write_raw_png(path("low.png"), raw);
    GrayImage image = read_png_gray(path("low.png"));
    ASSERT_EQ(image.pixels.size(), samples.size());
    for (size_t i = 0; i < samples.size(); ++i) {
      EXPECT_EQ(image.pixels[i], static_cast<float>(samples[i] * 255 / max)) << "depth " << depth << " pixel " << i;
    }
  }
}

TEST_F(PngTest, ReadsPaletteAsLuma) {
  const std::vector<png_color> palette = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {10, 200, 30}};
  const std::vector<std::vector<int>> indices = {{0, 1, 2}, {3, 3, 0}};
  for (int depth : {2, 8}) {
    RawPng raw(3, 2, depth, PNG_COLOR_TYPE_PALETTE);
    raw.palette = palette;
    raw.palette_alpha = {0, 128};  // transparency must not change the luma
    for (const auto& row_indices : indices) {
      std::vector<png_byte> row(depth == 8 ? 3 : 1, 0);
      for (int x = 0; x < 3; ++x) {
        if (depth == 8)
          row[x] = static_cast<png_byte>(row_indices[x]);
        else
          row[0] |= static_cast<png_byte>(row_indices[x] << (6 - 2 * x));
      }
      raw.rows.push_back(row);
    }
    write_raw_png(path("pal.png"), raw);
    GrayImage image = read_png_gray(path("pal.png"));
    ASSERT_EQ(image.pixels.size(), 6u);
    for (int i = 0; i < 6; ++i) {
      const png_color c = palette[indices[i / 3][i % 3]];
      EXPECT_NEAR(image.pixels[i], luma(c.red, c.green, c.blue), 1e-3) << "depth " << depth << " pixel " << i;
    }
  }
}

TEST_F(PngTest, ReadsRgba16AsLumaIgnoringAlpha) {
  const int w = 3;
  const std::vector<std::array<int, 4>> pixels = {
      {65535, 0, 0, 0}, {1000, 50000, 20000, 65535}, {12345, 54321, 65535, 7}};
  RawPng raw(w, 1, 16, PNG_COLOR_TYPE_RGB_ALPHA);
  raw.rows.assign(1, {});
  for (const auto& p : pixels) {
    for (int v : p) {
      raw.rows[0].push_back(static_cast<png_byte>(v >> 8));
      raw.rows[0].push_back(static_cast<png_byte>(v & 0xff));
    }
  }
  write_raw_png(path("rgba16.png"), raw);
  GrayImage image = read_png_gray(path("rgba16.png"));
  ASSERT_EQ(image.pixels.size(), 3u);
  for (int i = 0; i < w; ++i) {
    const double expected = (0.299 * pixels[i][0] + 0.587 * pixels[i][1] + 0.114 * pixels[i][2]) * 255.0 / 65535.0;
    EXPECT_NEAR(image.pixels[i], expected, 1e-3) << i;
  }
}

TEST_F(PngTest, ReadsGrayAlphaAsGray) {
  RawPng raw(2, 1, 8, PNG_COLOR_TYPE_GRAY_ALPHA);
  raw.rows = {{17, 0, 230, 255}};
  write_raw_png(path("ga.png"), raw);
  GrayImage image = read_png_gray(path("ga.png"));
  EXPECT_EQ(image.pixels, std::vector<float>({17.0f, 230.0f}));
}

TEST_F(PngTest, ReadsInterlaced) {
  const int w = 13, h = 11;
  std::vector<uint8_t> rgb = random_bytes(w * h * 3, 3);
  RawPng raw(w, h, 8, PNG_COLOR_TYPE_RGB, true);
  for (int y = 0; y < h; ++y) raw.rows.emplace_back(rgb.begin() + y * w * 3, rgb.begin() + (y + 1) * w * 3);
  write_raw_png(path("adam7.png"), raw);
  GrayImage image = read_png_gray(path("adam7.png"));
  ASSERT_EQ(image.width, w);
  ASSERT_EQ(image.height, h);
  for (int i = 0; i < w * h; ++i) {
    ASSERT_NEAR(image.pixels[i], luma(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]), 1e-3) << i;
  }
}

TEST_F(PngTest, RejectsMissingFile) {
  const std::string p = path("absent.png");
  expect_error_naming(
      p, [&] { read_png_gray(p); }, "cannot open");
  int w, h;
  expect_error_naming(
      p, [&] { read_png_size(p, w, h); }, "cannot open");
}

TEST_F(PngTest, RejectsGarbage) {
  const std::string p = path("garbage.png");
  write_file_atomic(p, std::string("this is not a PNG file at all, just text"));
  expect_error_naming(
      p, [&] { read_png_gray(p); }, "not a PNG");
  int w, h;
  expect_error_naming(
      p, [&] { read_png_size(p, w, h); }, "not a PNG");
  write_file_atomic(p, "");
  expect_error_naming(
      p, [&] { read_png_gray(p); }, "not a PNG");
}

TEST_F(PngTest, RejectsTruncatedFiles) {
  const std::string bytes = encode_png_gray8(64, 64, random_bytes(64 * 64, 4));
  const std::string p = path("cut.png");
  // Inside IHDR, inside IDAT, and just before IEND.
  for (size_t keep : {size_t{20}, bytes.size() / 2, bytes.size() - 12}) {
    write_file_atomic(p, bytes.substr(0, keep));
    expect_error_naming(p, [&] { read_png_gray(p); });
  }
  write_file_atomic(p, bytes.substr(0, 20));
  int w, h;
  expect_error_naming(p, [&] { read_png_size(p, w, h); });
}

TEST_F(PngTest, RejectsCrcErrors) {
  const std::string good = encode_png_gray8(32, 32, random_bytes(32 * 32, 5));
  const std::string p = path("crc.png");
  // IHDR data (bytes 16..28): the width changes but the CRC does not.
  std::string bad = good;
  bad[18] ^= 0x01;
  write_file_atomic(p, bad);
  expect_error_naming(
      p, [&] { read_png_gray(p); }, "CRC");
  int w, h;
  expect_error_naming(
      p, [&] { read_png_size(p, w, h); }, "CRC");
  // The IDAT CRC itself.
  const size_t idat = good.find("IDAT");
  ASSERT_NE(idat, std::string::npos);
  size_t idat_len = 0;
  for (int i = 0; i < 4; ++i) idat_len = idat_len << 8 | static_cast<unsigned char>(good[idat - 4 + i]);
  bad = good;
  bad[idat + 4 + idat_len] ^= 0x10;
  write_file_atomic(p, bad);
  expect_error_naming(
      p, [&] { read_png_gray(p); }, "CRC");
  // A flipped bit inside the compressed data (zlib's check may fire first).
  bad = good;
  bad[idat + 4 + 10] ^= 0x10;
  write_file_atomic(p, bad);
  expect_error_naming(p, [&] { read_png_gray(p); });
}

TEST_F(PngTest, ThePixelLimitIsCheckedFromTheHeaderAndCanBeChanged) {
  const std::string p = path("huge.png");
  write_file_atomic(p, test::png_declaring(100000, 100000));
  int w, h;
  for (const auto& read : std::vector<std::function<void()>>{[&] { read_png_gray(p); }, [&] { read_png_size(p, w, h); },
                                                            [&] { decode_png_gray(read_file(p), p); }})
    expect_error_naming(p, read, "image is 100000x100000 pixels, more than the limit of 67108864");

  EXPECT_EQ(max_image_pixels(), kMaxImagePixels);
  const std::string small = path("small.png");
  write_png_gray8(small, 30, 20, random_bytes(600, 6));
  set_max_image_pixels(599);
  expect_error_naming(small, [&] { read_png_gray(small); }, "image is 30x20 pixels, more than the limit of 599");
  set_max_image_pixels(600);
  EXPECT_EQ(read_png_gray(small).pixels.size(), 600u);
  EXPECT_THROW(set_max_image_pixels(0), Error);
  set_max_image_pixels(kMaxImagePixels);
}

TEST_F(PngTest, ReadsRealDagmImages) {
  const fs::path root = fs::path(UNETIND_SHARED_DIR) / "fixtures" / "dagm2007";
  if (!fs::is_directory(root)) GTEST_SKIP() << "no DAGM 2007 fixtures at " << root;
  int images = 0, masks = 0;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (!entry.is_regular_file() || entry.path().extension() != ".PNG") continue;
    const std::string p = entry.path().string();
    int w = 0, h = 0;
    read_png_size(p, w, h);
    EXPECT_EQ(w, 512) << p;
    EXPECT_EQ(h, 512) << p;
    GrayImage image = read_png_gray(p);
    ASSERT_EQ(image.width, 512) << p;
    ASSERT_EQ(image.height, 512) << p;
    ASSERT_EQ(image.pixels.size(), 512u * 512u) << p;
    const auto [lo, hi] = std::minmax_element(image.pixels.begin(), image.pixels.end());
    EXPECT_GE(*lo, 0.0f) << p;
    EXPECT_LE(*hi, 255.0f) << p;
    if (entry.path().stem().string().ends_with("_label")) {
      ++masks;
      const std::set<float> values(image.pixels.begin(), image.pixels.end());
      const std::set<float> binary = {0.0f, 255.0f};
      EXPECT_TRUE(std::includes(binary.begin(), binary.end(), values.begin(), values.end()))
          << p << " holds " << values.size() << " distinct values";
      EXPECT_TRUE(values.count(255.0f)) << p << " has no defect pixels";
    } else {
      ++images;
      EXPECT_GT(*hi - *lo, 10.0f) << p << " looks flat";
    }
  }
  EXPECT_EQ(images + masks, 33);
  EXPECT_GT(masks, 0);
}
