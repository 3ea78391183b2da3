#include "backend/cuda/ops.h"

namespace unetind::cuda {

void pool_setup(PoolLayer& layer, int batch, int height, int width, int channels) {
  // Deterministic max: the gradient goes to one maximum, the same every run.
  UNETIND_CUDNN_CHECK(cudnnSetPooling2dDescriptor(layer.pool_desc.get(), CUDNN_POOLING_MAX_DETERMINISTIC,
                                                  CUDNN_NOT_PROPAGATE_NAN, 2, 2, 0, 0, 2, 2));
  layer.x_desc = nhwc_desc(batch, height, width, channels);
  layer.y_desc = nhwc_desc(batch, height / 2, width / 2, channels);
}

void pool_forward(const Context& ctx, const PoolLayer& layer, const float* src, float* dst) {
  const float one = 1.f, zero = 0.f;
  UNETIND_CUDNN_CHECK(cudnnPoolingForward(ctx.cudnn, layer.pool_desc.get(), &one, layer.x_desc.get(), src, &zero,
                                          layer.y_desc.get(), dst));
}

void pool_backward(const Context& ctx, const PoolLayer& layer, const float* src, const float* dst,
                   const float* diff_dst, float* diff_src, bool accumulate) {
  const float one = 1.f, beta = accumulate ? 1.f : 0.f;
  UNETIND_CUDNN_CHECK(cudnnPoolingBackward(ctx.cudnn, layer.pool_desc.get(), &one, layer.y_desc.get(), dst,
                                           layer.y_desc.get(), diff_dst, layer.x_desc.get(), src, &beta,
                                           layer.x_desc.get(), diff_src));
}

}  // namespace unetind::cuda
