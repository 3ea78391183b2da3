// The C API (include/unetind/c_api.h): examples/inspect_image.c compiled as
// C11 by `cc` gives predict's probabilities; errors come back as codes and
// messages that name the file, never as exceptions; caller buffers with a
// row stride, float pixels and a threshold of the caller's.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "test_util.h"
#include "unetind/atomic_file.h"
#include "unetind/c_api.h"
#include "unetind/inspection.h"
#include "unetind/model.h"
#include "unetind/npy.h"
#include "unetind/png.h"

namespace unetind {
namespace {

// An initialised (untrained) TinyUNet: its output varies over the image.
std::string save_model(const test::TempDir& dir) {
  const std::string path = dir.str("w.safetensors");
  save_parameters(path, init_parameters(ModelConfig{}, Initializer::HeNormal, 11));
  return path;
}

// A 512 x 512 test image: a real DAGM image where ../shared is there, else
// a textured one with a dark blob (so the model's output varies).
std::string test_image(const test::TempDir& dir, int width = 512, int height = 512) {
  const std::string real = test::shared_dir() + "/fixtures/dagm2007/Class1/Test/0002.PNG";
  if (width == 512 && height == 512 && !test::shared_dir().empty()) return real;
  std::vector<uint8_t> pixels(static_cast<size_t>(width) * height);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      const bool blob = (x - width / 3) * (x - width / 3) + (y - height / 2) * (y - height / 2) < 400;
      pixels[static_cast<size_t>(y) * width + x] = blob ? 20 : static_cast<uint8_t>(128 + 60 * std::sin(x * 0.3 + y * 0.2));
    }
  const std::string path = dir.str("image_" + std::to_string(width) + "x" + std::to_string(height) + ".png");
  write_png_gray8(path, width, height, pixels);
  return path;
}

std::vector<float> read_f32(const std::string& path) {
  const std::string bytes = read_file(path);
  std::vector<float> values(bytes.size() / sizeof(float));
  std::memcpy(values.data(), bytes.data(), values.size() * sizeof(float));
  return values;
}

// Compiles the example as C (not C++), warnings as errors.
std::string compile_example(const test::TempDir& dir) {
  const std::string exe = dir.str("inspect_image");
  const std::string command = std::string("cc " UNETIND_EXAMPLE_CFLAGS " -std=c11 -Wall -Wextra -Werror -pedantic -I") +
                              UNETIND_SOURCE_DIR +
                              "/include " + UNETIND_SOURCE_DIR + "/examples/inspect_image.c -L" +
                              UNETIND_C_LIBRARY_DIR + " -lunetind_c -Wl,-rpath," + UNETIND_C_LIBRARY_DIR + " -o " +
                              exe + " 2>" + dir.str("cc.log");
  EXPECT_EQ(std::system(command.c_str()), 0) << read_file(dir.str("cc.log"));
  return exe;
}

TEST(CApi, TheCExampleGivesPredictsProbabilities) {
  if (std::system("command -v cc >/dev/null 2>&1") != 0) GTEST_SKIP() << "no C compiler `cc` on the PATH";
  test::TempDir dir;
  const std::string kModel = save_model(dir);
  const std::string exe = compile_example(dir);
  for (const auto& [width, height] : {std::pair{512, 512}, std::pair{300, 200}}) {
    const std::string image = test_image(dir, width, height);
    std::string out;
    ASSERT_EQ(test::run_cli("predict --model " + kModel + " --out " + dir.str("pred") + " " + image, &out), 0) << out;
    const std::string stem = std::filesystem::path(image).stem().string();
    const std::vector<float> predicted = read_npy(dir.str("pred/" + stem + "_prob.npy")).data;  // 512 x 512

    const std::string f32 = dir.str(stem + ".f32");
    const std::string command = exe + " " + kModel + " " + image + " " + f32 + " > " + dir.str("c.out") + " 2>&1";
    ASSERT_EQ(std::system(command.c_str()), 0) << read_file(dir.str("c.out"));
    const std::vector<float> ours = read_f32(f32);  // the image's own geometry
    ASSERT_EQ(ours.size(), static_cast<size_t>(width) * height);
    // predict's output is the model's 512 x 512 view; map it back as the
    // C API does (for 512 x 512 it is the same).
    const std::vector<float> expected = crop_or_pad(predicted, kModelImageSize, kModelImageSize, width, height);
    EXPECT_LE(test::max_abs_diff(ours, expected), 1e-6) << width << "x" << height;
    const std::string printed = read_file(dir.str("c.out"));
    EXPECT_NE(printed.find("the default"), std::string::npos) << printed;  // the file carries no threshold
  }
  // A file that is not an image: the program fails with the library's
  // message, which names the file.
  const std::string bad = dir.str("bad.png");
  write_file_atomic(bad, "not an image");
  std::string printed;
  EXPECT_NE(test::run_shell(exe + " " + kModel + " " + bad + " " + dir.str("bad.f32"), &printed), 0) << printed;
  EXPECT_NE(printed.find("reading the image: " + bad + ": "), std::string::npos) << printed;
}

TEST(CApi, ErrorsAreCodesWithMessagesNamingTheFile) {
  test::TempDir dir;
  const std::string kModel = save_model(dir);
  unetind_model* model = reinterpret_cast<unetind_model*>(1);
  const std::string missing = dir.str("missing.safetensors");
  EXPECT_EQ(unetind_model_load(missing.c_str(), nullptr, &model), UNETIND_ERROR_FILE);
  EXPECT_EQ(model, nullptr);
  EXPECT_NE(std::string(unetind_last_error()).find(missing), std::string::npos) << unetind_last_error();

  const std::string junk = dir.str("junk.safetensors");
  write_file_atomic(junk, "not a safetensors file at all");
  EXPECT_EQ(unetind_model_load(junk.c_str(), nullptr, &model), UNETIND_ERROR_FILE);
  EXPECT_NE(std::string(unetind_last_error()).find(junk), std::string::npos) << unetind_last_error();

  unetind_model_options options{"cpu", "fp64", 0, 0};
  EXPECT_EQ(unetind_model_load(kModel.c_str(), &options, &model), UNETIND_ERROR_ARGUMENT);
  EXPECT_NE(std::string(unetind_last_error()).find("fp64"), std::string::npos) << unetind_last_error();
  EXPECT_EQ(unetind_model_load(nullptr, nullptr, &model), UNETIND_ERROR_ARGUMENT);
  EXPECT_EQ(unetind_model_load(kModel.c_str(), nullptr, nullptr), UNETIND_ERROR_ARGUMENT);

  unetind_image* image = nullptr;
  const std::string not_image = dir.str("notes.png");
  write_file_atomic(not_image, "hello");
  EXPECT_EQ(unetind_image_read(not_image.c_str(), &image), UNETIND_ERROR_FILE);
  EXPECT_EQ(image, nullptr);
  EXPECT_NE(std::string(unetind_last_error()).find(not_image), std::string::npos) << unetind_last_error();

  ASSERT_EQ(unetind_model_load(kModel.c_str(), nullptr, &model), UNETIND_OK) << unetind_last_error();
  EXPECT_STREQ(unetind_last_error(), "");
  const uint8_t pixels[4] = {1, 2, 3, 4};
  unetind_result result;
  EXPECT_EQ(unetind_model_inspect(model, nullptr, UNETIND_PIXELS_U8, 2, 2, 0, nullptr, nullptr, &result),
            UNETIND_ERROR_ARGUMENT);
  EXPECT_EQ(unetind_model_inspect(model, pixels, UNETIND_PIXELS_U8, 0, 2, 0, nullptr, nullptr, &result),
            UNETIND_ERROR_ARGUMENT);
  EXPECT_EQ(unetind_model_inspect(model, pixels, UNETIND_PIXELS_U8, 2, 2, 1, nullptr, nullptr, &result),
            UNETIND_ERROR_ARGUMENT);  // a stride shorter than a row
  EXPECT_NE(std::string(unetind_last_error()).find("stride"), std::string::npos) << unetind_last_error();
  EXPECT_EQ(unetind_model_inspect(model, pixels, 7, 2, 2, 0, nullptr, nullptr, &result), UNETIND_ERROR_ARGUMENT);
  const float nan_pixels[4] = {0, NAN, 0, 0};
  EXPECT_EQ(unetind_model_inspect(model, nan_pixels, UNETIND_PIXELS_F32, 2, 2, 0, nullptr, nullptr, &result),
            UNETIND_ERROR_ARGUMENT);
  EXPECT_EQ(unetind_model_set_threshold(model, 1.5f), UNETIND_ERROR_ARGUMENT);
  EXPECT_EQ(unetind_model_set_threshold(nullptr, 0.5f), UNETIND_ERROR_ARGUMENT);
  EXPECT_EQ(unetind_model_inspect(model, pixels, UNETIND_PIXELS_U8, 2, 2, 0, nullptr, nullptr, &result), UNETIND_OK);
  unetind_model_free(model);
  unetind_model_free(nullptr);
  unetind_image_free(nullptr);
}

// A camera's buffer: rows with padding at their end, 8-bit; the same image
// as packed floats, and already scaled to [-1, 1], gives the same answer.
TEST(CApi, StridedBytesFloatsAndScaledFloatsAgree) {
  test::TempDir dir;
  const std::string kModel = save_model(dir);
  unetind_model* model = nullptr;
  const unetind_model_options options{nullptr, nullptr, 64, 0};
  ASSERT_EQ(unetind_model_load(kModel.c_str(), &options, &model), UNETIND_OK) << unetind_last_error();
  EXPECT_EQ(unetind_model_image_size(model), 64);
  const int width = 50, height = 70, stride = 64;
  std::vector<uint8_t> padded(static_cast<size_t>(stride) * height, 77);
  std::vector<float> packed(static_cast<size_t>(width) * height), scaled(packed.size());
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      const auto v = static_cast<uint8_t>((x * 7 + y * 13) % 256);
      padded[static_cast<size_t>(y) * stride + x] = v;
      packed[static_cast<size_t>(y) * width + x] = v;
      scaled[static_cast<size_t>(y) * width + x] = v / 127.5f - 1.0f;
    }
  auto run = [&](const void* pixels, unetind_pixel_type type, size_t row_stride, std::vector<uint8_t>* mask) {
    std::vector<float> probs(packed.size());
    unetind_result r;
    EXPECT_EQ(unetind_model_inspect(model, pixels, type, width, height, row_stride, probs.data(),
                                    mask ? mask->data() : nullptr, &r),
              UNETIND_OK)
        << unetind_last_error();
    return std::pair{probs, r};
  };
  std::vector<uint8_t> mask(packed.size());
  const auto [from_bytes, r] = run(padded.data(), UNETIND_PIXELS_U8, stride, &mask);
  EXPECT_EQ(run(packed.data(), UNETIND_PIXELS_F32, 0, nullptr).first, from_bytes);
  EXPECT_LE(test::max_abs_diff(run(scaled.data(), UNETIND_PIXELS_F32_SCALED, 0, nullptr).first, from_bytes), 1e-6);
  float highest = 0;
  int64_t above = 0;
  for (size_t i = 0; i < from_bytes.size(); ++i) {
    highest = std::max(highest, from_bytes[i]);
    above += from_bytes[i] > r.threshold;
    EXPECT_EQ(mask[i], from_bytes[i] > r.threshold ? 255 : 0);
  }
  EXPECT_EQ(r.threshold, 0.5f);
  EXPECT_EQ(r.defect_score, highest);
  EXPECT_EQ(r.defect_pixels, above);
  EXPECT_EQ(r.is_defective, highest > 0.5f);

  // A threshold of the caller's: below the score, so the decision flips on.
  ASSERT_EQ(unetind_model_set_threshold(model, r.defect_score / 2), UNETIND_OK);
  EXPECT_STREQ(unetind_model_threshold_source(model), "unetind_model_set_threshold");
  const auto [again, r2] = run(padded.data(), UNETIND_PIXELS_U8, stride, nullptr);
  EXPECT_EQ(r2.threshold, r.defect_score / 2);
  EXPECT_TRUE(r2.is_defective);
  unetind_model_free(model);
}

}  // namespace
}  // namespace unetind
