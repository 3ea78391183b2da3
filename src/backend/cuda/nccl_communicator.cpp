// The NCCL communicator of data_parallel.h: device memory is averaged in place
// by ncclAllReduce (ncclAvg) on the rank's GPU; host memory goes through a
// device buffer first.
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

  void all_reduce_mean(float* data, size_t count) override {
    if (count == 0) return;
    stage_in(data, count * sizeof(float));
    all_reduce_mean_device(static_cast<float*>(buffer_), count);
    stage_out(data, count * sizeof(float));
  }

  bool reduces_device_memory() const override { return true; }

  void all_reduce_mean_device(float* data, size_t count) override {
    if (count == 0) return;
    UNETIND_CUDA_CHECK(cudaSetDevice(device_));
    UNETIND_NCCL_CHECK(ncclAllReduce(data, data, count, ncclFloat, ncclAvg, comm_, stream_));
    UNETIND_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  void broadcast(void* data, size_t bytes, int root) override {
    if (bytes == 0) return;
    stage_in(data, bytes);
    UNETIND_NCCL_CHECK(ncclBroadcast(buffer_, buffer_, bytes, ncclChar, root, comm_, stream_));
    stage_out(data, bytes);
  }

  void barrier() override {
    float token = 0.0f;
    all_reduce_mean(&token, 1);
  }

 private:
  // Host memory to the device buffer and back, through pinned staging; both
  // grow to the largest collective.
  void stage_in(const void* data, size_t bytes) {
    UNETIND_CUDA_CHECK(cudaSetDevice(device_));
    reserve(bytes);
    std::memcpy(host_, data, bytes);
    UNETIND_CUDA_CHECK(cudaMemcpyAsync(buffer_, host_, bytes, cudaMemcpyHostToDevice, stream_));
  }
  void stage_out(void* data, size_t bytes) {
    UNETIND_CUDA_CHECK(cudaMemcpyAsync(host_, buffer_, bytes, cudaMemcpyDeviceToHost, stream_));
    UNETIND_CUDA_CHECK(cudaStreamSynchronize(stream_));
    std::memcpy(data, host_, bytes);
  }

  void reserve(size_t bytes) {
    if (bytes <= capacity_) return;
    if (buffer_) UNETIND_CUDA_CHECK(cudaFree(buffer_));
    if (host_) UNETIND_CUDA_CHECK(cudaFreeHost(host_));
    buffer_ = nullptr;
    host_ = nullptr;
    capacity_ = 0;
    UNETIND_CUDA_CHECK(cudaMalloc(&buffer_, bytes));
    UNETIND_CUDA_CHECK(cudaMallocHost(&host_, bytes));
    capacity_ = bytes;
  }

  ncclComm_t comm_;
  int rank_, ranks_, device_;
  cudaStream_t stream_ = nullptr;
  void* buffer_ = nullptr;
  void* host_ = nullptr;
  size_t capacity_ = 0;  // bytes
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
