// image_io: the formats cameras write, decoded by content. A real DAGM 2007
// image is converted at run time by tools that are not ours (Pillow through
// tests/images/convert_with_pillow.py, and ImageMagick's convert for the
// layouts Pillow does not write), then read back and predicted: the lossless
// files must give the PNG's pixels and probabilities exactly, the JPEG within
// what its compression allows (docs/image-formats.md has the figures). Bad
// and oversized files must give errors that name them.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>

#include "test_util.h"
#include "unetind/atomic_file.h"
#include "unetind/error.h"
#include "unetind/image_io.h"
#include "unetind/model.h"
#include "unetind/npy.h"
#include "unetind/png.h"
#include "unetind/predict.h"

namespace unetind {
namespace {

namespace fs = std::filesystem;
using test::expect_error_naming;

bool tool_exists(const std::string& name) {
  return std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0;
}

int run(const std::string& command) { return std::system((command + " >/dev/null 2>&1").c_str()); }

std::string dagm_image() { return test::shared_dir() + "/fixtures/dagm2007/Class1/Test/0002.PNG"; }

double max_pixel_diff(const GrayImage& a, const GrayImage& b) {
  EXPECT_EQ(a.width, b.width);
  EXPECT_EQ(a.height, b.height);
  return a.pixels.size() == b.pixels.size() ? test::max_abs_diff(a.pixels, b.pixels) : 1e9;
}

// The real image in every format, converted once for the suite. `skip`
// says why where a tool or ../shared is missing.
class ConvertedDagmImage : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (test::shared_dir().empty()) return skip("../shared is absent: no real DAGM image to convert");
    dir_ = new test::TempDir();
    fs::copy_file(dagm_image(), dir_->str("dagm.png"));
    if (std::string(UNETIND_PYTHON).empty()) return skip("python3 was not found at configure time: no Pillow");
    const int pillow = std::system(
        (std::string(UNETIND_PYTHON) + " " UNETIND_SOURCE_DIR "/tests/images/convert_with_pillow.py " + dagm_image() +
         " " + dir_->str() + " >/dev/null")
            .c_str());
    if (WEXITSTATUS(pillow) == 77) return skip("Pillow is not installed (Debian: python3-pil)");
    ASSERT_EQ(pillow, 0) << "convert_with_pillow.py failed";
    if (!tool_exists("convert")) return skip("ImageMagick's convert is not installed (Debian: imagemagick)");
    // What Pillow does not write: 16- and 12-bit PGM, RLE BMP, tiled and
    // compressed 16-bit TIFF, min-is-white, separate 16-bit RGB planes, palette.
    const std::map<std::string, std::string> magick = {
        {"magick_gray16.pgm", "-depth 16"},
        {"magick_gray12.pgm", "-depth 12"},
        {"magick_rle.bmp", "-compress RLE"},
        {"magick_tiled_zip16.tif", "-depth 16 -compress zip -define tiff:tile-geometry=128x128"},
        {"magick_miniswhite.tif", "-define quantum:polarity=min-is-white"},
        {"magick_planar_rgb16.tif", "-type TrueColor -depth 16 -interlace plane"},
        {"magick_palette.tif", "-type palette"},
    };
    for (const auto& [file, options] : magick)
      ASSERT_EQ(run("convert " + dagm_image() + " " + options + " " + dir_->str(file)), 0) << file;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static void skip(const std::string& why) { skip_reason_ = why; }

  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
  }
  static std::string path(const std::string& name) { return dir_->str(name); }

  static inline test::TempDir* dir_ = nullptr;
  static inline std::string skip_reason_;
};

// The files whose writer kept the PNG's pixels exactly.
const char* const kLossless[] = {"pillow_gray16.tif", "pillow_rgb8.tif",         "pillow_bmp.bmp",
                                 "pillow_pgm.pgm",   "pillow_ppm.ppm",         "magick_gray16.pgm",
                                 "magick_rle.bmp",    "magick_tiled_zip16.tif", "magick_planar_rgb16.tif"};

