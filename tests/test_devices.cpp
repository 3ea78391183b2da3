// Device choice on the CLI: every command that runs the model takes --device
// through one helper, refuses a device it cannot have with the list of those
// it can, and --version says what the build has and the machine shows now.
#include <gtest/gtest.h>
#include <omp.h>
#include <xmmintrin.h>

#include <thread>

#include "op_cases.h"
#include "test_util.h"
#include "unetind/backend.h"
#include "unetind/error.h"
#include "unetind/model.h"

namespace unetind {
namespace {

std::string device_list() {
  std::string names;
  for (const auto& b : available_backends()) names += (names.empty() ? "" : ", ") + b;
  return "available: " + names;
}

TEST(Devices, EveryCommandRefusesAnUnknownDeviceListingTheAvailableOnes) {
  test::TempDir dir;
  const std::string list = device_list();
  for (const std::string& command :
       {"train --data " + dir.str() + " --out " + dir.str("run"), "evaluate --data " + dir.str() + " --model m",
        "predict --model m --out " + dir.str("p") + " x.png", std::string("benchmark")}) {
    for (const char* device : {"tpu", "cuda:99", "cuda:x"}) {
      SCOPED_TRACE(command + " --device " + device);
      std::string log;
      EXPECT_NE(test::run_cli(command + " --device " + device, &log), 0);
      EXPECT_NE(log.find("--device"), std::string::npos) << log;
      EXPECT_NE(log.find(device), std::string::npos) << log;
      EXPECT_NE(log.find(list), std::string::npos) << log;
    }
  }
  try {
    check_device("tpu");
    ADD_FAILURE() << "tpu accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(list), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(check_device("cpu"));
}

// A server compiles its executors where it loads the model and runs them in
// its batching thread: the thread count asked for must hold there too
// (OpenMP's count is a per-thread setting).
TEST(Devices, ACpuExecutorRunsOnItsThreadCountInAnyThread) {
  if (available_cpus() < 2) GTEST_SKIP() << "one CPU: a count of 1 is also the default";
  const Graph graph = build_graph({});
  auto exec = make_backend("cpu", 1)->compile(graph, {1, 32, 32, false, Precision::F32});
  exec->set_parameters(init_parameters({}, Initializer::HeUniform, 1).tensors);
  std::vector<float> input(32 * 32, 0.5f), out(32 * 32);
  int threads_there = 0;
  std::thread([&] {
    exec->forward(input.data(), out.data(), true);
    threads_there = omp_get_max_threads();
  }).join();
  EXPECT_EQ(threads_there, 1);
}

// Denormals are flushed while a CPU executor computes (x86 runs them about
// 100x slower: a trained model's fp32 training went 7x slower), as
// TensorFlow's CPU threads do, and the caller's own setting comes back.
TEST(Devices, ACpuExecutorFlushesDenormalsAndRestoresTheCallersSetting) {
  const Graph graph = test::single_conv(1, 1, 1, Activation::None);
  // Every core, so that OpenMP's worker threads compute too.
  auto exec = make_backend("cpu", 0)->compile(graph, {1, 4, 4, false, Precision::F32});
  // 1e-20 x 1e-20 = 1e-40, below float's smallest normal (1.2e-38).
  exec->set_parameters(
      {{graph.convs[0].kernel_name(), Tensor({1, 1, 1, 1}, 1e-20f)}, {graph.convs[0].bias_name(), Tensor({1})}});
  std::vector<float> input(16, 1e-20f), out(16, 1.0f);
  const unsigned before = _mm_getcsr();
  exec->forward(input.data(), out.data(), false);
  EXPECT_EQ(_mm_getcsr(), before);
  for (float v : out) EXPECT_EQ(v, 0.0f) << "a denormal result survived: " << v;
  volatile float tiny = 1e-20f;
  EXPECT_GT(tiny * tiny, 0.0f) << "the caller's thread was left flushing denormals";
}

TEST(Devices, VersionSaysWhatIsBuiltInAndWhatIsVisible) {
  std::string out;
  ASSERT_EQ(test::run_cli("--version", &out), 0) << out;
  EXPECT_NE(out.find("oneDNN 2."), std::string::npos) << out;
#ifdef UNETIND_HAVE_CUDA
  EXPECT_NE(out.find("cuda (CUDA runtime "), std::string::npos) << out;
  EXPECT_NE(out.find("cuDNN "), std::string::npos) << out;
#else
  EXPECT_EQ(out.find("cuda ("), std::string::npos) << out;
#endif
#ifdef UNETIND_HAVE_MPI
  EXPECT_NE(out.find("data parallel: MPI ("), std::string::npos) << out;
#else
  EXPECT_NE(out.find("data parallel: no MPI"), std::string::npos) << out;
#endif
  std::string visible;
  for (const auto& b : available_backends()) visible += (visible.empty() ? "" : ", ") + b;
  EXPECT_NE(out.find("devices visible now: " + visible), std::string::npos) << out;
}

}  // namespace
}  // namespace unetind
