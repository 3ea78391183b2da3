#include "backend/cpu/ops.h"

namespace unetind::cpu {

memory concat_forward(Net& net, const memory& a, const memory& b) {
  auto pd = dnnl::concat::primitive_desc(1, {a.get_desc(), b.get_desc()}, net.engine);
  memory dst = net.make(pd.dst_desc());
  net.forward.push_back(
      {dnnl::concat(pd), {{DNNL_ARG_MULTIPLE_SRC + 0, a}, {DNNL_ARG_MULTIPLE_SRC + 1, b}, {DNNL_ARG_DST, dst}}});
  return dst;
}

std::pair<memory, memory> concat_backward(Net& net, const memory& diff_dst, const memory::desc& a_md,
                                          const memory::desc& b_md) {
  // The gradient of a concatenation is the matching channel slice of the
  // incoming gradient: a reorder out of a sub-memory view of it, into the
  // layout the input had in the forward pass.
  const memory::desc md = diff_dst.get_desc();
  auto slice = [&](const memory::desc& part_md, int offset) {
    memory view(md.submemory_desc(part_md.dims(), {0, offset, 0, 0}), net.engine, diff_dst.get_data_handle());
    memory out = net.make(part_md);
    net.backward.push_back({dnnl::reorder(view, out), {{DNNL_ARG_FROM, view}, {DNNL_ARG_TO, out}}});
    return out;
  };
  return {slice(a_md, 0), slice(b_md, static_cast<int>(a_md.dims()[1]))};
}

}  // namespace unetind::cpu