TEST_F(ConvertedDagmImage, LosslessFormatsGiveThePngsPixels) {
  const GrayImage png = read_image_gray(path("dagm.png"));
  ASSERT_EQ(png.width, 512);
  for (const char* file : kLossless) EXPECT_EQ(max_pixel_diff(read_image_gray(path(file)), png), 0.0) << file;
}

// Where ImageMagick's writing changed the pixels, the reference is what the
// file holds: read by Pillow (another decoder), or from the bytes.
TEST_F(ConvertedDagmImage, OtherLayoutsGiveWhatTheFileHolds) {
  const GrayImage png = read_image_gray(path("dagm.png"));
  // ImageMagick quantises for a palette, and labels min-is-white samples
  // without inverting them (the file's image is the negative): Pillow reads
  // both so too.
  for (const char* file : {"magick_palette.tif", "magick_miniswhite.tif"}) {
    const std::string raw = path(std::string(file) + ".pillow");
    ASSERT_EQ(run(std::string(UNETIND_PYTHON) + " " UNETIND_SOURCE_DIR "/tests/images/convert_with_pillow.py --decode " +
                  path(file) + " " + raw),
              0);
    const std::string bytes = read_file(raw);
    const std::vector<uint8_t> levels(bytes.begin(), bytes.end());  // char may be signed
    GrayImage pillow{512, 512, std::vector<float>(levels.begin(), levels.end())};
    EXPECT_EQ(max_pixel_diff(read_image_gray(path(file)), pillow), 0.0) << file;
  }
  EXPECT_EQ(read_image_gray(path("magick_miniswhite.tif")).pixels[0], 255 - png.pixels[0]);

  // 12 bits, maxval 4095: the samples as the file holds them (big-endian),
  // scaled by 255 / 4095, within MagickCore's 16-bit quantum.
  const std::string pgm = read_file(path("magick_gray12.pgm"));
  const std::string header = "P5\n512 512\n4095\n";
  ASSERT_EQ(pgm.substr(0, header.size()), header);
  GrayImage exact{512, 512, {}};
  for (size_t i = header.size(); i + 1 < pgm.size(); i += 2)
    exact.pixels.push_back(static_cast<float>(((static_cast<uint8_t>(pgm[i]) << 8) | static_cast<uint8_t>(pgm[i + 1])) *
                                              255.0 / 4095.0));
  const GrayImage twelve = read_image_gray(path("magick_gray12.pgm"));
  EXPECT_LE(max_pixel_diff(twelve, exact), 0.002);
  EXPECT_GT(max_pixel_diff(twelve, png), 0.0);  // really 12 bits, not 8
}

TEST_F(ConvertedDagmImage, JpegIsWithinItsCompression) {
  const GrayImage png = read_image_gray(path("dagm.png"));
  const GrayImage jpeg = read_image_gray(path("pillow_jpeg.jpg"));
  double sum = 0, max = 0;
  for (size_t i = 0; i < png.pixels.size(); ++i) {
    const double d = std::abs(static_cast<double>(jpeg.pixels[i]) - png.pixels[i]);
    sum += d;
    max = std::max(max, d);
  }
  const double mean = sum / static_cast<double>(png.pixels.size());
  std::printf("JPEG q90 vs PNG: mean |diff| %.3f, max %.0f gray levels\n", mean, max);
  // Quality 90 on DAGM's noisy texture: about 3 levels on average, 19 at
  // most (docs/image-formats.md).
  EXPECT_GT(mean, 0.0);  // it was compressed
  EXPECT_LT(mean, 4.0);
  EXPECT_LT(max, 40.0);
}

