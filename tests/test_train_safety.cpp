// A training run's directory and options under a hostile or careless user
// (issue 17's table, the rows of train): the run directory is locked, a run
// in it is never silently replaced, a refused run leaves it as it was,
// options are checked before anything is created, errors say what is true,
// and a run that cannot start exits at once. Small sizes, one thread: each
// run takes a second or two.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <thread>

#include "test_util.h"
#include "unetind/atomic_file.h"
#include "unetind/dataset.h"
#include "unetind/error.h"
#include "unetind/loader.h"
#include "unetind/png.h"
#include "unetind/safetensors.h"
#include "unetind/synth.h"
#include "unetind/trainer.h"

namespace unetind {
namespace {

namespace fs = std::filesystem;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A DAGM-like class 1 with three defective and one defect-free Train image.
std::string make_data(const test::TempDir& dir, const std::string& name = "data") {
  write_synthetic_class(dir.str(name), {.class_id = 1, .size = 32, .train_defective = 3, .train_ok = 1,
                                        .test_defective = 1, .test_ok = 1, .seed = 2});
  return dir.str(name);
}

// `train` with small defaults, each unless `flags` gives that flag itself.
std::string train_command(const std::string& data, const std::string& out, const std::string& flags = "") {
  const std::vector<std::pair<std::string, std::string>> defaults = {
      {"--data", data}, {"--class", "1"},   {"--image-size", "32"},    {"--batch", "2"},
      {"--steps", "2"}, {"--threads", "1"}, {"--loader-threads", "1"}, {"--out", out}};
  std::string command = "train " + flags;
  for (const auto& [flag, value] : defaults)
    if (!contains(" " + flags + " ", " " + flag + " ")) command += " " + flag + " " + value;
  return command;
}

// Every file of a folder and its bytes.
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) files[e.path().filename().string()] = read_file(e.path().string());
  return files;
}

std::vector<std::string> defective_masks(const std::string& data) {
  std::vector<std::string> masks;
  for (const Sample& s : load_dagm_split(data, 1, Split::Train))
    if (s.defective) masks.push_back(s.mask_path);
  return masks;
}

TEST(TrainSafety, AHugePngHeaderInTheDataIsNamedBeforeAnythingIsAllocatedOrCreated) {
  test::TempDir dir;
  const std::string data = make_data(dir);
  std::string image;  // a defective one: the run trains on those
  for (const Sample& s : load_dagm_split(data, 1, Split::Train))
    if (s.defective) image = s.image_path;
  write_file_atomic(image, test::png_declaring(100000, 100000));
  std::string log;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(test::run_cli(train_command(data, dir.str("run")), &log), 1) << log;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(60));
  EXPECT_TRUE(contains(log, image + ": image is 100000x100000 pixels, more than the limit")) << log;
  EXPECT_FALSE(fs::exists(dir.str("run")));
}

