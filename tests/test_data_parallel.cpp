// Data-parallel gradient averaging on the CPU backend with the in-process
// communicator: N ranks on their shards, averaged, against one rank on the
// global batch (the CI check of the multi-GPU code path, which only swaps in
// NCCL for the communicator).
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <csignal>

#include "test_util.h"
#include "train/rank_agreement.h"
#include "unetind/backend.h"
#include "unetind/data_parallel.h"
#include "unetind/error.h"
#include "unetind/loss.h"

namespace unetind {
namespace {

constexpr int kSize = 32;  // the smallest multiple of TinyUNet's 16
constexpr int kGlobalBatch = 4;
constexpr double kWeightDecay = 1e-3;  // large enough to matter in the comparison

// One rank's part of a training step: its loss on its samples plus weight
// decay, differentiated (as TrainingStep does before the update).
std::vector<Tensor> local_gradients(const Graph& graph, const Parameters& params, LossKind loss, const float* images,
                                    const float* masks, int batch) {
  auto exec = make_backend("cpu")->compile(graph, {batch, kSize, kSize, true, Precision::F32});
  exec->set_parameters(params.tensors);
  std::vector<float> logits(size_t(batch) * kSize * kSize), dlogits(logits.size());
  exec->forward(images, logits.data(), false);
  loss_forward_backward(loss, logits.data(), masks, int64_t(logits.size()), dlogits.data());
  std::vector<Tensor> grads;
  exec->backward(dlogits.data(), grads);
  weight_decay(params.tensors, kWeightDecay, &grads);
  return grads;
}

struct Fixture {
  Graph graph = build_graph({});
  Parameters params = init_parameters({}, Initializer::HeNormal, 3);
  std::vector<float> images = test::random_values(size_t(kGlobalBatch) * kSize * kSize, 21);
  std::vector<float> masks = test::random_values(size_t(kGlobalBatch) * kSize * kSize, 22, 0.f, 1.f);

