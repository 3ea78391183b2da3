// The training executor (backend.h): its step is the composition of the
// pieces it replaces (forward, loss, backward, weight decay, RMSProp), its
// state reads back as it was loaded, a bad loss changes nothing, and across
// ranks of an in-process group it averages as data_parallel.h says. Every
// backend that is built and has a device runs the cases; the CPU's must
// match the host composition bit for bit, another backend's to a tolerance.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "test_util.h"
#include "unetind/backend.h"
#include "unetind/data_parallel.h"
#include "unetind/error.h"

namespace unetind {
namespace {

constexpr int kSize = 32;
constexpr double kWeightDecay = 1e-3;  // large enough to matter
constexpr float kLr = 3e-3f;

struct Batch {
  std::vector<float> images, masks;
};

Batch random_batch(int batch, uint64_t seed) {
  const size_t n = size_t(batch) * kSize * kSize;
  return {test::random_values(n, seed), test::random_values(n, seed + 1, 0.f, 1.f)};
}

double max_relative_diff(const std::vector<NamedTensor>& a, const std::vector<NamedTensor>& b) {
  double worst = 0;
  for (size_t p = 0; p < a.size(); ++p)
    worst = std::max(worst, test::max_abs_diff(a[p].tensor.data, b[p].tensor.data) / test::scale_of(b[p].tensor.data));
  return worst;
}

// One CPU thread: the steps are small (32x32), where OpenMP's barriers cost
// more than they share, and the in-process ranks run side by side.
std::unique_ptr<Backend> backend(const std::string& device) { return make_backend(device, 1); }

std::unique_ptr<TrainingExecutor> compile(const std::string& device, LossKind loss, int batch,
                                          Communicator* group = nullptr) {
  return backend(device)->compile_training(build_graph({}), ExecConfig{batch, kSize, kSize, true, Precision::F32},
                                                TrainingConfig{loss, kWeightDecay, {}}, group);
}

// What a training step was before the state moved into the backend: the
// host composition of the library's pieces.
struct HostComposition {
  Executor& exec;  // compiled for training
  std::vector<NamedTensor> params;
  RmsProp optimizer;
  LossKind loss;

  HostComposition(Executor& e, const std::vector<NamedTensor>& initial, LossKind kind)
      : exec(e), params(initial), loss(kind) {}

  double step(const Batch& b) {
    std::vector<float> logits(b.images.size()), dlogits(logits.size());
    exec.set_parameters(params);
    exec.forward(b.images.data(), logits.data(), false);
    const double value = loss_forward_backward(loss, logits.data(), b.masks.data(), int64_t(logits.size()), dlogits.data()).value;
    std::vector<Tensor> grads;
    exec.backward(dlogits.data(), grads);
    const double l2 = weight_decay(params, kWeightDecay, &grads);
    optimizer.step(params, grads, kLr);
    return value + l2;
  }
};

const LossKind kLosses[] = {LossKind::Adaptive, LossKind::CrossEntropy, LossKind::DiceSorensen,
                            LossKind::DiceJaccard, LossKind::L2};

TEST(TrainingExecutor, StepsAreTheHostComposition) {
  const Parameters initial = init_parameters({}, Initializer::HeNormal, 4);
  const Batch b = random_batch(2, 10);
  auto host_exec = backend("cpu")->compile(build_graph({}), {2, kSize, kSize, true, Precision::F32});
  for (const std::string& device : available_backends()) {
    for (LossKind kind : kLosses) {
      SCOPED_TRACE(device + ", " + to_string(kind));
      HostComposition host(*host_exec, initial.tensors, kind);
      auto exec = compile(device, kind, 2);
      exec->load(initial.tensors, {});
      const bool exact = device == "cpu";
      for (int s = 0; s < 2; ++s) {
        const double want = host.step(b);
        const StepResult got = exec->step(b.images.data(), b.masks.data(), kLr);
        EXPECT_NEAR(got.loss, want, exact ? 0.0 : 1e-5 * std::fabs(want)) << "step " << s;
        EXPECT_NEAR(got.loss, got.reconstruction + got.l2, 1e-12);
      }
      const double diff = max_relative_diff(exec->parameters(), host.params);
      if (exact) {
        EXPECT_EQ(diff, 0.0);
        const auto want_state = host.optimizer.state(host.params), got_state = exec->optimizer_state();
        ASSERT_EQ(got_state.size(), want_state.size());
        for (size_t i = 0; i < got_state.size(); ++i) {
          EXPECT_EQ(got_state[i].name, want_state[i].name);
          EXPECT_EQ(test::max_abs_diff(got_state[i].tensor.data, want_state[i].tensor.data), 0.0) << got_state[i].name;
        }
      } else {
        EXPECT_LE(diff, 1e-4);
      }
    }
  }
}

TEST(TrainingExecutor, StateReadsBackAndResumesExactly) {
  const Parameters initial = init_parameters({}, Initializer::HeUniform, 6);
  const Batch b1 = random_batch(2, 20), b2 = random_batch(2, 30);
  for (const std::string& device : available_backends()) {
    SCOPED_TRACE(device);
    auto exec = compile(device, LossKind::Adaptive, 2);
    exec->load(initial.tensors, {});
    EXPECT_EQ(max_relative_diff(exec->parameters(), initial.tensors), 0.0);
    const auto fresh = exec->optimizer_state();
    EXPECT_EQ(fresh.size(), 3 * initial.tensors.size());  // centred: ms, mg, mom
    EXPECT_EQ(fresh[0].name, initial.tensors[0].name + "/RMSProp");
    EXPECT_EQ(fresh[0].tensor.data[0], 1.0f);  // TF1 starts ms at one

    exec->step(b1.images.data(), b1.masks.data(), kLr);
    const auto params = exec->parameters();
    const auto state = exec->optimizer_state();
    EXPECT_GT(max_relative_diff(params, initial.tensors), 0.0);

    // A second executor loaded with the read-back state takes the same next step.
    auto resumed = compile(device, LossKind::Adaptive, 2);
    resumed->load(params, state);
    const StepResult a = exec->step(b2.images.data(), b2.masks.data(), kLr);
    const StepResult c = resumed->step(b2.images.data(), b2.masks.data(), kLr);
    EXPECT_EQ(a.loss, c.loss);
    EXPECT_EQ(max_relative_diff(resumed->parameters(), exec->parameters()), 0.0);

    auto wrong = state;
    wrong.pop_back();
    EXPECT_THROW(resumed->load(params, wrong), Error);
    auto short_params = params;
    short_params.pop_back();
    EXPECT_THROW(resumed->load(short_params, {}), Error);
  }
}

TEST(TrainingExecutor, ALossThatIsNotFiniteChangesNothing) {
  const Parameters initial = init_parameters({}, Initializer::HeNormal, 2);
  Batch b = random_batch(2, 40);
  // A NaN label (the network's ReLUs would swallow a NaN pixel).
  b.masks[5] = std::numeric_limits<float>::quiet_NaN();
  for (const std::string& device : available_backends()) {
    SCOPED_TRACE(device);
    auto exec = compile(device, LossKind::CrossEntropy, 2);
    exec->load(initial.tensors, {});
    try {
      exec->step(b.images.data(), b.masks.data(), kLr);
      ADD_FAILURE() << "a NaN label trained on";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("not finite"), std::string::npos) << e.what();
    }
    EXPECT_EQ(max_relative_diff(exec->parameters(), initial.tensors), 0.0);
    const auto state = exec->optimizer_state();
    EXPECT_EQ(state[0].tensor.data[0], 1.0f);
  }
  EXPECT_THROW(compile("cpu", LossKind::CrossEntropy, 2)->step(b.images.data(), b.masks.data(), kLr), Error);
}

// Each rank's shard of a global batch (data_parallel.h's shard order).
Batch shard_of(const Batch& global, int global_batch, int rank, int ranks) {
  Batch shard;
  shard.images.resize(global.images.size() / ranks);
  shard.masks.resize(shard.images.size());
  shard_batch(global.images.data(), global_batch, kSize * kSize, rank, ranks, shard.images.data());
  shard_batch(global.masks.data(), global_batch, kSize * kSize, rank, ranks, shard.masks.data());
  return shard;
}

// x-entropy is a mean over equal shards: two ranks on halves take the steps
// of one process on the whole batch, and hold the same weights.
TEST(TrainingExecutor, RanksAveragingShardsTakeTheGlobalBatchStep) {
  const Parameters initial = init_parameters({}, Initializer::HeNormal, 12);
  const int global = 4, ranks = 2, steps = 3;
  const Batch b = random_batch(global, 50);
  auto one = compile("cpu", LossKind::CrossEntropy, global);
  one->load(initial.tensors, {});
  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) losses.push_back(one->step(b.images.data(), b.masks.data(), kLr).reconstruction);

