#include <algorithm>

#include "backend/cuda/ops.h"

namespace unetind::cuda {

namespace {

// Moves every pixel between an h x w tensor and the interior of its padded
// copy (ph x pw, the interior starting at row and column `before`). The
// border is never written, so it keeps the zeros the arena starts with.
__global__ void window_kernel(const float* src, float* dst, int64_t count, int height, int width, int channels,
                              int padded_height, int padded_width, int before, bool into_padded, bool accumulate) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    const int c = static_cast<int>(i % channels);
    const int64_t p = i / channels;
    const int x = static_cast<int>(p % width), y = static_cast<int>((p / width) % height);
    const int64_t b = p / (int64_t(width) * height);
    const int64_t j = ((b * padded_height + y + before) * padded_width + x + before) * channels + c;
    if (into_padded) {
      dst[j] = src[i];
    } else {
      dst[i] = accumulate ? dst[i] + src[j] : src[j];
    }
  }
}

void move_window(const Context& ctx, const ConvLayer& l, const float* src, float* dst, bool into_padded,
                 bool accumulate) {
  const int64_t count = int64_t(l.batch) * l.height * l.width * l.spec.in_channels;
  window_kernel<<<grid_for(count), 256, 0, ctx.stream>>>(src, dst, count, l.height, l.width, l.spec.in_channels,
                                                         l.padded_height, l.padded_width, l.pad_before, into_padded,
                                                         accumulate);
  UNETIND_CUDA_CHECK_LAUNCH();
}

// FFT and non-fused Winograd round differently enough to miss the fp32
// contract (1e-5 relative to the plain-loop reference); they stay for tf32.
bool approximate(cudnnConvolutionFwdAlgo_t a) {
  return a == CUDNN_CONVOLUTION_FWD_ALGO_FFT || a == CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING ||
         a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED;
}
bool approximate(cudnnConvolutionBwdDataAlgo_t a) {
  return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING ||
         a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED;
}
bool approximate(cudnnConvolutionBwdFilterAlgo_t a) {
  return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING ||
         a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED;
}

// cudnnFind* returns its measurements fastest first.
template <typename Perf>
const Perf& fastest(const Perf* perfs, int count, Precision precision, const ConvLayer& l, const char* direction) {
  for (int i = 0; i < count; ++i)
    if (perfs[i].status == CUDNN_STATUS_SUCCESS && !(precision == Precision::F32 && approximate(perfs[i].algo)))
      return perfs[i];
  throw Error("cuda backend: cuDNN has no " + std::string(direction) + " algorithm for convolution '" + l.spec.scope +
              "' at " + std::to_string(l.batch) + "x" + std::to_string(l.height) + "x" + std::to_string(l.width));
}

}  // namespace

