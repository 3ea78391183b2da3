// The CPU backend's activation arena (src/backend/cpu/net.h): activations
// that are live at the same time never share bytes, reuse does not change
// results, backward() can run twice after one forward(), and the arena is as
// small as the targets need (inference batch 1 under 400 MB resident,
// training batch 16 under 8 GB), and executors that share one arena need
// only what the largest needs.
#include <gtest/gtest.h>

#include <regex>

#include "backend/cpu/cpu_executor.h"
#include "test_util.h"
#include "unetind/backend.h"
#include "unetind/error.h"

namespace unetind {
namespace {

constexpr double kMB = 1024.0 * 1024.0;

// One compute thread: these sizes gain little from more, and under
// `ctest -j` more oversubscribe the cores, where each small primitive then
// waits out a scheduler tick at its closing barrier.
std::unique_ptr<Backend> cpu_backend() { return make_backend("cpu", 1); }

std::vector<NamedTensor> model_params(const ModelConfig& config, uint64_t seed = 4) {
  Parameters p = init_parameters(config, Initializer::HeUniform, seed);
  for (size_t i = 1; i < p.tensors.size(); i += 2) p.tensors[i].tensor = test::random_tensor(p.tensors[i].tensor.shape, i, 0.05f);
  return p.tensors;
}

// The arena in each compute precision; bf16 is skipped, visibly, on CPUs
// without AVX512-BF16.
class MemoryIn : public ::testing::TestWithParam<Precision> {
 protected:
  void SetUp() override {
    if (GetParam() == Precision::BF16) SKIP_WITHOUT_BF16();
  }
};

TEST_P(MemoryIn, LiveActivationsNeverShareBytes) {
  const Graph graph = build_graph({});
  for (bool training : {false, true}) {
    SCOPED_TRACE(training ? "training" : "inference");
    auto exec = cpu::compile_cpu(graph, {2, 64, 48, training, GetParam()});
    const cpu::ArenaStats stats = cpu::arena_stats(*exec);
    ASSERT_FALSE(stats.placements.empty());
    for (size_t a = 0; a < stats.placements.size(); ++a) {
      const cpu::Placement& x = stats.placements[a];
      ASSERT_LE(x.first, x.last);
      ASSERT_LE(x.offset + x.bytes, stats.arena_bytes);
      for (size_t b = a + 1; b < stats.placements.size(); ++b) {
        const cpu::Placement& y = stats.placements[b];
        const bool same_time = x.first <= y.last && y.first <= x.last;
        const bool same_bytes = x.offset < y.offset + y.bytes && y.offset < x.offset + x.bytes;
        EXPECT_FALSE(same_time && same_bytes) << "activations " << a << " and " << b;
      }
    }
  }
}

TEST(Memory, InferenceWithReuseMatchesTrainingForward) {
  // A training executor keeps every forward output for backward; an
  // inference one reuses their buffers. Both must compute the same thing.
  const Graph graph = build_graph({});
  const auto params = model_params({});
  const int n = 2, h = 64, w = 80;
  const auto input = test::random_values(size_t(n) * h * w, 5);
  auto backend = cpu_backend();
  std::vector<float> kept(input.size()), reused(input.size());
  auto train = backend->compile(graph, {n, h, w, true, Precision::F32});
  train->set_parameters(params);
  train->forward(input.data(), kept.data(), true);
  auto infer = backend->compile(graph, {n, h, w, false, Precision::F32});
  infer->set_parameters(params);
  infer->forward(input.data(), reused.data(), true);
  // forward_training and forward_inference may pick kernels that sum in
  // another order: rounding apart, not more.
  EXPECT_LE(test::max_abs_diff(kept, reused), 1e-5);
  // Run twice: nothing left over from the first run may leak into the second.
  std::vector<float> again(input.size());
  infer->forward(input.data(), again.data(), true);
  EXPECT_EQ(again, reused);
}

TEST_P(MemoryIn, BackwardRunsTwiceAfterOneForward) {
  const Graph graph = build_graph({});
  const auto params = model_params({});
  const int n = 1, h = 48, w = 48;
  const auto input = test::random_values(size_t(n) * h * w, 6);
  const auto dy1 = test::random_values(input.size(), 7, 0.25f, 1.0f);
  const auto dy2 = test::random_values(input.size(), 8, -1.0f, -0.25f);
  auto exec = cpu_backend()->compile(graph, {n, h, w, true, GetParam()});
  exec->set_parameters(params);
  std::vector<float> logits(input.size()), logits_after(input.size());
  exec->forward(input.data(), logits.data(), false);
  std::vector<Tensor> g1, g2, g1_again;
  exec->backward(dy1.data(), g1);
  exec->backward(dy2.data(), g2);
  exec->backward(dy1.data(), g1_again);
  ASSERT_EQ(g1.size(), g1_again.size());
  for (size_t i = 0; i < g1.size(); ++i) {
    SCOPED_TRACE(params[i].name);
    EXPECT_EQ(g1[i].data, g1_again[i].data);
    EXPECT_NE(g1[i].data, g2[i].data);
  }
  // Backward's buffers do not overlap what forward leaves for the caller.
  exec->forward(input.data(), logits_after.data(), false);
  EXPECT_EQ(logits, logits_after);
}

TEST(Memory, ArenaFitsTheTargets) {
  // Compiling allocates the arena but touches none of it: cheap even at
  // training sizes.
  const Graph graph = build_graph({});
  auto stats = [&](int batch, bool training, Precision precision) {
    auto exec = cpu::compile_cpu(graph, {batch, kModelImageSize, kModelImageSize, training, precision});
    return cpu::arena_stats(*exec);
  };
  // Inference keeps a few 512x512 tensors at once, not the outputs of all
  // 40 ops.
  const cpu::ArenaStats infer = stats(1, false, Precision::F32);
  EXPECT_LT(infer.arena_bytes, infer.activation_bytes / 3);
  // Training batch 16 within 8 GB resident: the arena leaves a gigabyte for
  // the rest (images, parameters, gradients, optimiser state, code).
  const cpu::ArenaStats train = stats(16, true, Precision::F32);
  EXPECT_LT(train.arena_bytes / kMB, 7 * 1024.0);
  EXPECT_LT(train.arena_bytes, train.activation_bytes * 2 / 3);
}

TEST(Memory, ExecutorsSharingAnArenaTakeTurnsAndNeedOnlyTheLargest) {
  // Executors of two models for batches 1, 3 and 2 in one arena, compiled
  // and run so that it grows (and moves) between two runs of the first:
  // each computes what it computes with an arena of its own, and the arena
  // ends as large as the largest one's own, not their sum.
  const Graph graph = build_graph({});
  const auto params_a = model_params({}), params_b = model_params({}, 9);
  const int h = 64, w = 48;
  auto compile = [&](int batch, const std::vector<NamedTensor>& params, std::shared_ptr<ActivationArena> arena) {
    ExecConfig config{batch, h, w, false, Precision::F32};
    config.activations = std::move(arena);
    auto exec = cpu::compile_cpu(graph, config);
    exec->set_parameters(params);
    return exec;
  };
  auto forward = [&](Executor& exec, uint64_t seed) {
    const auto input = test::random_values(size_t(exec.config().batch) * h * w, seed);
    std::vector<float> probs(input.size());
    exec.forward(input.data(), probs.data(), true);
    return probs;
  };
  auto own_1 = compile(1, params_a, nullptr), own_3 = compile(3, params_b, nullptr), own_2 = compile(2, params_a, nullptr);
  auto shared = std::make_shared<ActivationArena>();
  auto exec_1 = compile(1, params_a, shared);
  EXPECT_EQ(forward(*exec_1, 11), forward(*own_1, 11));
  const void* before = shared->data();
  auto exec_3 = compile(3, params_b, shared);
  ASSERT_NE(shared->data(), before) << "the arena did not grow: the test would not check the rebinding";
  EXPECT_EQ(forward(*exec_3, 12), forward(*own_3, 12));
  EXPECT_EQ(forward(*exec_1, 13), forward(*own_1, 13));
  auto exec_2 = compile(2, params_a, shared);
  EXPECT_EQ(forward(*exec_2, 14), forward(*own_2, 14));
  EXPECT_EQ(forward(*exec_3, 15), forward(*own_3, 15));
  EXPECT_EQ(shared->bytes(), cpu::arena_stats(*own_3).arena_bytes);
  EXPECT_LT(shared->bytes(), cpu::arena_stats(*own_1).arena_bytes + cpu::arena_stats(*own_2).arena_bytes +
                                 cpu::arena_stats(*own_3).arena_bytes);
  // Training keeps its activations from forward() to backward().
  ExecConfig training{1, h, w, true, Precision::F32};
  training.activations = shared;
  EXPECT_THROW(cpu::compile_cpu(graph, training), Error);
}

TEST(Memory, Bf16TrainingArenaIsAboutHalf) {
  // bf16 activations take half the bytes.
  SKIP_WITHOUT_BF16();
  const Graph graph = build_graph({});
  auto arena_bytes = [&](Precision precision) {
    return cpu::arena_stats(*cpu::compile_cpu(graph, {16, kModelImageSize, kModelImageSize, true, precision})).arena_bytes;
  };
  EXPECT_LT(arena_bytes(Precision::BF16), arena_bytes(Precision::F32) * 0.6);
}

INSTANTIATE_TEST_SUITE_P(Precisions, MemoryIn, ::testing::Values(Precision::F32, Precision::BF16),
                         [](const auto& info) { return to_string(info.param); });

TEST(Memory, InferenceAtBatchOneStaysUnder400MBResident) {
  std::string out;
  ASSERT_EQ(test::run_cli("benchmark --mode infer --batch 1 --iters 1 --warmup 0 --threads 1", &out), 0) << out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex("peak resident memory: ([0-9]+) MB"))) << out;
  EXPECT_LE(std::stoi(m[1]), 400) << out;
}

}  // namespace
}  // namespace unetind
