// Inputs a hostile or careless user gives the commands that read images and
// models (issue 17's table, the rows of predict, export, inspect, benchmark
// and demo): each gets a clear message naming the file or flag, a non-zero
// exit, and neither a crash, a hang, an allocation the input only claims to
// need, nor a silently wrong result.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "test_util.h"
#include "unetind/atomic_file.h"
#include "unetind/backend.h"
#include "unetind/model.h"
#include "unetind/png.h"

namespace unetind {
namespace {

namespace fs = std::filesystem;

std::string write_image(const test::TempDir& dir, const std::string& name, int w, int h) {
  std::vector<uint8_t> pixels(static_cast<size_t>(w) * h);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 37);
  write_png_gray8(dir.str(name), w, h, pixels);
  return dir.str(name);
}

std::string write_model(const test::TempDir& dir, const std::string& name, float fill = 0.0f) {
  Parameters p = init_parameters(ModelConfig{}, Initializer::HeNormal, 1);
  if (fill != 0.0f)
    for (NamedTensor& t : p.tensors) std::fill(t.tensor.data.begin(), t.tensor.data.end(), fill);
  save_parameters(dir.str(name), p);
  return dir.str(name);
}

// The same file with one float32 of the first tensor's data replaced.
void poke_first_weight(const std::string& path, float value) {
  std::string bytes = read_file(path);
  uint64_t header = 0;
  std::memcpy(&header, bytes.data(), 8);
  std::memcpy(bytes.data() + 8 + header, &value, sizeof value);
  write_file_atomic(path, bytes);
}

std::vector<std::string> csv_rows(const std::string& path) {
  std::istringstream in(read_file(path));
  std::vector<std::string> rows;
  for (std::string line; std::getline(in, line);) rows.push_back(line);
  return rows;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The largest resident set of the children this test has waited for, in MB.
double children_peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_CHILDREN, &u);
  return u.ru_maxrss / 1024.0;
}

TEST(HostileInput, AHugePngHeaderIsRefusedBeforeAllocatingAndTheOtherImagesArePredicted) {
  test::TempDir dir;
  const std::string model = write_model(dir, "w.safetensors");
  write_file_atomic(dir.str("huge.png"), test::png_declaring(100000, 100000));
  ASSERT_LT(fs::file_size(dir.str("huge.png")), 100u);
  const std::string good = write_image(dir, "good.png", 40, 30);
  std::string log;
  EXPECT_EQ(test::run_cli("predict --model " + model + " --image-size 64 --out " + dir.str("out") + " " +
                              dir.str("huge.png") + " " + good,
                          &log),
            1)
      << log;
  EXPECT_TRUE(contains(log, dir.str("huge.png") + ": image is 100000x100000 pixels, more than the limit of 67108864"))
      << log;
  EXPECT_TRUE(fs::exists(dir.str("out/good_mask.png"))) << log;
  EXPECT_EQ(csv_rows(dir.str("out/predictions.csv")).size(), 2u);
  // 10^10 pixels were never allocated: the whole run stays small.
  EXPECT_LT(children_peak_rss_mb(), 1500) << log;
}

TEST(HostileInput, ThePixelLimitIsOverriddenByFlagAndEnvironment) {
  test::TempDir dir;
  const std::string model = write_model(dir, "w.safetensors");
  const std::string image = write_image(dir, "a.png", 40, 30);  // 1200 pixels
  const std::string predict = "predict --model " + model + " --image-size 64 --out " + dir.str("out") + " " + image;
  std::string log;
  EXPECT_EQ(test::run_cli(predict + " --max-image-pixels 1000", &log), 1) << log;
  EXPECT_TRUE(contains(log, image + ": image is 40x30 pixels, more than the limit of 1000")) << log;
  EXPECT_EQ(test::run_cli(predict + " --max-image-pixels 1200", &log), 0) << log;
  setenv("UNETIND_MAX_IMAGE_PIXELS", "1199", 1);
  EXPECT_EQ(test::run_cli(predict, &log), 1) << log;
  unsetenv("UNETIND_MAX_IMAGE_PIXELS");
  EXPECT_TRUE(contains(log, "limit of 1199")) << log;
  EXPECT_NE(test::run_cli(predict + " --max-image-pixels 0", &log), 0);
  EXPECT_TRUE(contains(log, "--max-image-pixels")) << log;
}