size_t conv_setup(const Context& ctx, ConvLayer& l, int batch, int height, int width, bool training) {
  const ConvSpec& s = l.spec;
  l.batch = batch;
  l.height = height;
  l.width = width;
  const int total_pad = s.kernel - 1;
  l.pad_before = total_pad / 2;
  l.padded_height = l.needs_padding() ? height + total_pad : height;
  l.padded_width = l.needs_padding() ? width + total_pad : width;
  const int conv_pad = l.needs_padding() ? 0 : l.pad_before;

  l.x_desc = nhwc_desc(batch, l.padded_height, l.padded_width, s.in_channels);
  l.y_desc = nhwc_desc(batch, height, width, s.out_channels);
  UNETIND_CUDNN_CHECK(
      cudnnSetTensor4dDescriptor(l.bias_desc.get(), CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, s.out_channels, 1, 1));
  UNETIND_CUDNN_CHECK(cudnnSetFilter4dDescriptor(l.w_desc.get(), CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, s.out_channels,
                                                 s.in_channels, s.kernel, s.kernel));
  UNETIND_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(l.conv_desc.get(), conv_pad, conv_pad, 1, 1, 1, 1,
                                                      CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  // fp32 means fp32 FMAs; tf32 lets cuDNN use the tensor cores.
  UNETIND_CUDNN_CHECK(cudnnSetConvolutionMathType(
      l.conv_desc.get(), ctx.precision == Precision::F32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH));

  int n = 0, c = 0, h = 0, w = 0;
  UNETIND_CUDNN_CHECK(
      cudnnGetConvolution2dForwardOutputDim(l.conv_desc.get(), l.x_desc.get(), l.w_desc.get(), &n, &c, &h, &w));
  if (n != batch || c != s.out_channels || h != height || w != width)
    throw Error("cuda backend: convolution '" + s.scope + "' would not keep its input size");

  int returned = 0;
  cudnnConvolutionFwdAlgoPerf_t fwd[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  UNETIND_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(ctx.cudnn, l.x_desc.get(), l.w_desc.get(),
                                                           l.conv_desc.get(), l.y_desc.get(),
                                                           CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, fwd));
  const auto& fwd_best = fastest(fwd, returned, ctx.precision, l, "forward");
  l.fwd_algo = fwd_best.algo;
  size_t workspace = fwd_best.memory;
  if (!training) return workspace;

  cudnnConvolutionBwdDataAlgoPerf_t data[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
  UNETIND_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithm(ctx.cudnn, l.w_desc.get(), l.y_desc.get(),
                                                                l.conv_desc.get(), l.x_desc.get(),
                                                                CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &returned, data));
  const auto& data_best = fastest(data, returned, ctx.precision, l, "backward-data");
  l.bwd_data_algo = data_best.algo;

  cudnnConvolutionBwdFilterAlgoPerf_t filter[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
  UNETIND_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithm(
      ctx.cudnn, l.x_desc.get(), l.y_desc.get(), l.conv_desc.get(), l.w_desc.get(),
      CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &returned, filter));
  const auto& filter_best = fastest(filter, returned, ctx.precision, l, "backward-filter");
  l.bwd_filter_algo = filter_best.algo;
  return std::max({workspace, data_best.memory, filter_best.memory});
}

void conv_forward(const Context& ctx, const ConvLayer& l, const float* src, float* dst) {
  const float* x = src;
  if (l.needs_padding()) {
    move_window(ctx, l, src, l.padded, true, false);
    x = l.padded;
  }
  const float one = 1.f, zero = 0.f;
  UNETIND_CUDNN_CHECK(cudnnConvolutionForward(ctx.cudnn, &one, l.x_desc.get(), x, l.w_desc.get(), l.weights,
                                              l.conv_desc.get(), l.fwd_algo, ctx.workspace, ctx.workspace_bytes,
                                              &zero, l.y_desc.get(), dst));
  bias_activation_forward(ctx, dst, l.bias, int64_t(l.batch) * l.height * l.width, l.spec.out_channels,
                          l.spec.activation);
}

void conv_backward(const Context& ctx, const ConvLayer& l, const float* src, const float* dst, const float* diff_dst,
                   float* diff_src, bool accumulate) {
  const float* dy = diff_dst;
  if (l.spec.activation != Activation::None) {
    activation_backward(ctx, dst, diff_dst, l.diff_pre, l.output_count(), l.spec.activation);
    dy = l.diff_pre;
  }
  const float one = 1.f, zero = 0.f;
  UNETIND_CUDNN_CHECK(
      cudnnConvolutionBackwardBias(ctx.cudnn, &one, l.y_desc.get(), dy, &zero, l.bias_desc.get(), l.diff_bias));
  // The padded copy from forward is still the convolution's input.
  const float* x = l.needs_padding() ? l.padded : src;
  UNETIND_CUDNN_CHECK(cudnnConvolutionBackwardFilter(ctx.cudnn, &one, l.x_desc.get(), x, l.y_desc.get(), dy,
                                                     l.conv_desc.get(), l.bwd_filter_algo, ctx.workspace,
                                                     ctx.workspace_bytes, &zero, l.w_desc.get(), l.diff_weights));
  if (!diff_src) return;
  if (l.needs_padding()) {
    UNETIND_CUDNN_CHECK(cudnnConvolutionBackwardData(ctx.cudnn, &one, l.w_desc.get(), l.weights, l.y_desc.get(), dy,
                                                     l.conv_desc.get(), l.bwd_data_algo, ctx.workspace,
                                                     ctx.workspace_bytes, &zero, l.x_desc.get(), l.diff_padded));
    move_window(ctx, l, l.diff_padded, diff_src, false, accumulate);
  } else {
    const float beta = accumulate ? 1.f : 0.f;
    UNETIND_CUDNN_CHECK(cudnnConvolutionBackwardData(ctx.cudnn, &one, l.w_desc.get(), l.weights, l.y_desc.get(), dy,
                                                     l.conv_desc.get(), l.bwd_data_algo, ctx.workspace,
                                                     ctx.workspace_bytes, &beta, l.x_desc.get(), diff_src));
  }
}

}  // namespace unetind::cuda