// The whole pipeline, as `predict` runs it, on a folder holding every
// format: the same probabilities as the PNG's.
TEST_F(ConvertedDagmImage, PredictGivesThePngsResultForEveryFormat) {
  Predictor predictor(init_parameters(ModelConfig{}, Initializer::HeNormal, 5), make_backend("cpu"), kModelImageSize,
                      Precision::F32);
  PredictFilesOptions options;
  options.out_dir = path("out");
  // One image a forward pass: the same executor for every file, so equal
  // pixels must give equal probabilities, bit for bit (batches of other
  // sizes differ in the last bits).
  options.batch = 1;
  const std::vector<std::string> files = collect_image_files({dir_->str()});
  EXPECT_EQ(files.size(), std::size(kLossless) + 5);  // the PNG, the JPEG and the other layouts too
  const PredictFilesResult result = predict_files(predictor, files, options);
  ASSERT_TRUE(result.failed.empty()) << result.failed.front().message;
  std::map<std::string, PredictedFile> by_stem;
  for (const PredictedFile& p : result.predicted) by_stem[fs::path(p.file).stem().string()] = p;
  auto probabilities = [&](const std::string& stem) { return read_npy(path("out/" + stem + "_prob.npy")).data; };
  const std::vector<float> reference = probabilities("dagm");
  for (const char* file : kLossless) {
    const std::string stem = fs::path(file).stem().string();
    EXPECT_EQ(test::max_abs_diff(probabilities(stem), reference), 0.0) << file;
    EXPECT_EQ(by_stem[stem].defect_score, by_stem["dagm"].defect_score) << file;
    EXPECT_EQ(by_stem[stem].defect_pixels, by_stem["dagm"].defect_pixels) << file;
  }
  const double jpeg_diff = test::max_abs_diff(probabilities("pillow_jpeg"), reference);
  const double jpeg_score = std::abs(by_stem["pillow_jpeg"].defect_score - by_stem["dagm"].defect_score);
  std::printf("JPEG q90 vs PNG, model output: max |probability diff| %.2e, score diff %.2e\n", jpeg_diff, jpeg_score);
  EXPECT_LT(jpeg_diff, 0.05);
  EXPECT_LT(jpeg_score, 0.02);
  EXPECT_EQ(by_stem["pillow_jpeg"].is_defective, by_stem["dagm"].is_defective);
}

// Damaged copies of each real file: an error naming the file, never a
// crash or a half-gray image.
TEST_F(ConvertedDagmImage, TruncatedFilesAreErrorsNamingThem) {
  for (const char* file : {"dagm.png", "pillow_jpeg.jpg", "pillow_gray16.tif", "magick_tiled_zip16.tif",
                           "pillow_bmp.bmp", "pillow_pgm.pgm", "magick_gray16.pgm"}) {
    const std::string bytes = read_file(path(file));
    fs::create_directories(path("cut"));  // not beside the others, which predict reads as a folder
    const std::string cut = path(std::string("cut/") + file);
    write_file_atomic(cut, bytes.substr(0, bytes.size() / 2));
    expect_error_naming(cut, [&] { read_image_gray(cut); });
  }
}

// A header that declares more than kMaxImagePixels is refused from the
// header, for every format.
TEST_F(ConvertedDagmImage, OversizedHeadersAreRefusedBeforeDecoding) {
  auto refused = [&](const std::string& name, std::string bytes, const std::string& what) {
    expect_error_naming(name, [&] { decode_image_gray(bytes, name); }, what);
  };
  // JPEG: the frame header (SOF0, FF C0) holds height and width, big-endian.
  std::string jpeg = read_file(path("pillow_jpeg.jpg"));
  const size_t sof = jpeg.find("\xff\xc0");
  ASSERT_NE(sof, std::string::npos);
  jpeg.replace(sof + 5, 4, std::string("\xff\x00\xff\x00", 4));  // 65280 x 65280
  refused("big.jpg", jpeg, "more than the limit");

  // TIFF (Pillow's: little-endian, one IFD): ImageWidth and ImageLength.
  std::string tiff = read_file(path("pillow_gray16.tif"));
  uint32_t ifd;
  std::memcpy(&ifd, tiff.data() + 4, 4);
  uint16_t entries;
  std::memcpy(&entries, tiff.data() + ifd, 2);
  for (uint16_t e = 0; e < entries; ++e) {
    char* entry = tiff.data() + ifd + 2 + 12 * e;
    uint16_t tag, type;
    std::memcpy(&tag, entry, 2);
    std::memcpy(&type, entry + 2, 2);
    if (tag != 256 && tag != 257) continue;
    const uint32_t big = 60000;
    if (type == 3) std::memcpy(entry + 8, &big, 2);  // SHORT (little-endian: the low half)
    if (type == 4) std::memcpy(entry + 8, &big, 4);  // LONG
  }
  refused("big.tif", tiff, "more than the limit");

  // MagickCore checks that the file holds the pixels its header declares
  // before it allocates them: refused, and named, either way.
  refused("big.pgm", "P5\n60000 60000\n255\n" + std::string(100, 'x'), "");
  std::string bmp = read_file(path("pillow_bmp.bmp"));
  const int32_t side = 60000;
  std::memcpy(bmp.data() + 18, &side, 4);
  std::memcpy(bmp.data() + 22, &side, 4);
  refused("big.bmp", bmp, "");
}

