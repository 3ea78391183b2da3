// What our own copy kernels (concatenation, pooling, upsampling) need to
// know of an activation's layout: oneDNN's inference convolutions give nhwc
// (bf16, int8) or, in fp32, channels in blocks of 8 (AVX2) or 16 (AVX-512),
// where each block of an image is an nhwc plane of that many channels. So
// with whole blocks a kernel written for nhwc runs on a blocked tensor as on
// N x C/block images of `block` channels.
#pragma once
#include <cstring>
#include <optional>

#include "backend/cpu/net.h"

namespace unetind::cpu {

struct Layout {
  tag format;
  int channel_block;  // 1: the channels of a pixel are contiguous (nhwc, nchw)
};

// The layout of `md` where it is one of nhwc, nchw, nChw16c, nChw8c.
inline std::optional<Layout> layout_of(const memory::desc& md) {
  for (Layout l : {Layout{tag::nhwc, 1}, Layout{tag::nchw, 1}, Layout{tag::nChw16c, 16}, Layout{tag::nChw8c, 8}})
    if (memory::desc(md.dims(), md.data_type(), l.format) == md) return l;
  return std::nullopt;
}

// `md` as nhwc images of `channels` channels each: nhwc itself, or a blocked
// layout of whole blocks (N x C/block images of `block` channels).
struct NhwcView {
  tag format = tag::undef;  // of `md`: nhwc, nChw8c or nChw16c
  int images = 0, height = 0, width = 0, channels = 0;
  size_t element_bytes = 0;
};
inline std::optional<NhwcView> nhwc_view(const memory::desc& md) {
  const auto layout = layout_of(md);
  if (!layout || layout->format == tag::nchw) return std::nullopt;
  const memory::dims d = md.dims();
  const size_t element = md.get_size() / size_t(d[0] * d[1] * d[2] * d[3]);
  if (layout->format == tag::nhwc)
    return NhwcView{layout->format, int(d[0]), int(d[2]), int(d[3]), int(d[1]), element};
  if (d[1] % layout->channel_block != 0) return std::nullopt;
  return NhwcView{layout->format, int(d[0] * d[1] / layout->channel_block), int(d[2]), int(d[3]),
                  layout->channel_block, element};
}

// A copy of a multiple of 16 bytes, in 16-byte pieces the compiler keeps in
// registers: for the short runs (a pixel's channels) these kernels move.
inline void copy16(const uint8_t* from, uint8_t* to, size_t bytes) {
  for (size_t i = 0; i < bytes; i += 16) std::memcpy(to + i, from + i, 16);
}

}  // namespace unetind::cpu
