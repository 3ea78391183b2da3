#include "unetind/data_parallel.h"

#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

#include "unetind/error.h"

namespace unetind {

int shard_size(int global_batch, int ranks) {
  if (ranks < 1 || global_batch < ranks || global_batch % ranks)
    throw Error("data parallel: a global batch of " + std::to_string(global_batch) + " does not split evenly over " +
                std::to_string(ranks) + " ranks");
  return global_batch / ranks;
}

void shard_batch(const float* global, int global_batch, int64_t sample_size, int rank, int ranks, float* shard) {
  const int local = shard_size(global_batch, ranks);
  if (rank < 0 || rank >= ranks)
    throw Error("data parallel: rank " + std::to_string(rank) + " of " + std::to_string(ranks));
  for (int j = 0; j < local; ++j)
    std::memcpy(shard + j * sample_size, global + (int64_t(j) * ranks + rank) * sample_size, sample_size * sizeof(float));
}

namespace {

// What the ranks of one InProcessGroup::run share: a barrier that a failed
// rank breaks, and each rank's tensors during a collective.
struct Rendezvous {
  explicit Rendezvous(int ranks) : ranks(ranks), slots(ranks, nullptr) {}

  void barrier() {
    std::unique_lock lock(mutex);
    if (failed) throw Error("data parallel: another rank failed");
    const uint64_t phase = generation;
    if (++arrived == ranks) {
      arrived = 0;
      ++generation;
      wake.notify_all();
      return;
    }
    wake.wait(lock, [&] { return generation != phase || failed; });
    if (generation == phase) throw Error("data parallel: another rank failed");
  }

  void fail(std::exception_ptr error) {
    std::lock_guard lock(mutex);
    if (!first_error) first_error = error;
    failed = true;
    wake.notify_all();
  }

  const int ranks;
  std::vector<std::vector<Tensor>*> slots;
  std::mutex mutex;
  std::condition_variable wake;
  int arrived = 0;
  uint64_t generation = 0;
  bool failed = false;
  std::exception_ptr first_error;
};

class InProcessCommunicator final : public Communicator {
 public:
  InProcessCommunicator(Rendezvous& shared, int rank) : shared_(shared), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return shared_.ranks; }

  void all_reduce_mean(std::vector<Tensor>& tensors) override {
    shared_.slots[rank_] = &tensors;
    shared_.barrier();
    // Every rank checks every rank against rank 0, so all of them throw
    // alike, and only after the second barrier: until then other ranks may
    // still read this rank's tensors.
    const std::string mismatch = check_shapes();
    std::vector<Tensor> mean;
    if (mismatch.empty()) mean = average();
    shared_.barrier();
    if (!mismatch.empty()) throw Error(mismatch);
    tensors = std::move(mean);
  }

 private:
  std::string check_shapes() const {
    const std::vector<Tensor>& first = *shared_.slots[0];
    for (int r = 1; r < shared_.ranks; ++r) {
      const std::vector<Tensor>& other = *shared_.slots[r];
      if (other.size() != first.size())
        return "data parallel: rank " + std::to_string(r) + " reduces " + std::to_string(other.size()) +
               " tensors, rank 0 " + std::to_string(first.size());
      for (size_t t = 0; t < first.size(); ++t)
        if (other[t].shape != first[t].shape)
          return "data parallel: tensor " + std::to_string(t) + " is " + shape_to_string(other[t].shape) +
                 " on rank " + std::to_string(r) + " but " + shape_to_string(first[t].shape) + " on rank 0";
    }
    return "";
  }

  // Summed in rank order, so every rank computes the same bits.
  std::vector<Tensor> average() const {
    std::vector<Tensor> mean = *shared_.slots[0];
    const float scale = 1.0f / static_cast<float>(shared_.ranks);
    for (size_t t = 0; t < mean.size(); ++t)
      for (size_t i = 0; i < mean[t].data.size(); ++i) {
        float sum = 0.0f;
        for (int r = 0; r < shared_.ranks; ++r) sum += (*shared_.slots[r])[t].data[i];
        mean[t].data[i] = sum * scale;
      }
    return mean;
  }

  Rendezvous& shared_;
  int rank_;
};

}  // namespace

InProcessGroup::InProcessGroup(int ranks) : ranks_(ranks) {
  if (ranks < 1) throw Error("data parallel: " + std::to_string(ranks) + " ranks");
}

InProcessGroup::~InProcessGroup() = default;

void InProcessGroup::run(const std::function<void(Communicator&)>& fn) {
  Rendezvous shared(ranks_);
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks_; ++r)
    threads.emplace_back([&shared, &fn, r] {
      InProcessCommunicator comm(shared, r);
      try {
        fn(comm);
      } catch (...) {
        shared.fail(std::current_exception());
      }
    });
  for (auto& t : threads) t.join();
  if (shared.first_error) std::rethrow_exception(shared.first_error);
}

#ifndef UNETIND_HAVE_NCCL
namespace {
[[noreturn]] void no_nccl() { throw Error("data parallel: this build has no NCCL (needs CUDA, cuDNN and NCCL)"); }
}  // namespace

std::vector<std::unique_ptr<Communicator>> make_nccl_communicators(int) { no_nccl(); }
std::string make_nccl_unique_id() { no_nccl(); }
std::unique_ptr<Communicator> make_nccl_communicator(const std::string&, int, int, int) { no_nccl(); }
#endif

}  // namespace unetind
