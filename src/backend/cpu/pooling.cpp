#include <immintrin.h>

#include <cstdint>

#include "backend/cpu/layout.h"
#include "backend/cpu/ops.h"

namespace unetind::cpu {

using dnnl::algorithm;
using dnnl::prop_kind;

namespace {

// The masked forms, all lanes on: GCC 12 warns of the plain forms' undefined
// starting values.
constexpr __mmask16 kAll = 0xFFFF;

__attribute__((target("avx512f"))) inline __m512 widen_bf16x16(const uint16_t* p) {
  const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(kAll, _mm512_maskz_cvtepu16_epi32(kAll, bits), 16));
}

// One output row of bf16, from its two input rows `top` and `bottom`.
__attribute__((target("avx512f"))) void max_pool_row(const uint16_t* top, const uint16_t* bottom, uint16_t* out,
                                                     int out_w, int channels) {
  for (int ow = 0; ow < out_w; ++ow)
    for (int c = 0; c < channels; c += 16) {
      const size_t left = size_t(2 * ow) * channels + c, right = left + channels;
      const __m512 top_max = _mm512_maskz_max_ps(kAll, widen_bf16x16(top + left), widen_bf16x16(top + right));
      const __m512 bottom_max =
          _mm512_maskz_max_ps(kAll, widen_bf16x16(bottom + left), widen_bf16x16(bottom + right));
      const __m512 m = _mm512_maskz_max_ps(kAll, top_max, bottom_max);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + size_t(ow) * channels + c),
                          _mm512_maskz_cvtepi32_epi16(kAll, _mm512_maskz_srli_epi32(kAll, _mm512_castps_si512(m), 16)));
    }
}

__attribute__((target("avx2"))) inline __m256i load(const uint8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

// One output row of u8 (int8 inference, after a ReLU): all of a channel's
// values share one positive scale, so the largest code is the code of the
// largest value.
__attribute__((target("avx2"))) void max_pool_row(const uint8_t* top, const uint8_t* bottom, uint8_t* out,
                                                  int out_w, int channels) {
  for (int ow = 0; ow < out_w; ++ow)
    for (int c = 0; c < channels; c += 32) {
      const size_t left = size_t(2 * ow) * channels + c, right = left + channels;
      const __m256i m = _mm256_max_epu8(_mm256_max_epu8(load(top + left), load(top + right)),
                                        _mm256_max_epu8(load(bottom + left), load(bottom + right)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + size_t(ow) * channels + c), m);
    }
}

// One output row of f32, 8 channels at a time.
__attribute__((target("avx2"))) void max_pool_row(const float* top, const float* bottom, float* out, int out_w,
                                                  int channels) {
  for (int ow = 0; ow < out_w; ++ow)
    for (int c = 0; c < channels; c += 8) {
      const size_t left = size_t(2 * ow) * channels + c, right = left + channels;
      const __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_loadu_ps(top + left), _mm256_loadu_ps(top + right)),
                                     _mm256_max_ps(_mm256_loadu_ps(bottom + left), _mm256_loadu_ps(bottom + right)));
      _mm256_storeu_ps(out + size_t(ow) * channels + c, m);
    }
}

// Max pooling 2x2, stride 2, in nhwc (or a blocked layout seen as nhwc
// images, layout.h), a row of output pixels per task, for the layouts
// oneDNN's inference convolutions give: bf16 (AMX and AVX512-BF16) with
// channels in whole 16s, u8 (int8) in whole 32s, f32 in blocks of 8 or 16.
// oneDNN 2.6's kernels for them are far slower: bf16 1.14 against 0.44 ms
// on 32 channels of 512x512, 2 threads, a Xeon with AMX; u8 19 ms of the
// int8 pass at batch 8, which this kernel takes from 162 to 142 ms; f32 on
// an AVX2 EPYC 8.1 against 3.1 ms of a 512x512 pass at batch 1
// (docs/performance.md). bf16 widens to f32 exactly (16 bits up), so
// either max is the number oneDNN returns.
template <typename T>
void max_pool_2x2_nhwc(const T* src, T* dst, int batch, int height, int width, int channels) {
  const int out_h = height / 2, out_w = width / 2;
#pragma omp parallel for collapse(2) schedule(static)
  for (int n = 0; n < batch; ++n)
    for (int oh = 0; oh < out_h; ++oh) {
      const T* top = src + (size_t(n) * height + 2 * oh) * width * channels;
      max_pool_row(top, top + size_t(width) * channels, dst + (size_t(n) * out_h + oh) * out_w * channels, out_w,
                   channels);
    }
}

// Whether pooling.cpp's own kernel takes `src` (inference only), as nhwc
// images: bf16 inference needs AVX-512 (compile_cpu checks), int8 and fp32
// may run on AVX2.
std::optional<NhwcView> own_kernel_takes(const memory::desc& src_md) {
  const auto view = nhwc_view(src_md);
  if (!view) return std::nullopt;
  const bool avx2 = __builtin_cpu_supports("avx2");
  const bool takes = (src_md.data_type() == dt::bf16 && view->format == tag::nhwc && view->channels % 16 == 0) ||
                     (src_md.data_type() == dt::u8 && view->channels % 32 == 0 && avx2) ||
                     (src_md.data_type() == dt::f32 && view->channels % 8 == 0 && avx2);
  return takes ? view : std::nullopt;
}

template <typename T>
Step own_kernel_step(const memory& src, const memory& dst, const NhwcView& v) {
  return {{}, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}}, [=] {
            max_pool_2x2_nhwc(static_cast<const T*>(src.get_data_handle()), static_cast<T*>(dst.get_data_handle()),
                              v.images, v.height, v.width, v.channels);
          }};
}

}  // namespace

memory pool_forward(Net& net, PoolLayer& layer, const memory& src, bool training) {
  const memory::desc src_md = src.get_desc();
  const memory::dims d = src_md.dims();
  const memory::dims out_dims{d[0], d[1], d[2] / 2, d[3] / 2};
  if (const auto view = training ? std::nullopt : own_kernel_takes(src_md)) {
    memory dst = net.make_activation(memory::desc(out_dims, src_md.data_type(), view->format));
    switch (src_md.data_type()) {
      case dt::bf16: net.forward.push_back(own_kernel_step<uint16_t>(src, dst, *view)); break;
      case dt::u8: net.forward.push_back(own_kernel_step<uint8_t>(src, dst, *view)); break;
      default: net.forward.push_back(own_kernel_step<float>(src, dst, *view)); break;
    }
    return dst;
  }
  const memory::desc dst_md(out_dims, src_md.data_type(), tag::any);
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
