#include "backend/cuda/ops.h"

namespace unetind::cuda {

namespace {

// One thread per output element: x2 nearest is pixel replication.
__global__ void upsample_forward_kernel(const float* src, float* dst, int64_t count, int height, int width,
                                        int channels) {
  const int out_w = 2 * width, out_h = 2 * height;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    const int c = static_cast<int>(i % channels);
    const int64_t p = i / channels;
    const int x = static_cast<int>(p % out_w), y = static_cast<int>((p / out_w) % out_h);
    const int64_t b = p / (int64_t(out_w) * out_h);
    dst[i] = src[((b * height + y / 2) * width + x / 2) * channels + c];
  }
}

// One thread per input element, summing its 2x2 block: no atomics, so the
// result does not depend on scheduling.
__global__ void upsample_backward_kernel(const float* diff_dst, float* diff_src, int64_t count, int height, int width,
                                         int channels, bool accumulate) {
  const int out_w = 2 * width;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    const int c = static_cast<int>(i % channels);
    const int64_t p = i / channels;
    const int x = static_cast<int>(p % width), y = static_cast<int>((p / width) % height);
    const int64_t b = p / (int64_t(width) * height);
    const int64_t row = (b * 2 * height + 2 * y) * out_w;
    const int64_t c00 = (row + 2 * x) * channels + c, c10 = c00 + int64_t(out_w) * channels;
    const float sum = diff_dst[c00] + diff_dst[c00 + channels] + diff_dst[c10] + diff_dst[c10 + channels];
    diff_src[i] = accumulate ? diff_src[i] + sum : sum;
  }
}

}  // namespace

void upsample_forward(const Context& ctx, const float* src, float* dst, int batch, int height, int width,
                      int channels) {
  const int64_t count = int64_t(batch) * 4 * height * width * channels;
  upsample_forward_kernel<<<grid_for(count), 256, 0, ctx.stream>>>(src, dst, count, height, width, channels);
  UNETIND_CUDA_CHECK_LAUNCH();
}

void upsample_backward(const Context& ctx, const float* diff_dst, float* diff_src, int batch, int height, int width,
                       int channels, bool accumulate) {
  const int64_t count = int64_t(batch) * height * width * channels;
  upsample_backward_kernel<<<grid_for(count), 256, 0, ctx.stream>>>(diff_dst, diff_src, count, height, width,
                                                                    channels, accumulate);
  UNETIND_CUDA_CHECK_LAUNCH();
}

}  // namespace unetind::cuda
