// Data-parallel training as NVIDIA's scripts run it under Horovod (SPEC.md
// section 2): each rank takes its shard of the global batch, computes the
// gradients of its own loss on that shard (plus weight decay), and an
// all-reduce replaces them by their mean over ranks before every rank applies
// the same update. For a loss that is a mean over equal shards (x-entropy)
// that mean is the global-batch gradient; for the batch-global Dice losses
// and l2_loss it is the mean of the per-shard gradients, as under Horovod.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "unetind/tensor.h"

namespace unetind {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Collective: every rank calls it with tensors of the same shapes in the
  // same order; afterwards every rank holds the element-wise mean over ranks.
  virtual void all_reduce_mean(std::vector<Tensor>& tensors) = 0;
};

// Samples per rank; global_batch must be a positive multiple of ranks.
int shard_size(int global_batch, int ranks);
// Rank `rank`'s samples of a global batch of `global_batch` samples of
// `sample_size` floats: samples rank, rank + ranks, ... (TF's Dataset.shard,
// which NVIDIA's Horovod input pipeline applies), so the shards of one step
// together are exactly the global batch a single-GPU run sees.
void shard_batch(const float* global, int global_batch, int64_t sample_size, int rank, int ranks, float* shard);

// N ranks in one process, one thread each: the communicator the tests and the
// CPU use in place of NCCL. Its mean is summed in rank order, so every rank
// gets bit-identical results.
class InProcessGroup {
 public:
  explicit InProcessGroup(int ranks);
  ~InProcessGroup();
  int size() const { return ranks_; }
  // Runs fn on `ranks` threads, each with its rank's communicator, and waits
  // for all. A rank that throws releases the others from any collective (they
  // throw too); the first rank's error is rethrown here.
  void run(const std::function<void(Communicator&)>& fn);

 private:
  int ranks_;
};

// NCCL (built with CUDA and NCCL; otherwise these throw Error). One process
// with one thread per GPU: communicators for devices 0..gpus-1, the one at
// index r for the thread of rank r. Tensors stay host tensors at this
// boundary; the all-reduce runs on the devices.
std::vector<std::unique_ptr<Communicator>> make_nccl_communicators(int gpus);
// One process per GPU (mpirun): rank 0 makes the id, the launcher hands it to
// every rank, each calls make_nccl_communicator with its rank and device.
std::string make_nccl_unique_id();
std::unique_ptr<Communicator> make_nccl_communicator(const std::string& unique_id, int rank, int ranks, int device);

}  // namespace unetind