  std::vector<std::vector<NamedTensor>> weights(ranks);
  std::vector<std::vector<double>> rank_losses(ranks);
  InProcessGroup group(ranks);
  group.run([&](Communicator& comm) {
    const Batch mine = shard_of(b, global, comm.rank(), ranks);
    auto exec = compile("cpu", LossKind::CrossEntropy, global / ranks, &comm);
    exec->load(initial.tensors, {});
    for (int s = 0; s < steps; ++s)
      rank_losses[comm.rank()].push_back(exec->step(mine.images.data(), mine.masks.data(), kLr).reconstruction);
    weights[comm.rank()] = exec->parameters();
  });
  EXPECT_EQ(max_relative_diff(weights[1], weights[0]), 0.0) << "the ranks' weights differ";
  // Not to the bit: the batch is summed in another order (and Winograd
  // blocks a batch of 4 and one of 2 differently), and RMSProp, which divides
  // a gradient by its own RMS, turns a last-bit change of a gradient near 0
  // into a visible step: 1.8e-4 on a Xeon with AMX, below 1e-5 on Zen 5,
  // while 3 steps move the weights by the order of their scale.
  EXPECT_LE(max_relative_diff(weights[0], one->parameters()), 1e-3);
  for (int s = 0; s < steps; ++s) {
    EXPECT_EQ(rank_losses[0][s], rank_losses[1][s]) << "every rank reports the mean loss";
    EXPECT_NEAR(rank_losses[0][s], losses[s], 1e-6 * losses[s]) << "step " << s;
  }
}

TEST(TrainingExecutor, ANonFiniteLossOnOneRankStopsEveryRank) {
  const Parameters initial = init_parameters({}, Initializer::HeNormal, 13);
  InProcessGroup group(2);
  std::vector<int> threw(2, 0);
  std::vector<double> moved(2, -1);
  group.run([&](Communicator& comm) {
    Batch mine = random_batch(2, 60 + comm.rank());
    if (comm.rank() == 1) mine.masks[0] = std::numeric_limits<float>::quiet_NaN();
    auto exec = compile("cpu", LossKind::CrossEntropy, 2, &comm);
    exec->load(initial.tensors, {});
    try {
      exec->step(mine.images.data(), mine.masks.data(), kLr);
    } catch (const Error&) {
      threw[comm.rank()] = 1;
    }
    moved[comm.rank()] = max_relative_diff(exec->parameters(), initial.tensors);
  });
  EXPECT_EQ(threw, (std::vector<int>{1, 1}));
  EXPECT_EQ(moved, (std::vector<double>{0.0, 0.0}));
}

}  // namespace
}  // namespace unetind