TEST(HostileInput, NonFiniteWeightsAreRefusedWhenLoaded) {
  test::TempDir dir;
  const std::string image = write_image(dir, "a.png", 32, 32);
  for (float bad : {std::nanf(""), INFINITY}) {
    const std::string model = write_model(dir, "bad.safetensors");
    poke_first_weight(model, bad);
    for (const std::string& command :
         {"predict --model " + model + " --image-size 32 --out " + dir.str("out") + " " + image,
          "export --model " + model + " --out " + dir.str("bad.onnx"),
          "benchmark --model " + model + " --image-size 32 --batch 1 --iters 1 --warmup 0"}) {
      std::string log;
      EXPECT_EQ(test::run_cli(command, &log), 1) << command << "\n" << log;
      EXPECT_TRUE(contains(log, model + ": tensor 'UNet_v1/input_block/conv2d/kernel' holds")) << log;
      EXPECT_TRUE(contains(log, "must be finite")) << log;
    }
    EXPECT_FALSE(fs::exists(dir.str("out")));
    EXPECT_FALSE(fs::exists(dir.str("bad.onnx")));
  }
}

TEST(HostileInput, WeightsThatOverflowGiveAnErrorNotNanScores) {
  test::TempDir dir;
  const std::string model = write_model(dir, "huge.safetensors", 3e38f);  // finite, but overflows at once
  std::string log;
  EXPECT_EQ(test::run_cli("predict --model " + model + " --image-size 32 --out " + dir.str("out") + " " +
                              write_image(dir, "a.png", 32, 32),
                          &log),
            1)
      << log;
  EXPECT_TRUE(contains(log, "the model's output is not finite")) << log;
  EXPECT_FALSE(fs::exists(dir.str("out/predictions.csv")));
}

TEST(HostileInput, ANanThresholdIsRefusedLikeAnyOutOfRange) {
  test::TempDir dir;
  const std::string predict = "predict --model " + write_model(dir, "w.safetensors") + " --image-size 32 --out " +
                              dir.str("out") + " " + write_image(dir, "a.png", 32, 32) + " --threshold ";
  for (const std::string t : {"nan", "2", "-0.1"}) {
    std::string log;
    EXPECT_EQ(test::run_cli(predict + t, &log), 1) << t << ": " << log;
    EXPECT_TRUE(contains(log, "--threshold must be a number from 0 to 1")) << log;
    EXPECT_FALSE(fs::exists(dir.str("out")));
  }
}

TEST(HostileInput, OddFileNamesAreQuotedInPredictionsCsv) {
  test::TempDir dir;
  const std::string image = write_image(dir, "\xc3\xafmg 1,x.png", 32, 32);
  std::string log;
  ASSERT_EQ(test::run_cli("predict --model " + write_model(dir, "w.safetensors") + " --image-size 32 --out " +
                              dir.str("out") + " '" + image + "'",
                          &log),
            0)
      << log;
  const std::vector<std::string> rows = csv_rows(dir.str("out/predictions.csv"));
  ASSERT_EQ(rows.size(), 2u);
  // RFC 4180: the comma is inside the quotes, so the row has 4 fields.
  EXPECT_EQ(rows[1].substr(0, image.size() + 3), "\"" + image + "\",") << rows[1];
  const std::string rest = rows[1].substr(image.size() + 3);
  EXPECT_EQ(std::count(rest.begin(), rest.end(), ','), 2) << rows[1];
}

TEST(HostileInput, DefectPixelsCountOnlyTheImagesOwnPixels) {
  test::TempDir dir;
  std::string log;
  // Threshold 0: every pixel counts, so the count is the image's pixel count
  // (the 1 x 4096 row is cropped to the model's 512 columns).
  ASSERT_EQ(test::run_cli("predict --model " + write_model(dir, "w.safetensors") + " --threshold 0 --out " +
                              dir.str("out") + " " + write_image(dir, "dot.png", 1, 1) + " " +
                              write_image(dir, "row.png", 4096, 1),
                          &log),
            0)
      << log;
  const std::vector<std::string> rows = csv_rows(dir.str("out/predictions.csv"));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_TRUE(contains(rows[1], "dot.png") && contains(rows[1], ",1,1")) << rows[1];
  EXPECT_TRUE(contains(rows[2], "row.png") && contains(rows[2], ",512,1")) << rows[2];
}

TEST(HostileInput, ExportRefusesToWriteOverItsInput) {
  test::TempDir dir;
  const std::string model = write_model(dir, "w.safetensors");
  const std::string before = read_file(model);
  fs::create_symlink(model, dir.str("link.safetensors"));
  for (const std::string& out : {model, dir.str("link.safetensors"), dir.str("./w.safetensors")}) {
    std::string log;
    EXPECT_EQ(test::run_cli("export --model " + model + " --out " + out, &log), 1) << log;
    EXPECT_TRUE(contains(log, "is also an input")) << log;
    EXPECT_EQ(read_file(model), before);
  }
}

