#include "backend/cuda/common.h"

namespace unetind::cuda {

TensorDesc nhwc_desc(int n, int h, int w, int c) {
  TensorDesc desc;
  UNETIND_CUDNN_CHECK(cudnnSetTensor4dDescriptor(desc.get(), CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, n, c, h, w));
  return desc;
}

Arena::~Arena() {
  if (base_) cudaFree(base_);  // unchecked: a destructor must not throw
}

size_t Arena::reserve(int64_t floats) {
  // 256-byte alignment keeps every buffer on the boundary cuDNN's fast
  // kernels want (vectorised NHWC loads).
  constexpr size_t kAlign = 256 / sizeof(float);
  const size_t offset = (size_ + kAlign - 1) / kAlign * kAlign;
  size_ = offset + static_cast<size_t>(floats);
  return offset;
}

void Arena::allocate() {
  if (base_) throw Error("cuda backend: arena allocated twice");
  UNETIND_CUDA_CHECK(cudaMalloc(&base_, bytes()));
  UNETIND_CUDA_CHECK(cudaMemset(base_, 0, bytes()));
}

}  // namespace unetind::cuda
