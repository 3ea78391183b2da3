#include <cstring>

#include "backend/cpu/ops.h"
#include "unetind/error.h"

namespace unetind::cpu {

namespace {
// The activation layouts oneDNN picks on CPUs, and their channel blocks.
struct Layout {
  tag format;
  int channel_block;
};
std::optional<Layout> layout_of(const memory::desc& md) {
  for (Layout l : {Layout{tag::nhwc, 1}, Layout{tag::nchw, 1}, Layout{tag::nChw16c, 16}, Layout{tag::nChw8c, 8}})
    if (memory::desc(md.dims(), md.data_type(), l.format) == md) return l;
  return std::nullopt;
}

// Concatenation of channels in nhwc: each pixel's `a_bytes` of the first
// input, then its `b_bytes` of the second, both multiples of 16. Copied in
// 16-byte pieces the compiler keeps in registers: oneDNN 2.6's reorders into
// channel views move a few bytes a pixel slowly (int8 at batch 8, 512x512:
// 30 ms of a 142 ms pass, which this copy takes to 128 ms; bf16 from 222 to
// 207 ms; docs/performance.md).
void concat_nhwc(const uint8_t* a, const uint8_t* b, uint8_t* dst, size_t pixels, size_t a_bytes, size_t b_bytes) {
  auto copy = [](const uint8_t* from, uint8_t* to, size_t bytes) {
    for (size_t i = 0; i < bytes; i += 16) std::memcpy(to + i, from + i, 16);
  };
#pragma omp parallel for schedule(static)
  for (size_t p = 0; p < pixels; ++p) {
    uint8_t* out = dst + p * (a_bytes + b_bytes);
    copy(a + p * a_bytes, out, a_bytes);
    copy(b + p * b_bytes, out + a_bytes, b_bytes);
  }
}
}  // namespace

memory concat_forward(Net& net, const memory& a, const memory& b, const ConcatQuant* quant) {
  const memory::desc a_md = a.get_desc(), b_md = b.get_desc();
  const auto layout = layout_of(a_md);
  const memory::dim ca = a_md.dims()[1], cb = b_md.dims()[1];
  const bool same_layout = layout && layout_of(b_md) && layout_of(b_md)->format == layout->format;
  // INT8 always takes this path: oneDNN's concat cannot requantise.
  if (layout && (same_layout || quant) && ca % layout->channel_block == 0 && cb % layout->channel_block == 0) {
    // Two reorders into channel views of an output in the inputs' layout:
    // 2-4x faster than oneDNN 2.6's concat, which copies bf16 element by
    // element and may pick an odd layout that the next convolution must
    // reorder again. Whole channel blocks only, so there is no padding for
    // the views to leave unset.
    // Not in place (the producers writing straight into the views): no
    // optimised kernel of oneDNN 2.6 takes a strided view, and its ref:any
    // fallback is 400x slower than this copy saves (bench/bench_concat).
    memory::dims dims = a_md.dims();
    dims[1] = ca + cb;
    const memory::desc dst_md(dims, quant ? quant->type : a_md.data_type(), layout->format);
    memory dst = net.make_activation(dst_md);
    const size_t element = dst_md.get_size() / dst_md.dims()[0] / dims[1] / dims[2] / dims[3];
    const bool copies_only = !quant || (quant->rescale[0] == 1 && quant->rescale[1] == 1);
    if (layout->format == tag::nhwc && same_layout && copies_only && b_md.data_type() == dst_md.data_type() &&
        a_md.data_type() == dst_md.data_type() && ca * element % 16 == 0 && cb * element % 16 == 0) {
      const size_t pixels = size_t(dims[0]) * dims[2] * dims[3];
      net.forward.push_back({{}, {{DNNL_ARG_MULTIPLE_SRC + 0, a}, {DNNL_ARG_MULTIPLE_SRC + 1, b}, {DNNL_ARG_DST, dst}},
                             [=] {
                               concat_nhwc(static_cast<const uint8_t*>(a.get_data_handle()),
                                           static_cast<const uint8_t*>(b.get_data_handle()),
                                           static_cast<uint8_t*>(dst.get_data_handle()), pixels, ca * element,
                                           cb * element);
                             }});
      return dst;
    }
    memory::dim offset = 0;
    int i = 0;
    for (const memory& part : {a, b}) {
      const memory::desc part_md = part.get_desc();
      memory view = net.make_view(dst, dst_md.submemory_desc(part_md.dims(), {0, offset, 0, 0}));
      const dnnl::primitive_attr attr = quant ? scaled({quant->rescale[i]}, {}) : dnnl::primitive_attr();
      net.append(net.forward,
                 dnnl::reorder::primitive_desc(net.engine, part_md, net.engine, view.get_desc(), user_scratchpad(attr)),
                 {{DNNL_ARG_FROM, part}, {DNNL_ARG_TO, view}});
      offset += part_md.dims()[1];
      ++i;
    }
    return dst;
  }
  if (quant) throw Error("cpu backend: an int8 concatenation of inputs in layouts it cannot take");
  auto pd = dnnl::concat::primitive_desc(1, {a_md, b_md}, net.engine, user_scratchpad());
  memory dst = net.make_activation(pd.dst_desc());
  net.append(net.forward, pd, {{DNNL_ARG_MULTIPLE_SRC + 0, a}, {DNNL_ARG_MULTIPLE_SRC + 1, b}, {DNNL_ARG_DST, dst}});
  return dst;
}

std::pair<memory, memory> concat_backward(Net& net, const memory& diff_dst, const memory::desc& dst_md,
                                          const memory::desc& a_md, const memory::desc& b_md) {
  // The gradient of a concatenation is the matching channel slice of the
  // incoming gradient: a reorder out of a view of it, into the layout the
  // input had in the forward pass.
  // The views need an activation of the forward layout to look into (not,
  // say, the caller's array behind the output's gradient).
  memory diff = diff_dst;
  if (!net.is_activation(diff_dst) || diff_dst.get_desc() != dst_md) {
    diff = net.make_activation(dst_md);
    net.append(net.backward,
               dnnl::reorder::primitive_desc(net.engine, diff_dst.get_desc(), net.engine, dst_md, user_scratchpad()),
               {{DNNL_ARG_FROM, diff_dst}, {DNNL_ARG_TO, diff}});
  }
  auto slice = [&](const memory::desc& part_md, memory::dim offset) {
    memory view = net.make_view(diff, dst_md.submemory_desc(part_md.dims(), {0, offset, 0, 0}));
    memory out = net.make_activation(part_md);
    net.append(net.backward,
               dnnl::reorder::primitive_desc(net.engine, view.get_desc(), net.engine, part_md, user_scratchpad()),
               {{DNNL_ARG_FROM, view}, {DNNL_ARG_TO, out}});
    return out;
  };
  return {slice(a_md, 0), slice(b_md, a_md.dims()[1])};
}

}  // namespace unetind::cpu
