#include "backend/cpu/ops.h"

namespace unetind::cpu {

using dnnl::algorithm;
using dnnl::prop_kind;

memory pool_forward(Net& net, PoolLayer& layer, const memory& src, bool training) {
  const memory::desc src_md = src.get_desc();
  const memory::dims d = src_md.dims();
  const memory::desc dst_md({d[0], d[1], d[2] / 2, d[3] / 2}, src_md.data_type(), tag::any);
  layer.fwd_pd = dnnl::pooling_forward::primitive_desc(
      dnnl::pooling_forward::desc(training ? prop_kind::forward_training : prop_kind::forward_inference,
                                  algorithm::pooling_max, src_md, dst_md, {2, 2}, {2, 2}, {0, 0}, {0, 0}),
      user_scratchpad(), net.engine);
  memory dst = net.make_activation(layer.fwd_pd.dst_desc());
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}};
  if (training) {
    layer.workspace = net.make_activation(layer.fwd_pd.workspace_desc());
    args[DNNL_ARG_WORKSPACE] = layer.workspace;
  }
  net.append(net.forward, layer.fwd_pd, std::move(args));
  return dst;
}

memory pool_backward(Net& net, PoolLayer& layer, const memory& diff_dst) {
  const memory::desc src_md = layer.fwd_pd.src_desc();
  const memory::desc dst_md = layer.fwd_pd.dst_desc();
  auto bwd_pd = dnnl::pooling_backward::primitive_desc(
      dnnl::pooling_backward::desc(algorithm::pooling_max, src_md, dst_md, {2, 2}, {2, 2}, {0, 0}, {0, 0}),
      user_scratchpad(), net.engine, layer.fwd_pd);
  memory dd = reorder_if_needed(net, net.backward, diff_dst, bwd_pd.diff_dst_desc());
  memory diff_src = net.make_activation(bwd_pd.diff_src_desc());
  net.append(net.backward, bwd_pd,
             {{DNNL_ARG_DIFF_DST, dd}, {DNNL_ARG_DIFF_SRC, diff_src}, {DNNL_ARG_WORKSPACE, layer.workspace}});
  return diff_src;
}

}  // namespace unetind::cpu
