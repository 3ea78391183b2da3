// What every CUDA op file shares: checked CUDA/cuDNN calls that throw
// unetind::Error with the call, file and line; cuDNN descriptors as owning
// handles; the per-executor context ops run in; the activation arena.
#pragma once
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "unetind/backend.h"
#include "unetind/error.h"

namespace unetind::cuda {

[[noreturn]] inline void throw_call_error(const char* call, const char* file, int line, const char* what) {
  throw Error(std::string("cuda backend: ") + call + " failed at " + file + ":" + std::to_string(line) + ": " + what);
}

#define UNETIND_CUDA_CHECK(call)                                                         \
  do {                                                                                   \
    const cudaError_t unetind_status_ = (call);                                          \
    if (unetind_status_ != cudaSuccess)                                                  \
      ::unetind::cuda::throw_call_error(#call, __FILE__, __LINE__,                       \
                                        cudaGetErrorString(unetind_status_));            \
  } while (0)

#define UNETIND_CUDNN_CHECK(call)                                                        \
  do {                                                                                   \
    const cudnnStatus_t unetind_status_ = (call);                                        \
    if (unetind_status_ != CUDNN_STATUS_SUCCESS)                                         \
      ::unetind::cuda::throw_call_error(#call, __FILE__, __LINE__,                       \
                                        cudnnGetErrorString(unetind_status_));           \
  } while (0)

// After a kernel launch: launch errors (bad configuration) surface here,
// execution errors at the next synchronising call.
#define UNETIND_CUDA_CHECK_LAUNCH() UNETIND_CUDA_CHECK(cudaGetLastError())

// A cuDNN descriptor, created on construction and destroyed with its owner.
template <typename T, cudnnStatus_t (*Create)(T*), cudnnStatus_t (*Destroy)(T)>
class Descriptor {
 public:
  Descriptor() { UNETIND_CUDNN_CHECK(Create(&handle_)); }
  ~Descriptor() {
    if (handle_) Destroy(handle_);
  }
  Descriptor(Descriptor&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  Descriptor& operator=(Descriptor&& other) noexcept {
    std::swap(handle_, other.handle_);
    return *this;
  }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  T get() const { return handle_; }

 private:
  T handle_ = nullptr;
};

using TensorDesc = Descriptor<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor>;
using FilterDesc = Descriptor<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor>;
using ConvDesc =
    Descriptor<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor, cudnnDestroyConvolutionDescriptor>;
using PoolDesc = Descriptor<cudnnPoolingDescriptor_t, cudnnCreatePoolingDescriptor, cudnnDestroyPoolingDescriptor>;

// An fp32 NHWC activation descriptor (cuDNN takes the dimensions as NCHW).
TensorDesc nhwc_desc(int n, int h, int w, int c);

// What an op needs to run: the executor's stream and cuDNN handle, and the
// one workspace all convolutions share (sized for the largest).
struct Context {
  int device = 0;
  cudaStream_t stream = nullptr;
  cudnnHandle_t cudnn = nullptr;
  Precision precision = Precision::F32;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};

// One device allocation carved by a size table: reserve() every buffer
// first (offsets in floats), allocate() once, then at() gives pointers.
class Arena {
 public:
  Arena() = default;
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  size_t reserve(int64_t floats);
  void allocate();  // zero-filled, so padding borders start (and stay) zero
  float* at(size_t offset) const { return base_ + offset; }
  size_t bytes() const { return size_ * sizeof(float); }

 private:
  float* base_ = nullptr;
  size_t size_ = 0;  // floats
};

// Grid size for a grid-stride loop over `count` elements.
inline unsigned grid_for(int64_t count, unsigned block = 256) {
  const int64_t blocks = (count + block - 1) / block;
  return static_cast<unsigned>(blocks < 65535 * 16 ? (blocks > 0 ? blocks : 1) : 65535 * 16);
}

}  // namespace unetind::cuda
