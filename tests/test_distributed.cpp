// Data-parallel training through the CLI under mpirun (two ranks on this
// machine): it gives the weights of one process on the same global batch, a
// rank that is killed stops the run and --resume continues it exactly, a
// stop signal on one rank stops both at the same step, and a resume keeps the
// number of processes. Skips visibly without MPI in the build or mpirun.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "test_util.h"
#include "unetind/atomic_file.h"
#include "unetind/model.h"
#include "unetind/safetensors.h"
#include "unetind/synth.h"

namespace unetind {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

#if defined(UNETIND_HAVE_MPI) && defined(UNETIND_MPIRUN)
constexpr const char* kMpirun = UNETIND_MPIRUN;
#else
constexpr const char* kMpirun = nullptr;
#endif

#define REQUIRE_MPIRUN()                                                                                 \
  if (!kMpirun) GTEST_SKIP() << "built without MPI (CMake found none; Debian: libopenmpi-dev)";         \
  if (!fs::exists(kMpirun)) GTEST_SKIP() << "no " << kMpirun << " (Debian: openmpi-bin)"

// Two ranks; --oversubscribe as CI's 2 cores need, and root's permission
// where the tests run as root.
std::string mpirun(int ranks) {
  std::string cmd = std::string(kMpirun) + " --oversubscribe -np " + std::to_string(ranks);
  if (geteuid() == 0) cmd += " --allow-run-as-root";
  return cmd + " " + UNETIND_CLI + " ";
}

// The process mpirun `launcher` started as MPI rank `rank`, or 0.
pid_t find_rank(pid_t launcher, int rank) {
  const std::string want = "OMPI_COMM_WORLD_RANK=" + std::to_string(rank);
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    std::getline(stat, line);
    const size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state;
    pid_t parent = 0;
    rest >> state >> parent;
    if (parent != launcher) continue;
    std::ifstream environ(entry.path() / "environ");
    std::string var;
    while (std::getline(environ, var, '\0'))
      if (var == want) return std::stoi(name);
  }
  return 0;
}

