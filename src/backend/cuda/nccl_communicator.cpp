// The NCCL communicator of data_parallel.h: gradients cross the boundary as
// host tensors, are packed into one device buffer and averaged in a single
// ncclAllReduce (ncclAvg) on the rank's GPU.
#include <nccl.h>

#include <cstring>

#include "backend/cuda/common.h"
#include "unetind/data_parallel.h"

namespace unetind {

namespace {

#define UNETIND_NCCL_CHECK(call)                                                                                    \
  do {                                                                                                             \
    const ncclResult_t unetind_status_ = (call);                                                                   \
    if (unetind_status_ != ncclSuccess)                                                                            \
      ::unetind::cuda::throw_call_error(#call, __FILE__, __LINE__, ncclGetErrorString(unetind_status_));           \
  } while (0)

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(ncclComm_t comm, int rank, int ranks, int device) : comm_(comm), rank_(rank), ranks_(ranks), device_(device) {
    UNETIND_CUDA_CHECK(cudaSetDevice(device_));
    UNETIND_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  ~NcclCommunicator() override {
    cudaSetDevice(device_);  // unchecked: a destructor must not throw
    if (buffer_) cudaFree(buffer_);
    if (host_) cudaFreeHost(host_);
    cudaStreamDestroy(stream_);
    ncclCommDestroy(comm_);
  }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return ranks_; }

  void all_reduce_mean(std::vector<Tensor>& tensors) override {
    size_t count = 0;
    for (const Tensor& t : tensors) count += t.data.size();
    if (count == 0) return;
    UNETIND_CUDA_CHECK(cudaSetDevice(device_));
    reserve(count);
    size_t offset = 0;
    for (const Tensor& t : tensors) {
      std::memcpy(host_ + offset, t.data.data(), t.data.size() * sizeof(float));
      offset += t.data.size();
    }
    UNETIND_CUDA_CHECK(cudaMemcpyAsync(buffer_, host_, count * sizeof(float), cudaMemcpyHostToDevice, stream_));
    UNETIND_NCCL_CHECK(ncclAllReduce(buffer_, buffer_, count, ncclFloat, ncclAvg, comm_, stream_));
    UNETIND_CUDA_CHECK(cudaMemcpyAsync(host_, buffer_, count * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    UNETIND_CUDA_CHECK(cudaStreamSynchronize(stream_));
    offset = 0;
    for (Tensor& t : tensors) {
      std::memcpy(t.data.data(), host_ + offset, t.data.size() * sizeof(float));
      offset += t.data.size();
    }
  }

 private:
  // Pinned staging and the device buffer, grown to the largest reduction.
  void reserve(size_t count) {
    if (count <= capacity_) return;
    if (buffer_) UNETIND_CUDA_CHECK(cudaFree(buffer_));
    if (host_) UNETIND_CUDA_CHECK(cudaFreeHost(host_));
    buffer_ = nullptr;
    host_ = nullptr;
    capacity_ = 0;
    UNETIND_CUDA_CHECK(cudaMalloc(&buffer_, count * sizeof(float)));
    UNETIND_CUDA_CHECK(cudaMallocHost(&host_, count * sizeof(float)));
    capacity_ = count;
  }

  ncclComm_t comm_;
  int rank_, ranks_, device_;
  cudaStream_t stream_ = nullptr;
  float* buffer_ = nullptr;
  float* host_ = nullptr;
  size_t capacity_ = 0;
};

}  // namespace

std::vector<std::unique_ptr<Communicator>> make_nccl_communicators(int gpus) {
  int available = 0;
  if (cudaGetDeviceCount(&available) != cudaSuccess) available = 0;
  if (gpus < 1 || gpus > available)
    throw Error("data parallel: " + std::to_string(gpus) + " GPUs asked for, " + std::to_string(available) +
                " CUDA device(s) found");
  std::vector<ncclComm_t> comms(gpus);
  std::vector<int> devices(gpus);
  for (int i = 0; i < gpus; ++i) devices[i] = i;
  UNETIND_NCCL_CHECK(ncclCommInitAll(comms.data(), gpus, devices.data()));
  std::vector<std::unique_ptr<Communicator>> out;
  for (int i = 0; i < gpus; ++i) out.push_back(std::make_unique<NcclCommunicator>(comms[i], i, gpus, i));
  return out;
}

std::string make_nccl_unique_id() {
  ncclUniqueId id;
  UNETIND_NCCL_CHECK(ncclGetUniqueId(&id));
  return std::string(id.internal, sizeof(id.internal));
}

std::unique_ptr<Communicator> make_nccl_communicator(const std::string& unique_id, int rank, int ranks, int device) {
  ncclUniqueId id;
  if (unique_id.size() != sizeof(id.internal))
    throw Error("data parallel: an NCCL unique id has " + std::to_string(sizeof(id.internal)) + " bytes, got " +
                std::to_string(unique_id.size()));
  std::memcpy(id.internal, unique_id.data(), sizeof(id.internal));
  UNETIND_CUDA_CHECK(cudaSetDevice(device));
  ncclComm_t comm = nullptr;
  UNETIND_NCCL_CHECK(ncclCommInitRank(&comm, ranks, id, rank));
  return std::make_unique<NcclCommunicator>(comm, rank, ranks, device);
}

}  // namespace unetind