TEST(ImageIo, TellsTheFormatByContentNotByName) {
  EXPECT_EQ(detect_image_format("\x89PNG\r\n\x1a\nrest"), ImageFormat::Png);
  EXPECT_EQ(detect_image_format("\xff\xd8\xff\xe0"), ImageFormat::Jpeg);
  EXPECT_EQ(detect_image_format(std::string("II*\0", 4)), ImageFormat::Tiff);
  EXPECT_EQ(detect_image_format(std::string("MM\0*", 4)), ImageFormat::Tiff);
  EXPECT_EQ(detect_image_format("BM...."), ImageFormat::Bmp);
  EXPECT_EQ(detect_image_format("P5\n3 2\n255\n"), ImageFormat::Pnm);
  EXPECT_EQ(detect_image_format("P5x"), std::nullopt);
  EXPECT_EQ(detect_image_format("GIF89a"), std::nullopt);

  // A PNG named .jpg is read as the PNG it is.
  test::TempDir dir;
  const std::vector<uint8_t> pixels = {0, 50, 100, 150, 200, 255};
  write_png_gray8(dir.str("really_png.jpg"), 3, 2, pixels);
  const GrayImage image = read_image_gray(dir.str("really_png.jpg"));
  EXPECT_EQ(image.pixels, std::vector<float>(pixels.begin(), pixels.end()));

  write_file_atomic(dir.str("text.png"), "hello, not an image");
  expect_error_naming(dir.str("text.png"), [&] { read_image_gray(dir.str("text.png")); }, "unknown signature");
  write_file_atomic(dir.str("empty.bmp"), "");
  expect_error_naming(dir.str("empty.bmp"), [&] { read_image_gray(dir.str("empty.bmp")); }, "empty");
  expect_error_naming(dir.str("missing.tif"), [&] { read_image_gray(dir.str("missing.tif")); }, "cannot open");
  expect_error_naming(dir.str(), [&] { read_image_gray(dir.str()); }, "folder");
}

TEST(ImageIo, ListsImagesByTheirExtensions) {
  for (const char* name : {"a.png", "B.JPG", "c.jpeg", "d.tif", "e.TIFF", "f.bmp", "g.pgm", "h.ppm", "i.pbm", "j.pnm"})
    EXPECT_TRUE(has_image_extension(name)) << name;
  for (const char* name : {"a.txt", "b.gif", "c", "png", "Labels.txt"}) EXPECT_FALSE(has_image_extension(name)) << name;
}

// MagickCore sets OpenMP's per-thread thread count to its own limit (one);
// decoding must leave the model's setting as it was.
TEST(ImageIo, DecodingWithMagickCoreKeepsTheModelsThreadCount) {
  const std::string pgm = "P5\n2 1\n255\n\x10\x20";
  set_cpu_threads(2);
  const GrayImage image = decode_image_gray(pgm, "tiny.pgm");
  EXPECT_EQ(image.pixels, (std::vector<float>{16, 32}));
  EXPECT_EQ(cpu_threads(), 2);
}

}  // namespace
}  // namespace unetind
