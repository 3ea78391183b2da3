// Data-parallel training as NVIDIA's scripts run it under Horovod (SPEC.md
// section 2): each rank takes its shard of the global batch, computes the
// gradients of its own loss on that shard, and an all-reduce replaces them by
// their mean over ranks before every rank applies the same update (weight
// decay, the same on every rank, is added after the mean). For a loss that
// is a mean over equal shards (x-entropy) that mean is the global-batch
// gradient; for the batch-global Dice losses and l2_loss it is the mean of
// the per-shard gradients, as under Horovod. docs/distributed.md has the
// whole story.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "unetind/tensor.h"

namespace unetind {

// The collectives a data-parallel run needs. Every rank calls each of them
// in the same order with the same sizes; a rank that dies or throws does not
// leave the others waiting where the implementation can tell (the
// in-process group; MPI's runtime ends the job).
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // Afterwards every rank holds the element-wise mean over ranks of `count`
  // values of host memory.
  virtual void all_reduce_mean(float* data, size_t count) = 0;
  // The same over host tensors (of the same shapes on every rank, in the
  // same order), as one reduction.
  void all_reduce_mean(std::vector<Tensor>& tensors);

  // Whether all_reduce_mean_device takes memory of this rank's GPU (NCCL).
  virtual bool reduces_device_memory() const { return false; }
  virtual void all_reduce_mean_device(float* data, size_t count);

  // `bytes` of host memory from rank `root` to every rank.
  virtual void broadcast(void* data, size_t bytes, int root) = 0;
  // Returns once every rank has called it.
  virtual void barrier() = 0;
  // Ends every rank of the group at once, where the group can (MPI_Abort):
  // for an error on one rank that the others would wait for. Does nothing
  // elsewhere.
  virtual void abort_group(int /*exit_code*/) {}

 private:
  std::vector<float> packed_;  // all_reduce_mean(tensors)'s single buffer
};

// Samples per rank; global_batch must be a positive multiple of ranks.
int shard_size(int global_batch, int ranks);
// Rank `rank`'s samples of a global batch of `global_batch` samples of
// `sample_size` floats: samples rank, rank + ranks, ... (TF's Dataset.shard,
// which NVIDIA's Horovod input pipeline applies), so the shards of one step
// together are exactly the global batch a single-GPU run sees.
void shard_batch(const float* global, int global_batch, int64_t sample_size, int rank, int ranks, float* shard);

// N ranks in one process, one thread each: the communicator the tests use
// in place of MPI or NCCL. Its mean is summed in rank order, so every rank
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

// MPI (built with Open MPI or another MPI; otherwise these throw Error or
// say no). A process that mpirun started with other ranks: its rank and the
// group's size as the launcher's environment says (before MPI starts).
bool launched_by_mpi();
// The MPI communicator of this process's MPI_COMM_WORLD, starting MPI (and
// ending it when destroyed) unless the process has already.
std::unique_ptr<Communicator> make_mpi_communicator();
// "MPI (Open MPI v4.1.4)", or "no MPI" for a build without it.
std::string mpi_library_version();

// NCCL (built with CUDA and NCCL; otherwise these throw Error). One process
// with one thread per GPU: communicators for devices 0..gpus-1, the one at
// index r for the thread of rank r. One process per GPU (mpirun): rank 0
// makes the id, the launcher hands it to every rank, each calls
// make_nccl_communicator with its rank and device. Their all_reduce_mean
// takes host memory (staged) and all_reduce_mean_device the device's.
std::vector<std::unique_ptr<Communicator>> make_nccl_communicators(int gpus);
std::string make_nccl_unique_id();
std::unique_ptr<Communicator> make_nccl_communicator(const std::string& unique_id, int rank, int ranks, int device);

// The group of a run that mpirun launched: this process's communicator, its
// rank among the ranks on its host, and the device it computes on. With
// `device` "cuda" each rank takes the GPU of its local rank; on a CUDA device
// in a build with NCCL the gradients are averaged by NCCL between the GPUs,
// everything else by MPI. Not launched by mpirun (or alone): no
// communicator, `device` as given.
struct ProcessGroup {
  std::unique_ptr<Communicator> communicator;  // null: one process
  int local_rank = 0;
  int local_size = 1;
  std::string device;
};
ProcessGroup join_process_group(const std::string& device);

}  // namespace unetind
