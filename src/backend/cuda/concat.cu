#include "backend/cuda/ops.h"

namespace unetind::cuda {

namespace {

// Copies `channels` channels of every pixel between tensors of different
// channel counts (src_stride, dst_stride), starting at the given channel
// offsets: both directions of the concatenation.
__global__ void copy_channels_kernel(const float* src, int src_stride, int src_offset, float* dst, int dst_stride,
                                     int dst_offset, int64_t pixels, int channels, bool accumulate) {
  const int64_t count = pixels * channels;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t p = i / channels;
    const int c = static_cast<int>(i % channels);
    const float v = src[p * src_stride + src_offset + c];
    float& out = dst[p * dst_stride + dst_offset + c];
    out = accumulate ? out + v : v;
  }
}

void copy_channels(const Context& ctx, const float* src, int src_stride, int src_offset, float* dst, int dst_stride,
                   int dst_offset, int64_t pixels, int channels, bool accumulate) {
  copy_channels_kernel<<<grid_for(pixels * channels), 256, 0, ctx.stream>>>(
      src, src_stride, src_offset, dst, dst_stride, dst_offset, pixels, channels, accumulate);
  UNETIND_CUDA_CHECK_LAUNCH();
}

}  // namespace

void concat_forward(const Context& ctx, const float* a, const float* b, float* dst, int64_t pixels, int channels_a,
                    int channels_b) {
  const int total = channels_a + channels_b;
  copy_channels(ctx, a, channels_a, 0, dst, total, 0, pixels, channels_a, false);
  copy_channels(ctx, b, channels_b, 0, dst, total, channels_a, pixels, channels_b, false);
}

void concat_backward(const Context& ctx, const float* diff_dst, float* diff_a, float* diff_b, int64_t pixels,
                     int channels_a, int channels_b, bool accumulate_a, bool accumulate_b) {
  const int total = channels_a + channels_b;
  if (diff_a) copy_channels(ctx, diff_dst, total, 0, diff_a, channels_a, 0, pixels, channels_a, accumulate_a);
  if (diff_b) copy_channels(ctx, diff_dst, total, channels_a, diff_b, channels_b, 0, pixels, channels_b, accumulate_b);
}

}  // namespace unetind::cuda
