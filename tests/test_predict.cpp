// predict's pipeline in the library (predict_files): what it writes, that
// it counts only the image's own pixels, quotes CSV fields, and goes on past
// a bad file.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "test_util.h"
#include "unetind/atomic_file.h"
#include "unetind/error.h"
#include "unetind/npy.h"
#include "unetind/png.h"
#include "unetind/predict.h"

namespace unetind {
namespace {

Predictor small_predictor(int size) {
  return Predictor(init_parameters(ModelConfig{}, Initializer::HeNormal, 3), make_backend("cpu", 2), size,
                   Precision::F32);
}

std::string write_image(const test::TempDir& dir, const std::string& name, int w, int h) {
  std::vector<uint8_t> pixels(static_cast<size_t>(w) * h);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 37);
  const std::string path = dir.str(name);
  write_png_gray8(path, w, h, pixels);
  return path;
}

TEST(PredictFiles, CountsOnlyTheImagesOwnPixels) {
  test::TempDir dir;
  Predictor p = small_predictor(32);
  PredictFilesOptions o;
  o.out_dir = dir.str("out");
  o.threshold = 0.0f;  // every probability is above 0: the count is the pixel count
  const auto result =
      predict_files(p, {write_image(dir, "tiny.png", 3, 2), write_image(dir, "wide.png", 40, 1)}, o);
  ASSERT_EQ(result.predicted.size(), 2u);
  EXPECT_EQ(result.predicted[0].defect_pixels, 6);   // not the 32 x 32 the model saw
  EXPECT_EQ(result.predicted[1].defect_pixels, 32);  // 40 x 1, cropped to 32 columns
  EXPECT_EQ(read_npy(dir.str("out/tiny_prob.npy")).shape, (Shape{32, 32}));
  EXPECT_EQ(read_png_gray(dir.str("out/tiny_mask.png")).width, 3);
  EXPECT_EQ(read_png_gray(dir.str("out/wide_overlay.png")).width, 40);
}

TEST(PredictFiles, QuotesFileNamesInTheCsv) {
  test::TempDir dir;
  Predictor p = small_predictor(16);
  PredictFilesOptions o;
  o.out_dir = dir.str("out");
  const std::string odd = write_image(dir, "\xc3\xafmg 1,\"x\".png", 16, 16);
  predict_files(p, {odd}, o);
  std::istringstream csv(read_file(dir.str("out/predictions.csv")));
  std::string header, row;
  std::getline(csv, header);
  std::getline(csv, row);
  std::string quoted = "\"";
  for (char c : odd) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  EXPECT_EQ(row.substr(0, quoted.size() + 2), quoted + "\",") << row;
}

TEST(PredictFiles, ABadFileIsReportedAndTheOthersArePredicted) {
  test::TempDir dir;
  Predictor p = small_predictor(16);
  write_file_atomic(dir.str("broken.png"), "not a png");
  PredictFilesOptions o;
  o.out_dir = dir.str("out");
  o.batch = 2;
  std::vector<std::string> reported;
  PredictHooks hooks;
  hooks.on_failure = [&](const FileFailure& f) { reported.push_back(f.message); };
  const auto result = predict_files(
      p, {write_image(dir, "a.png", 16, 16), dir.str("broken.png"), write_image(dir, "b.png", 20, 12)}, o, hooks);
  ASSERT_EQ(result.predicted.size(), 2u);
  ASSERT_EQ(result.failed.size(), 1u);
  EXPECT_EQ(result.failed[0].file, dir.str("broken.png"));
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_NE(reported[0].find("broken.png"), std::string::npos);
  const std::string csv = read_file(dir.str("out/predictions.csv"));
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 3);
  EXPECT_EQ(csv.find("broken"), std::string::npos);
}

TEST(PredictFiles, RefusesABadThresholdAndCollidingNames) {
  test::TempDir dir;
  Predictor p = small_predictor(16);
  PredictFilesOptions o;
  o.out_dir = dir.str("out");
  o.threshold = std::nanf("");
  EXPECT_THROW(predict_files(p, {}, o), Error);
  std::filesystem::create_directories(dir.str("x"));
  write_image(dir, "x/a.png", 16, 16);
  write_image(dir, "a.png", 16, 16);
  EXPECT_THROW(collect_image_files({dir.str("a.png"), dir.str("x")}), Error);
}

}  // namespace
}  // namespace unetind