  // Every rank's averaged gradients after the collective.
  std::vector<std::vector<Tensor>> data_parallel(int ranks, LossKind loss) const {
    std::vector<std::vector<Tensor>> out(ranks);
    const int local = shard_size(kGlobalBatch, ranks);
    InProcessGroup group(ranks);
    group.run([&](Communicator& comm) {
      std::vector<float> x(size_t(local) * kSize * kSize), y(x.size());
      shard_batch(images.data(), kGlobalBatch, kSize * kSize, comm.rank(), ranks, x.data());
      shard_batch(masks.data(), kGlobalBatch, kSize * kSize, comm.rank(), ranks, y.data());
      auto grads = local_gradients(graph, params, loss, x.data(), y.data(), local);
      comm.all_reduce_mean(grads);
      out[comm.rank()] = std::move(grads);
    });
    return out;
  }
};

double max_relative_diff(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  double worst = 0;
  for (size_t p = 0; p < a.size(); ++p) worst = std::max(worst, test::max_abs_diff(a[p].data, b[p].data) / test::scale_of(b[p].data));
  return worst;
}

TEST(DataParallel, ShardsTakeEveryNthSampleAndCoverTheBatch) {
  const int batch = 6, sample = 3;
  std::vector<float> global(batch * sample);
  for (size_t i = 0; i < global.size(); ++i) global[i] = float(i);
  std::vector<int> seen(batch, 0);
  for (int rank = 0; rank < 3; ++rank) {
    std::vector<float> shard(2 * sample);
    shard_batch(global.data(), batch, sample, rank, 3, shard.data());
    for (int j = 0; j < 2; ++j) {
      const int sample_index = int(shard[j * sample]) / sample;
      EXPECT_EQ(sample_index, j * 3 + rank);  // TF's Dataset.shard order
      for (int k = 0; k < sample; ++k) EXPECT_EQ(shard[j * sample + k], global[sample_index * sample + k]);
      ++seen[sample_index];
    }
  }
  for (int s = 0; s < batch; ++s) EXPECT_EQ(seen[s], 1) << "sample " << s;
  EXPECT_THROW(shard_size(6, 4), Error);
  EXPECT_THROW(shard_size(2, 4), Error);
}

TEST(DataParallel, InProcessAllReduceGivesEveryRankTheMean) {
  const int ranks = 3;
  std::vector<std::vector<Tensor>> results(ranks);
  InProcessGroup group(ranks);
  group.run([&](Communicator& comm) {
    EXPECT_EQ(comm.size(), ranks);
    std::vector<Tensor> t{Tensor({2, 2}), Tensor({3})};
    for (auto& x : t)
      for (size_t i = 0; i < x.data.size(); ++i) x.data[i] = float((comm.rank() + 1) * (i + 1));
    comm.all_reduce_mean(t);
    comm.all_reduce_mean(t);  // a mean of equal values changes nothing
    results[comm.rank()] = t;
  });
  for (int r = 0; r < ranks; ++r)
    for (const Tensor& x : results[r])
      for (size_t i = 0; i < x.data.size(); ++i) EXPECT_FLOAT_EQ(x.data[i], 2.0f * float(i + 1)) << "rank " << r;
}

TEST(DataParallel, AFailingRankReleasesTheOthers) {
  InProcessGroup group(3);
  EXPECT_THROW(group.run([](Communicator& comm) {
                 if (comm.rank() == 1) throw Error("rank 1 broke");
                 std::vector<Tensor> t{Tensor({4})};
                 comm.all_reduce_mean(t);
               }),
               Error);
  // Shapes that differ between ranks are an error on every rank, not a hang.
  EXPECT_THROW(group.run([](Communicator& comm) {
                 std::vector<Tensor> t{Tensor({comm.rank() + 1})};
                 comm.all_reduce_mean(t);
               }),
               Error);
}

// x-entropy is a mean over pixels, so with equal shards the mean of the
// per-rank gradients is the gradient of the global batch.
TEST(DataParallel, MeanLossAveragedOverRanksEqualsTheGlobalBatch) {
  const Fixture f;
  const auto global = local_gradients(f.graph, f.params, LossKind::CrossEntropy, f.images.data(), f.masks.data(),
                                      kGlobalBatch);
  for (int ranks : {2, 4}) {
    SCOPED_TRACE(std::to_string(ranks) + " ranks");
    const auto per_rank = f.data_parallel(ranks, LossKind::CrossEntropy);
    for (int r = 0; r < ranks; ++r) {
      ASSERT_EQ(per_rank[r].size(), global.size());
      EXPECT_LE(max_relative_diff(per_rank[r], global), 1e-4) << "rank " << r;
      EXPECT_EQ(max_relative_diff(per_rank[r], per_rank[0]), 0.0) << "ranks disagree: rank " << r;
    }
  }
}

// Dice is batch-global: what the ranks average (as Horovod does) is the mean
// of the per-shard Dice gradients, which is not the global-batch gradient.
TEST(DataParallel, BatchGlobalLossAveragesThePerShardGradients) {
  const Fixture f;
  const int ranks = 2, local = kGlobalBatch / ranks;
  std::vector<Tensor> mean;
  for (int r = 0; r < ranks; ++r) {
    std::vector<float> x(size_t(local) * kSize * kSize), y(x.size());
    shard_batch(f.images.data(), kGlobalBatch, kSize * kSize, r, ranks, x.data());
    shard_batch(f.masks.data(), kGlobalBatch, kSize * kSize, r, ranks, y.data());
    auto g = local_gradients(f.graph, f.params, LossKind::DiceSorensen, x.data(), y.data(), local);
    if (mean.empty()) {
      mean = g;
      for (auto& t : mean) std::fill(t.data.begin(), t.data.end(), 0.f);
    }
    for (size_t p = 0; p < g.size(); ++p)
      for (size_t i = 0; i < g[p].data.size(); ++i) mean[p].data[i] += g[p].data[i] / ranks;
  }
  const auto per_rank = f.data_parallel(ranks, LossKind::DiceSorensen);
  EXPECT_LE(max_relative_diff(per_rank[0], mean), 1e-5);
  const auto global = local_gradients(f.graph, f.params, LossKind::DiceSorensen, f.images.data(), f.masks.data(),
                                      kGlobalBatch);
  EXPECT_GT(max_relative_diff(per_rank[0], global), 1e-3);
}

TEST(DataParallel, InProcessBroadcastAndBarrier) {
  const int ranks = 3;
  std::vector<std::vector<int>> got(ranks);
  std::atomic<int> arrived{0};
  std::vector<int> seen_before_barrier(ranks, -1);
  InProcessGroup group(ranks);
  group.run([&](Communicator& comm) {
    std::vector<int> values{comm.rank() * 10, comm.rank() * 10 + 1};
    comm.broadcast(values.data(), values.size() * sizeof(int), 2);
    got[comm.rank()] = values;
    ++arrived;
    comm.barrier();
    seen_before_barrier[comm.rank()] = arrived.load();
  });
  for (int r = 0; r < ranks; ++r) {
    EXPECT_EQ(got[r], (std::vector<int>{20, 21})) << "rank " << r;
    EXPECT_EQ(seen_before_barrier[r], ranks) << "rank " << r << " left the barrier early";
  }
}

TEST(DataParallel, RanksAgreeOnTheStartOnStoppingAndOnTheirWeights) {
  const int ranks = 2;
  InProcessGroup group(ranks);
  std::vector<StartState> states(ranks);
  std::vector<int> stops(ranks), no_stops(ranks);
  group.run([&](Communicator& comm) {
    StartState s;
    s.params = init_parameters({}, Initializer::HeNormal, comm.rank() + 1).tensors;  // rank 0's must win
    s.optimizer_state = {{"slot", Tensor({3}, float(comm.rank()))}};
    if (comm.rank() == 0) {
      s.step = 42;
      s.loader_state = {5, 7, 1, 3};
      s.resumed = true;
    }
    share_start_state(comm, s);
    states[comm.rank()] = std::move(s);
    no_stops[comm.rank()] = agree_on_stop(comm, 0);
    stops[comm.rank()] = agree_on_stop(comm, comm.rank() == 1 ? SIGTERM : 0);
    check_same_weights(comm, states[comm.rank()].params, 42);
  });
  for (int r = 0; r < ranks; ++r) {
    EXPECT_EQ(states[r].step, 42);
    EXPECT_EQ(states[r].loader_state.position, 3u);
    EXPECT_TRUE(states[r].resumed);
    EXPECT_EQ(states[r].optimizer_state[0].tensor.data[2], 0.0f);
    EXPECT_EQ(no_stops[r], 0);
    EXPECT_EQ(stops[r], SIGTERM) << "rank " << r;
  }
  EXPECT_EQ(test::max_abs_diff(states[1].params[0].tensor.data, states[0].params[0].tensor.data), 0.0);

  // Weights that differ: an error on every rank.
  std::vector<int> threw(ranks, 0);
  group.run([&](Communicator& comm) {
    auto params = init_parameters({}, Initializer::HeNormal, 1).tensors;
    if (comm.rank() == 1) params[3].tensor.data[0] += 1e-7f;
    try {
      check_same_weights(comm, params, 7);
    } catch (const Error& e) {
      threw[comm.rank()] = std::string(e.what()).find("1 of 2 ranks") != std::string::npos;
    }
  });
  EXPECT_EQ(threw, (std::vector<int>{1, 1}));
}

// With one GPU, NCCL's mean over one rank must hand the tensors back
// unchanged; without a GPU (or without NCCL in the build) asking for it is an
// Error, not a crash.
TEST(DataParallel, NcclCommunicatorWithOneRank) {
  bool has_gpu = false;
  for (const auto& name : available_backends()) has_gpu |= name.starts_with("cuda:");
  if (!has_gpu) {
    EXPECT_THROW(make_nccl_communicators(1), Error);
    GTEST_SKIP() << "no CUDA device: checked that asking for NCCL fails cleanly, nothing more";
  }
  auto comms = make_nccl_communicators(1);
  ASSERT_EQ(comms.size(), 1u);
  std::vector<Tensor> t{test::random_tensor({5, 7}, 4, 1.f), test::random_tensor({3}, 5, 1.f)};
  const auto before = t;
  comms[0]->all_reduce_mean(t);
  for (size_t i = 0; i < t.size(); ++i) EXPECT_EQ(test::max_abs_diff(t[i].data, before[i].data), 0.0);
}

}  // namespace
}  // namespace unetind
