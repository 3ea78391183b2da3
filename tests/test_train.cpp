// Training end to end through the CLI: it learns (in bf16 as well as in
// fp32), it resumes exactly after a kill, and bad data gets clear errors
// naming the file.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "test_util.h"
#include "unetind/atomic_file.h"
#include "unetind/evaluation.h"
#include "unetind/model.h"
#include "unetind/png.h"
#include "unetind/synth.h"
#include "unetind/trainer.h"

namespace unetind {
namespace {

namespace fs = std::filesystem;

std::string make_class(const test::TempDir& dir, int class_id, int size, int train_def, int test_def, int test_ok) {
  SynthConfig c;
  c.class_id = class_id;
  c.size = size;
  c.train_defective = train_def;
  c.train_ok = 4;
  c.test_defective = test_def;
  c.test_ok = test_ok;
  c.seed = 3;
  write_synthetic_class(dir.str("data"), c);
  return dir.str("data");
}

// Launches the CLI without waiting; returns its pid.
pid_t spawn_cli(const std::string& args, const std::string& log) {
  return test::spawn_shell(std::string(UNETIND_CLI) + " " + args, log);
}

bool wait_for_file(const std::string& path, int seconds) {
  for (int i = 0; i < seconds * 20; ++i) {
    if (fs::exists(path)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// The learning recipe of the two tests below: a few hundred steps at 128x128
// on a small synthetic class; returns the Test score of SPEC.md section 4
// (mean Dice at 0.5 over all Test images) of the trained model, evaluated in
// the precision it was trained in.
double train_and_score(const std::string& data, const std::string& run, Precision precision) {
  std::string log;
  EXPECT_EQ(test::run_cli("train --data " + data + " --class 1 --out " + run +
                              " --steps 400 --batch 4 --image-size 128 --lr 3e-4 --display-every 40 --seed 1" +
                              " --precision " + to_string(precision),
                          &log),
            0)
      << log;
  Predictor predictor(load_parameters(run + "/model.safetensors"), make_backend("cpu"), 128, precision);
  const EvalReport report = evaluate_samples(predictor, open_split(data, 1, Split::Test), {});
  const ThresholdResult& at_half = report.thresholds[kHalfThresholdIndex];
  EXPECT_FLOAT_EQ(at_half.threshold, 0.5f);
  // Predicting nothing scores 0.5 here (half the images are clean): the
  // defective images must be found too.
  EXPECT_GT(*at_half.dice_defective, 0.4) << format_table(report);
  return *at_half.dice_all;
}

TEST(Train, LearnsASmallSyntheticClass) {
  // Acceptance: a few hundred steps at 128x128 bring the Test score above 0.7.
  test::TempDir dir;
  const std::string data = make_class(dir, 1, 128, 40, 20, 20);
  EXPECT_GT(train_and_score(data, dir.str("run"), Precision::F32), 0.7);

  // The run directory holds what train promises.
  for (const char* f : {"model.safetensors", "checkpoint.safetensors", "config.json", "metrics.jsonl"})
    EXPECT_TRUE(fs::exists(dir.str(std::string("run/") + f))) << f;
  std::ifstream metrics(dir.str("run/metrics.jsonl"));
  std::string line;
  int lines = 0;
  while (std::getline(metrics, line)) {
    auto j = nlohmann::json::parse(line);
    for (const char* key : {"step", "loss", "reconstruction", "l2", "lr", "images_per_s"}) EXPECT_TRUE(j.contains(key)) << line;
    ++lines;
  }
  EXPECT_EQ(lines, 10);  // every 40 steps
}

TEST(Train, Bf16ReachesTheFp32TestScore) {
  // Acceptance: bf16 compute (fp32 master weights and optimiser state) trains
  // as well as fp32: the Test scores of the same recipe are within 0.02.
  SKIP_WITHOUT_BF16();
  test::TempDir dir;
  const std::string data = make_class(dir, 1, 128, 40, 20, 20);
  const double fp32 = train_and_score(data, dir.str("fp32"), Precision::F32);
  const double bf16 = train_and_score(data, dir.str("bf16"), Precision::BF16);
  EXPECT_GT(fp32, 0.9);  // both have learned the class, so the comparison means something
  EXPECT_NEAR(bf16, fp32, 0.02);
}

std::vector<float> flat_weights(const std::string& path) {
  std::vector<float> all;
  for (const auto& t : load_parameters(path).tensors) all.insert(all.end(), t.tensor.data.begin(), t.tensor.data.end());
  return all;
}

class Resume : public ::testing::TestWithParam<int> {};

// 20 steps in one go equal 20 steps with a kill (SIGTERM: graceful; SIGKILL:
// hard, from the last periodic checkpoint) and --resume in between.
TEST_P(Resume, IsExactAfterAKill) {
  const int sig = GetParam();
  test::TempDir dir;
  const std::string data = make_class(dir, 2, 64, 12, 2, 2);
  const std::string common = "train --data " + data + " --class 2 --batch 4 --image-size 64 --steps 20 --display-every 1 " +
                             "--checkpoint-every 3 --seed 5 --lr 3e-4 --threads 2 --out ";
  std::string log;
  ASSERT_EQ(test::run_cli(common + dir.str("straight"), &log), 0) << log;

  const std::string run = dir.str("killed");
  pid_t pid = spawn_cli(common + run, dir.str("killed.log"));
  // Kill once the first periodic checkpoint exists, while it trains on.
  ASSERT_TRUE(wait_for_file(run + "/checkpoint.safetensors", 120));
  kill(pid, sig);
  const int code = test::wait_exit(pid);
  const SafetensorsFile ckpt = read_safetensors(run + "/checkpoint.safetensors");
  const int stopped_at = std::stoi(ckpt.metadata.at("step"));
  if (sig == SIGTERM) {
    EXPECT_EQ(code, 143) << read_file(dir.str("killed.log"));
  } else {
    EXPECT_EQ(code, 128 + SIGKILL);
  }
  EXPECT_LT(stopped_at, 20) << "the kill came too late to test anything";

  ASSERT_EQ(test::run_cli(common + run + " --resume", &log), 0) << log;
  EXPECT_NE(log.find("resuming"), std::string::npos) << log;
  const auto a = flat_weights(dir.str("straight/model.safetensors"));
  const auto b = flat_weights(run + "/model.safetensors");
  EXPECT_LE(test::max_abs_diff(a, b), 1e-6) << "stopped at step " << stopped_at;
  // The log has no duplicated steps after the resume.
  std::ifstream metrics(run + "/metrics.jsonl");
  std::string line;
  int64_t expect_step = 1;
  while (std::getline(metrics, line)) EXPECT_EQ(nlohmann::json::parse(line)["step"].get<int64_t>(), expect_step++);
  EXPECT_EQ(expect_step, 21);
}

INSTANTIATE_TEST_SUITE_P(Signals, Resume, ::testing::Values(SIGTERM, SIGKILL),
                         [](const auto& info) { return info.param == SIGTERM ? "sigterm" : "sigkill"; });

TEST(Train, ResumeRefusesAnotherRecipe) {
  test::TempDir dir;
  const std::string data = make_class(dir, 2, 32, 4, 1, 1);
  const std::string common = "train --data " + data + " --class 2 --image-size 32 --out " + dir.str("run");
  std::string log;
  ASSERT_EQ(test::run_cli(common + " --batch 2 --steps 2", &log), 0) << log;
  EXPECT_NE(test::run_cli(common + " --batch 3 --steps 4 --resume", &log), 0);
  EXPECT_NE(log.find("checkpoint.safetensors"), std::string::npos) << log;
  EXPECT_NE(log.find("batch"), std::string::npos) << log;
}

TEST(Train, EvalEveryLogsTestMetrics) {
  test::TempDir dir;
  const std::string data = make_class(dir, 5, 32, 4, 2, 2);
  std::string log;
  ASSERT_EQ(test::run_cli("train --data " + data + " --class 5 --image-size 32 --batch 2 --steps 4 --eval-every 2 " +
                              "--display-every 4 --out " + dir.str("run"), &log), 0) << log;
  std::ifstream metrics(dir.str("run/metrics.jsonl"));
  std::string line;
  std::vector<int64_t> eval_steps;
  while (std::getline(metrics, line)) {
    auto j = nlohmann::json::parse(line);
    if (!j.contains("eval")) continue;
    eval_steps.push_back(j["step"].get<int64_t>());
    EXPECT_EQ(j["eval"]["n_images"].get<int>(), 4);
    EXPECT_EQ(j["eval"]["thresholds"].size(), 8u);
  }
  EXPECT_EQ(eval_steps, (std::vector<int64_t>{2, 4}));
}

TEST(Train, BadDataGetsErrorsNamingTheFile) {
  test::TempDir dir;
  const std::string data = make_class(dir, 4, 32, 4, 1, 1);
  // Two steps of 2 see all four defective Train images.
  const std::string train = "train --class 4 --image-size 32 --steps 2 --batch 2 --out " + dir.str("run") + " --data ";
  std::string log;

  // Missing class folder.
  EXPECT_NE(test::run_cli(train + dir.str("nowhere"), &log), 0);
  EXPECT_NE(log.find("nowhere"), std::string::npos) << log;

  // An unreadable PNG among the training images.
  const fs::path cls = fs::path(data) / "Class4";
  std::string defective_image;
  for (const Sample& s : load_dagm_split(data, 4, Split::Train))
    if (s.defective) defective_image = s.image_path;
  ASSERT_FALSE(defective_image.empty());
  const std::string saved = read_file(defective_image);
  write_file_atomic(defective_image, "not a png");
  EXPECT_NE(test::run_cli(train + data, &log), 0);
  EXPECT_NE(log.find(defective_image), std::string::npos) << log;
  write_file_atomic(defective_image, saved);

  // A mask of another size than its image.
  std::string mask;
  for (const Sample& s : load_dagm_split(data, 4, Split::Train))
    if (s.defective) mask = s.mask_path;
  const std::string saved_mask = read_file(mask);
  write_png_gray8(mask, 16, 16, std::vector<uint8_t>(256, 255));
  EXPECT_NE(test::run_cli(train + data, &log), 0);
  EXPECT_NE(log.find(mask), std::string::npos) << log;
  write_file_atomic(mask, saved_mask);

  // A label listed in Labels.txt but missing.
  fs::remove(mask);
  EXPECT_NE(test::run_cli(train + data, &log), 0);
  EXPECT_NE(log.find(fs::path(mask).filename().string()), std::string::npos) << log;
  write_file_atomic(mask, saved_mask);

  // No images at all.
  const fs::path empty = dir.path() / "empty" / "Class4" / "Train";
  fs::create_directories(empty);
  EXPECT_NE(test::run_cli(train + (dir.path() / "empty").string(), &log), 0);
  EXPECT_NE(log.find("empty"), std::string::npos) << log;
}

}  // namespace
}  // namespace unetind
