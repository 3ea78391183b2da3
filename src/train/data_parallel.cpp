#include "unetind/data_parallel.h"

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
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

void Communicator::all_reduce_mean(std::vector<Tensor>& tensors) {
  size_t count = 0;
  for (const Tensor& t : tensors) count += t.data.size();
  packed_.resize(count);
  float* at = packed_.data();
  for (const Tensor& t : tensors) at = std::copy(t.data.begin(), t.data.end(), at);
  all_reduce_mean(packed_.data(), count);
  const float* from = packed_.data();
  for (Tensor& t : tensors) {
    std::copy_n(from, t.data.size(), t.data.begin());
    from += t.data.size();
  }
}

void Communicator::all_reduce_mean_device(float*, size_t) {
  throw Error("data parallel: this communicator reduces host memory only");
}

namespace {

// What the ranks of one InProcessGroup::run share: a barrier that a failed
// rank breaks, and each rank's buffer during a collective.
struct Rendezvous {
  explicit Rendezvous(int ranks) : ranks(ranks), slots(ranks) {}

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

  struct Slot {
    void* data = nullptr;
    size_t size = 0;
  };
  const int ranks;
  std::vector<Slot> slots;
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

  void all_reduce_mean(float* data, size_t count) override {
    exchange(data, count, [&] {
      // Summed in rank order, so every rank computes the same bits.
      const float scale = 1.0f / static_cast<float>(shared_.ranks);
      std::vector<float> mean(count);
      for (size_t i = 0; i < count; ++i) {
        float sum = 0.0f;
        for (int r = 0; r < shared_.ranks; ++r) sum += static_cast<const float*>(shared_.slots[r].data)[i];
        mean[i] = sum * scale;
      }
      return [this, data, mean = std::move(mean)] { std::copy(mean.begin(), mean.end(), data); };
    });
  }

  void broadcast(void* data, size_t bytes, int root) override {
    if (root < 0 || root >= shared_.ranks) throw Error("data parallel: broadcast from rank " + std::to_string(root));
    exchange(data, bytes, [&] {
      std::vector<char> copy(static_cast<const char*>(shared_.slots[root].data),
                             static_cast<const char*>(shared_.slots[root].data) + bytes);
      return [data, copy = std::move(copy)] { std::copy(copy.begin(), copy.end(), static_cast<char*>(data)); };
    });
  }

  void barrier() override { shared_.barrier(); }

 private:
  // Every rank publishes its buffer, computes its result from all of them
  // (`compute` returns what writes it back), and writes it back only after a
  // second barrier: until then other ranks may still read this rank's
  // buffer. Sizes that differ are an error on every rank alike.
  template <typename Compute>
  void exchange(void* data, size_t size, Compute compute) {
    shared_.slots[rank_] = {data, size};
    shared_.barrier();
    std::string mismatch;
    for (int r = 1; r < shared_.ranks && mismatch.empty(); ++r)
      if (shared_.slots[r].size != shared_.slots[0].size)
        mismatch = "data parallel: rank " + std::to_string(r) + " takes part with " +
                   std::to_string(shared_.slots[r].size) + " values, rank 0 with " +
                   std::to_string(shared_.slots[0].size);
    std::function<void()> write_back;
    if (mismatch.empty()) write_back = compute();
    shared_.barrier();
    if (!mismatch.empty()) throw Error(mismatch);
    write_back();
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

bool launched_by_mpi() {
  // Open MPI, MPICH / Intel MPI (Hydra's PMI), MVAPICH.
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE"})
    if (const char* value = std::getenv(name)) return std::atoi(value) > 1;
  return false;
}

#ifndef UNETIND_HAVE_MPI
std::unique_ptr<Communicator> make_mpi_communicator() {
  throw Error("data parallel: this build has no MPI (install libopenmpi-dev and rebuild)");
}

std::string mpi_library_version() { return "no MPI"; }

ProcessGroup join_process_group(const std::string& device) {
  if (launched_by_mpi())
    throw Error("mpirun started this process as one of several ranks, but this build has no MPI (install "
                "libopenmpi-dev and rebuild)");
  return {nullptr, 0, 1, device};
}
#endif

}  // namespace unetind
