#include "backend/cuda/ops.h"

namespace unetind::cuda {

namespace {

// Leaky ReLU keeps the sign of its input, so the saved output decides the
// slope in backward; ReLU is the case alpha = 0.
__device__ __forceinline__ float activate(float x, float alpha) { return x > 0.f ? x : alpha * x; }

float alpha_of(Activation act) { return act == Activation::LeakyRelu ? kLeakyReluAlpha : 0.0f; }

__global__ void bias_activation_kernel(float* data, const float* bias, int64_t count, int channels, bool activate_it,
                                       float alpha) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    const float x = data[i] + bias[i % channels];
    data[i] = activate_it ? activate(x, alpha) : x;
  }
}

__global__ void activation_backward_kernel(const float* dst, const float* diff_dst, float* diff_pre, int64_t count,
                                           float alpha) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    diff_pre[i] = dst[i] > 0.f ? diff_dst[i] : alpha * diff_dst[i];
}

__global__ void sigmoid_kernel(const float* src, float* dst, int64_t count) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = 1.f / (1.f + expf(-src[i]));
}

}  // namespace

void bias_activation_forward(const Context& ctx, float* data, const float* bias, int64_t pixels, int channels,
                             Activation act) {
  const int64_t count = pixels * channels;
  bias_activation_kernel<<<grid_for(count), 256, 0, ctx.stream>>>(data, bias, count, channels,
                                                                  act != Activation::None, alpha_of(act));
  UNETIND_CUDA_CHECK_LAUNCH();
}

void activation_backward(const Context& ctx, const float* dst, const float* diff_dst, float* diff_pre, int64_t count,
                         Activation act) {
  activation_backward_kernel<<<grid_for(count), 256, 0, ctx.stream>>>(dst, diff_dst, diff_pre, count, alpha_of(act));
  UNETIND_CUDA_CHECK_LAUNCH();
}

void sigmoid_forward(const Context& ctx, const float* src, float* dst, int64_t count) {
  sigmoid_kernel<<<grid_for(count), 256, 0, ctx.stream>>>(src, dst, count);
  UNETIND_CUDA_CHECK_LAUNCH();
}

}  // namespace unetind::cuda