TEST(TrainSafety, ASecondRunInTheSameDirectoryIsRefusedWhileTheFirstRuns) {
  test::TempDir dir;
  const std::string data = make_data(dir);
  const std::string run = dir.str("run");
  const pid_t first = test::spawn_cli(train_command(data, run, "--steps 100000"), dir.str("first.log"));
  for (int i = 0; i < 600 && !fs::exists(run + "/config.json"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(fs::exists(run + "/config.json")) << read_file(dir.str("first.log"));
  std::string log;
  for (const std::string flags : {"--steps 2", "--steps 2 --overwrite", "--steps 200000 --resume"}) {
    EXPECT_EQ(test::run_cli(train_command(data, run, flags), &log), 1) << flags << ": " << log;
    EXPECT_TRUE(contains(log, run + ": another training run is using this directory")) << log;
  }
  kill(first, SIGTERM);
  EXPECT_EQ(test::wait_exit_within(first, 120), 143) << read_file(dir.str("first.log"));
  // Once it has ended, the directory is free again.
  const int stopped_at = std::stoi(read_safetensors(run + "/checkpoint.safetensors").metadata.at("step"));
  EXPECT_EQ(test::run_cli(train_command(data, run, "--resume --steps " + std::to_string(stopped_at + 1)), &log), 0)
      << log;
}

TEST(TrainSafety, AFinishedRunIsNotReplacedWithoutOverwrite) {
  test::TempDir dir;
  const std::string data = make_data(dir);
  const std::string run = dir.str("run");
  std::string log;
  ASSERT_EQ(test::run_cli(train_command(data, run, "--steps 2"), &log), 0) << log;
  const auto before = snapshot(run);
  EXPECT_EQ(test::run_cli(train_command(data, run, "--steps 3 --seed 9"), &log), 1) << log;
  EXPECT_TRUE(contains(log, run + ": holds a training run at step 2 (checkpoint.safetensors): continue it with "
                                  "--resume, or replace it with --overwrite"))
      << log;
  EXPECT_EQ(snapshot(run), before);
  ASSERT_EQ(test::run_cli(train_command(data, run, "--steps 3 --seed 9 --overwrite"), &log), 0) << log;
  EXPECT_EQ(read_safetensors(run + "/checkpoint.safetensors").metadata.at("step"), "3");
  EXPECT_TRUE(contains(read_file(run + "/config.json"), "\"seed\": 9"));
}

TEST(TrainSafety, BadNumbersAreRefusedBeforeAnythingIsCreated) {
  test::TempDir dir;
  const std::string data = make_data(dir);
  const std::string run = dir.str("run");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--lr nan", "--lr must be a number in (0, inf), not nan"},
      {"--lr -1", "--lr must be a number in (0, inf), not -1"},
      {"--lr 0", "--lr must be a number in (0, inf), not 0"},
      {"--lr inf", "--lr must be a number in (0, inf), not inf"},
      {"--lr-decay-factor 1.5", "--lr-decay-factor must be a number in (0, 1], not 1.5"},
      {"--rmsprop-decay 1", "--rmsprop-decay must be a number in [0, 1), not 1"},
      {"--rmsprop-momentum nan", "--rmsprop-momentum must be a number in [0, 1), not nan"},
      {"--weight-decay -1e-5", "--weight-decay must be a number in [0, inf), not -1e-05"},
      {"--steps 0", "--steps must be at least 1, not 0"},
      {"--lr-decay-steps 0", "--lr-decay-steps must be at least 1, not 0"},
      {"--checkpoint-every -3", "--checkpoint-every must be at least 1, not -3"},
      {"--image-size 40", "--image-size must be a positive multiple of 16"},
      {"--image-size 100000", "GB of memory, but this process may use"},
      {"--loader-threads 0", "--loader-threads: Value 0 not in range 1 to"},
      {"--data " + dir.str("nowhere"), dir.str("nowhere") + ": dataset folder does not exist"},
      {"--init-from " + dir.str("none.safetensors"), dir.str("none.safetensors") + ": cannot open"},
      {"--device nowhere", "unknown device 'nowhere'"},
  };
  for (const auto& [flags, message] : cases) {
    std::string log;
    EXPECT_NE(test::run_cli(train_command(data, run, flags), &log), 0) << flags;
    EXPECT_TRUE(contains(log, message)) << flags << ": " << log;
    EXPECT_FALSE(fs::exists(run)) << flags;
  }
  // Refused after the run directory was made (and locked): the folders
  // made for it are removed again. (The CLI checks --device while parsing,
  // above; the library only when it makes the backend.)
  TrainOptions o;
  o.data_dir = data;
  o.image_size = 32;
  o.batch = 2;
  o.steps = 2;
  o.threads = 1;
  o.loader_threads = 1;
  o.out_dir = dir.str("a/b/run");
  o.device = "nowhere";
  try {
    train(o, {}, nullptr);
    ADD_FAILURE() << "a run on device 'nowhere' started";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "unknown device 'nowhere'")) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir.str("a")));
}

TEST(TrainSafety, ADivergingRunSaysTruthfullyWhatIsKept) {
  test::TempDir dir;
  const std::string data = make_data(dir);
  std::string log;
  EXPECT_EQ(test::run_cli(train_command(data, dir.str("run"), "--steps 20 --lr 1e30"), &log), 1) << log;
  EXPECT_TRUE(contains(log, "the loss is not finite")) << log;
  EXPECT_TRUE(contains(log, "no checkpoint had been written yet")) << log;
  EXPECT_FALSE(contains(log, "last good checkpoint")) << log;
  EXPECT_FALSE(fs::exists(dir.str("run/checkpoint.safetensors")));
}

TEST(TrainSafety, AnImpossibleBatchEndsAtOnce) {
  test::TempDir dir;
  const std::string data = make_data(dir);
  std::string log;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(test::run_cli("train --data " + data + " --class 1 --batch 100000 --steps 2 --out " + dir.str("run"),
                          &log),
            1)
      << log;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
  EXPECT_TRUE(contains(log, "training with --batch 100000 at --image-size 512 needs at least")) << log;
  EXPECT_FALSE(fs::exists(dir.str("run")));
}