bool wait_for_file(const std::string& path, int seconds) {
  for (int i = 0; i < seconds * 50; ++i) {
    if (fs::exists(path)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

std::vector<float> flat_weights(const std::string& path) {
  std::vector<float> all;
  for (const auto& t : load_parameters(path).tensors) all.insert(all.end(), t.tensor.data.begin(), t.tensor.data.end());
  return all;
}

// The steps metrics.jsonl logs, in order.
std::vector<int64_t> logged_steps(const std::string& path) {
  std::ifstream metrics(path);
  std::string line;
  std::vector<int64_t> steps;
  while (std::getline(metrics, line)) steps.push_back(nlohmann::json::parse(line)["step"].get<int64_t>());
  return steps;
}

std::vector<int64_t> steps_up_to(int64_t last) {
  std::vector<int64_t> steps;
  for (int64_t s = 1; s <= last; ++s) steps.push_back(s);
  return steps;
}

std::string make_data(const test::TempDir& dir) {
  SynthConfig c;
  c.class_id = 1;
  c.size = 32;
  c.train_defective = 12;
  c.train_ok = 2;
  c.test_defective = 1;
  c.test_ok = 1;
  c.seed = 7;
  write_synthetic_class(dir.str("data"), c);
  return dir.str("data");
}

std::string recipe(const std::string& data, int steps, int batch = 8) {
  return "train --data " + data + " --class 1 --image-size 32 --loss x-entropy --lr 3e-4 --seed 2 --threads 1 " +
         "--display-every 1 --checkpoint-every 3 --batch " + std::to_string(batch) + " --steps " +
         std::to_string(steps) + " --out ";
}

// x-entropy averages exactly over equal shards: 20 steps of two ranks with a
// global batch of 8 are 20 steps of one process with batch 8.
TEST(Distributed, TwoProcessesTrainAsOne) {
  REQUIRE_MPIRUN();
  test::TempDir dir;
  const std::string data = make_data(dir), cmd = recipe(data, 20);
  std::string log;
  ASSERT_EQ(test::run_cli(cmd + dir.str("one"), &log), 0) << log;
  ASSERT_EQ(test::run_shell(mpirun(2) + cmd + dir.str("two"), &log), 0) << log;
  EXPECT_NE(log.find("on 2 processes"), std::string::npos) << log;

  const auto one = flat_weights(dir.str("one/model.safetensors"));
  const auto two = flat_weights(dir.str("two/model.safetensors"));
  const double diff = test::max_abs_diff(one, two);
  EXPECT_LE(diff, 1e-5 * test::scale_of(one)) << "largest weight " << test::scale_of(one);

  // Rank 0 alone logs: one line a step, and the run says how many ranks.
  EXPECT_EQ(logged_steps(dir.str("two/metrics.jsonl")), steps_up_to(20));
  EXPECT_EQ(nlohmann::json::parse(read_file(dir.str("two/config.json")))["ranks"].get<int>(), 2);
  EXPECT_EQ(read_safetensors(dir.str("two/checkpoint.safetensors")).metadata.at("ranks"), "2");
}

class StoppedRank : public ::testing::TestWithParam<int> {};

// Rank 1 gets the signal mid-run. SIGKILL: mpirun ends rank 0 within
// seconds, naming rank 1, and the last periodic checkpoint stays. SIGTERM:
// both ranks finish the same step, rank 0 checkpoints it, all exit 143.
// Either way --resume with the same two ranks reaches the uninterrupted
// run's weights.
TEST_P(StoppedRank, StopsTheRunAndResumeIsExact) {
  REQUIRE_MPIRUN();
  const int sig = GetParam();
  test::TempDir dir;
  const std::string data = make_data(dir), cmd = mpirun(2) + recipe(data, 40);
  std::string log;
  ASSERT_EQ(test::run_shell(cmd + dir.str("straight"), &log), 0) << log;

  const std::string run_dir = dir.str("stopped");
  const pid_t launcher = test::spawn_shell(cmd + run_dir, dir.str("stopped.log"));
  ASSERT_TRUE(wait_for_file(run_dir + "/checkpoint.safetensors", 120)) << read_file(dir.str("stopped.log"));
  const pid_t rank1 = find_rank(launcher, 1);
  ASSERT_GT(rank1, 0) << "rank 1 of mpirun " << launcher << " not found";
  const auto signalled = Clock::now();
  kill(rank1, sig);
  const int code = test::wait_exit(launcher);
  const double seconds = std::chrono::duration<double>(Clock::now() - signalled).count();
  const std::string stopped_log = read_file(dir.str("stopped.log"));
  EXPECT_LT(seconds, 30.0) << stopped_log;
  EXPECT_NE(code, 0) << stopped_log;
  const int stopped_at = std::stoi(read_safetensors(run_dir + "/checkpoint.safetensors").metadata.at("step"));
  std::printf("signal %d to rank 1: mpirun exited %d after %.1f s, checkpoint at step %d; its output:\n%s", sig, code,
              seconds, stopped_at, stopped_log.c_str());
  EXPECT_LT(stopped_at, 40) << "the signal came too late to test anything";
  if (sig == SIGKILL) {
    EXPECT_NE(stopped_log.find("rank 1"), std::string::npos) << stopped_log;
  } else {
    EXPECT_EQ(code, 143) << stopped_log;
    EXPECT_NE(stopped_log.find("stopped by signal 15 at step " + std::to_string(stopped_at)), std::string::npos)
        << stopped_log;
  }

  ASSERT_EQ(test::run_shell(cmd + run_dir + " --resume", &log), 0) << log;
  EXPECT_NE(log.find("resuming"), std::string::npos) << log;
  EXPECT_LE(test::max_abs_diff(flat_weights(dir.str("straight/model.safetensors")),
                               flat_weights(run_dir + "/model.safetensors")),
            1e-6)
      << "stopped at step " << stopped_at;
  EXPECT_EQ(logged_steps(run_dir + "/metrics.jsonl"), steps_up_to(40));
}

INSTANTIATE_TEST_SUITE_P(Signals, StoppedRank, ::testing::Values(SIGKILL, SIGTERM),
                         [](const auto& info) { return info.param == SIGKILL ? "sigkill" : "sigterm"; });

TEST(Distributed, RunsKeepTheirNumberOfProcesses) {
  REQUIRE_MPIRUN();
  test::TempDir dir;
  const std::string data = make_data(dir);
  std::string log;
  ASSERT_EQ(test::run_shell(mpirun(2) + recipe(data, 2) + dir.str("run"), &log), 0) << log;
  EXPECT_NE(test::run_cli(recipe(data, 4) + dir.str("run") + " --resume", &log), 0);
  EXPECT_NE(log.find("mpirun -np 2"), std::string::npos) << log;
  EXPECT_NE(log.find("checkpoint.safetensors"), std::string::npos) << log;

  // A global batch the ranks cannot split: every rank says so, by rank.
  EXPECT_NE(test::run_shell(mpirun(2) + recipe(data, 2, 3) + dir.str("odd"), &log), 0);
  EXPECT_NE(log.find("does not split evenly over 2 processes"), std::string::npos) << log;
  EXPECT_NE(log.find("rank 0 of 2"), std::string::npos) << log;
}

}  // namespace
}  // namespace unetind
