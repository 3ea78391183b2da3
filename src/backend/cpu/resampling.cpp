#include "backend/cpu/layout.h"
#include "backend/cpu/ops.h"

namespace unetind::cpu {

using dnnl::algorithm;
using dnnl::prop_kind;

namespace {
// Nearest x2 upsampling of nhwc images (or a blocked layout seen as such,
// layout.h) whose pixels are `pixel_bytes`, a multiple of 16: each input
// pixel twice along its output row, the row twice. A copy, so exact in any
// type. On an AVX2 EPYC, 512x512: int8 at batch 8 17-18 ms a pass in
// oneDNN 2.6's kernels, 6.4-7.1 in this one; fp32 at batch 1 the same, 3.0
// against 2.8 (docs/performance.md).
void upsample_nearest_2x(const uint8_t* src, uint8_t* dst, int images, int height, int width, size_t pixel_bytes) {
  const size_t in_row = size_t(width) * pixel_bytes, out_row = 2 * in_row;
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < images; ++n)
    for (int h = 0; h < height; ++h) {
      const uint8_t* in = src + (size_t(n) * height + h) * in_row;
      uint8_t* out = dst + (size_t(n) * 2 * height + 2 * h) * out_row;
      for (int w = 0; w < width; ++w) {
        copy16(in + w * pixel_bytes, out + 2 * w * pixel_bytes, pixel_bytes);
        copy16(in + w * pixel_bytes, out + (2 * w + 1) * pixel_bytes, pixel_bytes);
      }
      std::memcpy(out + out_row, out, out_row);
    }
}
}  // namespace

memory upsample_forward(Net& net, UpsampleLayer& layer, const memory& src, bool training) {
  const memory::desc src_md = src.get_desc();
  const memory::dims d = src_md.dims();
  const auto view = nhwc_view(src_md);
  if (!training && view && view->channels * view->element_bytes % 16 == 0) {
    const NhwcView v = *view;
    memory dst = net.make_activation(memory::desc({d[0], d[1], d[2] * 2, d[3] * 2}, src_md.data_type(), v.format));
    net.forward.push_back({{}, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}}, [=] {
                             upsample_nearest_2x(static_cast<const uint8_t*>(src.get_data_handle()),
                                                 static_cast<uint8_t*>(dst.get_data_handle()), v.images, v.height,
                                                 v.width, v.channels * v.element_bytes);
                           }});
    return dst;
  }
  const memory::desc dst_md({d[0], d[1], d[2] * 2, d[3] * 2}, src_md.data_type(), tag::any);
  layer.fwd_pd = dnnl::resampling_forward::primitive_desc(
      dnnl::resampling_forward::desc(training ? prop_kind::forward_training : prop_kind::forward_inference,
                                     algorithm::resampling_nearest, src_md, dst_md),
      user_scratchpad(), net.engine);
  memory dst = net.make_activation(layer.fwd_pd.dst_desc());
  net.append(net.forward, layer.fwd_pd, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
  return dst;
}

memory upsample_backward(Net& net, UpsampleLayer& layer, const memory& diff_dst) {
  const memory::desc src_md = layer.fwd_pd.src_desc();
  const memory::desc dst_md = layer.fwd_pd.dst_desc();
  auto bwd_pd = dnnl::resampling_backward::primitive_desc(
      dnnl::resampling_backward::desc(algorithm::resampling_nearest, src_md, dst_md), user_scratchpad(), net.engine,
      layer.fwd_pd);
  memory dd = reorder_if_needed(net, net.backward, diff_dst, bwd_pd.diff_dst_desc());
  memory diff_src = net.make_activation(bwd_pd.diff_src_desc());
  net.append(net.backward, bwd_pd, {{DNNL_ARG_DIFF_DST, dd}, {DNNL_ARG_DIFF_SRC, diff_src}});
  return diff_src;
}

}  // namespace unetind::cpu