TEST(TrainSafety, ASecondSignalEndsTheRunAtOnce) {
  // The first SIGTERM lets the step finish and writes a checkpoint; a second
  // one, for a user who will not wait for that, ends the process at once.
  // Steps of 4 images at 256 x 256 on one thread take far longer than the
  // 0.1 s between the two signals, so no checkpoint gets written.
  test::TempDir dir;
  const std::string data = make_data(dir);
  const std::string run = dir.str("run");
  const pid_t pid = test::spawn_cli(
      train_command(data, run, "--steps 100000 --image-size 256 --batch 4 --display-every 1"), dir.str("train.log"));
  auto lines = [&] {
    const std::string m = fs::exists(run + "/metrics.jsonl") ? read_file(run + "/metrics.jsonl") : "";
    return std::count(m.begin(), m.end(), '\n');
  };
  for (int i = 0; i < 1200 && lines() < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_GE(lines(), 1) << read_file(dir.str("train.log"));  // step 1 is done: the handlers are in place
  kill(pid, SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  kill(pid, SIGTERM);
  EXPECT_EQ(test::wait_exit_within(pid, 60), 128 + SIGTERM) << read_file(dir.str("train.log"));
  EXPECT_FALSE(fs::exists(run + "/checkpoint.safetensors")) << read_file(dir.str("train.log"));
}

TEST(TrainSafety, ARefusedResumeLeavesTheRunDirectoryUntouched) {
  test::TempDir dir;
  const std::string data = make_data(dir);
  const std::string run = dir.str("run");
  std::string log;
  ASSERT_EQ(test::run_cli(train_command(data, run, "--steps 6 --checkpoint-every 3"), &log), 0) << log;
  const auto before = snapshot(run);
  // Other data (one defective image fewer), another recipe, fewer steps.
  const std::string other = make_data(dir, "other");
  fs::remove(fs::path(other) / "Class1" / "train_list.csv");
  const std::string gone = defective_masks(other).back();
  for (const Sample& s : load_dagm_split(other, 1, Split::Train))
    if (s.mask_path == gone) {
      fs::remove(s.image_path);
      fs::remove(s.mask_path);
    }
  fs::remove(fs::path(other) / "Class1" / "Train" / "Label" / "Labels.txt");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {train_command(other, run, "--steps 9 --resume"),
       "cannot resume with --data " + other + ": the run was trained on 3 image(s), the data now has 2"},
      {train_command(data, run, "--steps 9 --resume --image-size 64"),
       "cannot resume with image_size = 64 (--image-size): the run was started with 32"},
      {train_command(data, run, "--steps 9 --resume --all-images"),
       "cannot resume with all_images = true (--all-images): the run was started with false"},
      {train_command(data, run, "--steps 3 --resume"),
       "the run has done 6 steps, more than --steps 3: give --steps above 6 to continue it"},
  };
  for (const auto& [command, message] : cases) {
    EXPECT_EQ(test::run_cli(command, &log), 1) << command << "\n" << log;
    EXPECT_TRUE(contains(log, message)) << log;
    EXPECT_EQ(snapshot(run), before) << command;
  }
  // Asking for the steps it has done is nothing to do, and says so.
  EXPECT_EQ(test::run_cli(train_command(data, run, "--steps 6 --resume"), &log), 0) << log;
  EXPECT_TRUE(contains(log, "has done its 6 steps already: nothing to do")) << log;
  EXPECT_EQ(snapshot(run), before);
}

TEST(TrainSafety, MasksThatDivideToNothingAreNamed) {
  test::TempDir dir;
  const std::string data = make_data(dir);
  const std::vector<std::string> masks = defective_masks(data);
  ASSERT_EQ(masks.size(), 3u);
  const GrayImage real = read_png_gray(masks[0]);
  std::vector<uint8_t> zero_one(real.pixels.size());
  for (size_t i = 0; i < zero_one.size(); ++i) zero_one[i] = real.pixels[i] > 0 ? 1 : 0;
  write_png_gray8(masks[0], real.width, real.height, zero_one);
  std::string log;
  EXPECT_EQ(test::run_cli(train_command(data, dir.str("run")), &log), 1) << log;
  EXPECT_TRUE(contains(log, masks[0] + ": mask values go up to 1.000000 only")) << log;
  EXPECT_TRUE(contains(log, "write them as 0 and 255")) << log;
  EXPECT_FALSE(fs::exists(dir.str("run")));
  EXPECT_NE(test::run_cli("evaluate --data " + data + " --class 1 --split Train --image-size 32 --model x", &log), 0);
  EXPECT_TRUE(contains(log, masks[0] + ": mask values go up to")) << log;

  // All-zero masks on rows that say defective: trained, with a warning
  // naming them.
  write_png_gray8(masks[0], real.width, real.height, std::vector<uint8_t>(zero_one.size(), 0));
  write_png_gray8(masks[1], real.width, real.height, std::vector<uint8_t>(zero_one.size(), 0));
  EXPECT_EQ(test::run_cli(train_command(data, dir.str("run")), &log), 0) << log;
  EXPECT_TRUE(contains(log, "warning: 2 defective image(s) have an all-zero mask and count as defect-free: " +
                                masks[0] + ", " + masks[1]))
      << log;
}

TEST(TrainSafety, TheLoaderStopsMidBatchWhenDestroyed) {
  // A batch of 5000 512 x 512 images takes several seconds to decode;
  // destroying the loader (the trainer failing, or stopping) must not wait
  // for it.
  test::TempDir dir;
  std::vector<uint8_t> pixels(512 * 512);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 7);
  write_png_gray8(dir.str("a.png"), 512, 512, pixels);
  const std::vector<Sample> samples(3, Sample{dir.str("a.png"), "", false});
  const auto start = std::chrono::steady_clock::now();
  {
    Loader loader(samples, LoaderConfig{5000, 16, false, false, true, 0, 1, 1});
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the worker is deep in its batch
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

}  // namespace
}  // namespace unetind
