#include "backend/cpu/ops.h"

namespace unetind::cpu {

using dnnl::algorithm;
using dnnl::prop_kind;

memory upsample_forward(Net& net, UpsampleLayer& layer, const memory& src, bool training) {
  const memory::desc src_md = src.get_desc();
  const memory::dims d = src_md.dims();
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
