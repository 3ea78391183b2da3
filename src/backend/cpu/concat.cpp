#include <algorithm>
#include <cstring>

#include "backend/cpu/layout.h"
#include "backend/cpu/ops.h"
#include "unetind/error.h"

namespace unetind::cpu {

namespace {
// Concatenation of channels in nhwc: each pixel's `a_bytes` of the first
// input, then its `b_bytes` of the second, both multiples of 16. Copied in
// 16-byte pieces the compiler keeps in registers: oneDNN 2.6's reorders into
// channel views move a few bytes a pixel slowly (int8 at batch 8, 512x512:
// 30 ms of a 142 ms pass, which this copy takes to 128 ms; bf16 from 222 to
// 207 ms; docs/performance.md).
void concat_nhwc(const uint8_t* a, const uint8_t* b, uint8_t* dst, size_t pixels, size_t a_bytes, size_t b_bytes) {
#pragma omp parallel for schedule(static)
  for (size_t p = 0; p < pixels; ++p) {
    uint8_t* out = dst + p * (a_bytes + b_bytes);
    copy16(a + p * a_bytes, out, a_bytes);
    copy16(b + p * b_bytes, out + a_bytes, b_bytes);
  }
}

// Concatenation of channels in a blocked layout of whole blocks (fp32:
// nChw8c, nChw16c), whose channel blocks are planes one after another: an
// output image is the first input's image (`a_bytes`), then the second's.
// Copied in pieces, so that every thread has some at batch 1. oneDNN 2.6's
// reorders into channel views of these ("simple:any") took 9.8 ms of an
// fp32 pass at batch 1, 512x512, on an AVX2 EPYC, these copies 8.0: both
// near what memory moves (docs/performance.md).
void concat_images(const uint8_t* a, const uint8_t* b, uint8_t* dst, size_t images, size_t a_bytes,
                   size_t b_bytes) {
  constexpr size_t kPiece = size_t(64) << 10;
  const size_t a_pieces = (a_bytes + kPiece - 1) / kPiece, pieces = a_pieces + (b_bytes + kPiece - 1) / kPiece;
#pragma omp parallel for schedule(static)
  for (size_t t = 0; t < images * pieces; ++t) {
    const size_t image = t / pieces, piece = t % pieces;
    const bool first = piece < a_pieces;
    const size_t part_bytes = first ? a_bytes : b_bytes;
    const size_t begin = (first ? piece : piece - a_pieces) * kPiece;
    const uint8_t* from = (first ? a + image * a_bytes : b + image * b_bytes) + begin;
    uint8_t* to = dst + image * (a_bytes + b_bytes) + (first ? 0 : a_bytes) + begin;
    std::memcpy(to, from, std::min(kPiece, part_bytes - begin));
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
    const bool plain_copy = same_layout && copies_only && b_md.data_type() == dst_md.data_type() &&
                            a_md.data_type() == dst_md.data_type();
    const std::unordered_map<int, memory> args{
        {DNNL_ARG_MULTIPLE_SRC + 0, a}, {DNNL_ARG_MULTIPLE_SRC + 1, b}, {DNNL_ARG_DST, dst}};
    auto bytes = [](const memory& m) { return static_cast<uint8_t*>(m.get_data_handle()); };
    if (plain_copy && layout->format == tag::nhwc && ca * element % 16 == 0 && cb * element % 16 == 0) {
      const size_t pixels = size_t(dims[0]) * dims[2] * dims[3];
      net.forward.push_back({{}, args, [=] {
                               concat_nhwc(bytes(a), bytes(b), bytes(dst), pixels, ca * element, cb * element);
                             }});
      return dst;
    }
    if (plain_copy && layout->channel_block > 1) {
      const size_t plane = size_t(dims[2]) * dims[3] * element;
      net.forward.push_back({{}, args, [=] {
                               concat_images(bytes(a), bytes(b), bytes(dst), size_t(dims[0]), ca * plane, cb * plane);
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