TEST(HostileInput, OutputNamesUpToTheFileSystemsLimitWork) {
  test::TempDir dir;
  // 255 bytes, the most a name may have: the temp file beside it shortens
  // its copy of the name instead of running past the limit.
  const std::string name = std::string(255 - std::strlen(".safetensors"), 'w') + ".safetensors";
  write_file_atomic(dir.str(name), "x");
  EXPECT_EQ(read_file(dir.str(name)), "x");
  std::string log;
  EXPECT_EQ(test::run_cli("init --out " + dir.str(std::string(252 - 12, 'v') + ".safetensors"), &log), 0) << log;
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 2) << "temp files left";
}

TEST(HostileInput, ASymlinkLoopInAnInputFolderIsSkippedByName) {
  test::TempDir dir;
  fs::create_directories(dir.str("in"));
  write_image(dir, "in/a.png", 32, 32);
  fs::create_symlink("loop.png", dir.str("in/loop.png"));
  fs::create_symlink(dir.str("in"), dir.str("in/again"));  // a loop of folders: not descended into
  std::string log;
  EXPECT_EQ(test::run_cli("predict --model " + write_model(dir, "w.safetensors") + " --image-size 32 --out " +
                              dir.str("out") + " " + dir.str("in"),
                          &log),
            1)
      << log;
  EXPECT_TRUE(contains(log, dir.str("in/loop.png") + ": cannot open for reading: Too many levels of symbolic links"))
      << log;
  EXPECT_TRUE(fs::exists(dir.str("out/a_mask.png"))) << log;
}

TEST(HostileInput, SizesNoMachineHoldsAreRefusedBeforeAllocating) {
  test::TempDir dir;
  const std::string model = write_model(dir, "w.safetensors");
  const std::string image = write_image(dir, "a.png", 32, 32);
  for (const std::string& command :
       {"predict --model " + model + " --image-size 100000 --out " + dir.str("out") + " " + image,
        "predict --model " + model + " --batch 1000000 --out " + dir.str("out") + " " + image,
        std::string("benchmark --image-size 100000 --iters 1 --warmup 0"),
        std::string("benchmark --mode train --batch 100000 --iters 1 --warmup 0")}) {
    std::string log;
    EXPECT_EQ(test::run_cli(command, &log), 1) << command << "\n" << log;
    EXPECT_TRUE(contains(log, "GB of memory, but this process may use")) << log;
    EXPECT_FALSE(fs::exists(dir.str("out")));
  }
}

TEST(HostileInput, FailedRunsCreateNothing) {
  test::TempDir dir;
  write_file_atomic(dir.str("bad.safetensors"), "not safetensors");
  std::string log;
  EXPECT_EQ(test::run_cli("predict --model " + dir.str("bad.safetensors") + " --out " + dir.str("out") + " " +
                              write_image(dir, "a.png", 32, 32),
                          &log),
            1);
  EXPECT_FALSE(fs::exists(dir.str("out"))) << log;
  EXPECT_NE(test::run_cli("demo --image-size 7 --out " + dir.str("demo"), &log), 0);
  EXPECT_TRUE(contains(log, "--image-size")) << log;
  EXPECT_NE(test::run_cli("demo --image-size 40 --out " + dir.str("demo"), &log), 0);
  EXPECT_TRUE(contains(log, "multiple of 16")) << log;
  EXPECT_FALSE(fs::exists(dir.str("demo"))) << log;
}

TEST(HostileInput, MessagesNameTheRealFlag) {
  std::string log;
  EXPECT_NE(test::run_cli("benchmark --warmup -1", &log), 0);
  EXPECT_TRUE(contains(log, "--warmup: must be at least 0, not -1")) << log;
  EXPECT_NE(test::run_cli("benchmark --iters 0", &log), 0);
  EXPECT_TRUE(contains(log, "--iters: must be at least 1, not 0")) << log;
  for (const std::string command : {"predict --model m --out o x", "evaluate --data d --model m", "benchmark",
                                    "serve --model m", "train --data d --out o", "demo"}) {
    for (const std::string threads : {"-1", "1000"}) {
      EXPECT_NE(test::run_cli(command + " --threads " + threads, &log), 0);
      EXPECT_TRUE(contains(log, "--threads: Value " + threads + " not in range 0 to " +
                                    std::to_string(available_cpus())))
          << command << ": " << log;
    }
  }
}

}  // namespace
}  // namespace unetind
