#include "backend/cpu/ops.h"

#include <string>

#include "unetind/error.h"

namespace unetind::cpu {

namespace {
using dnnl::algorithm;
using dnnl::prop_kind;

struct Padding {
  memory::dims before, after;
};
// TF SAME for stride 1: total k-1, the odd one after.
Padding same_padding(int k) {
  const int total = k - 1;
  return {{total / 2, total / 2}, {total - total / 2, total - total / 2}};
}

float eltwise_alpha(Activation a) { return a == Activation::LeakyRelu ? kLeakyReluAlpha : 0.0f; }

// Builds a convolution primitive descriptor with `alg`. oneDNN has Winograd
// kernels only for some shapes and post-ops (not leaky ReLU): elsewhere it is
// built direct, and `alg` says so.
template <typename MakePd>
auto with_fallback(algorithm& alg, MakePd make_pd) {
  if (alg == algorithm::convolution_winograd) {
    try {
      return make_pd(alg);
    } catch (const dnnl::error&) {
    }
  }
  alg = algorithm::convolution_direct;
  return make_pd(alg);
}

// An activation's descriptor: the 16-channel-blocked layout if asked for and
// the channels fill whole blocks, else left to the primitive.
memory::desc activation_desc(int n, int c, int h, int w, dt type, bool blocked) {
  return blocked && c % 16 == 0 ? memory::desc({n, c, h, w}, type, tag::nChw16c) : any_desc(n, c, h, w, type);
}
}  // namespace

memory conv_forward(Net& net, ConvLayer& layer, const memory& src, int batch, int height, int width, dt act_type,
                    dt dst_type, bool training, bool winograd, const ConvQuant* quant) {
  const ConvSpec& s = layer.spec;
  const Padding pad = same_padding(s.kernel);
  const memory::dims weights_dims{s.out_channels, s.in_channels, s.kernel, s.kernel};
  const dt src_type = quant ? src.get_desc().data_type() : act_type;
  const dt weights_type = quant ? dt::s8 : act_type;
  dnnl::primitive_attr attr;
  if (s.activation != Activation::None) {
    dnnl::post_ops ops;
    // Leaky ReLU is oneDNN's relu with a negative slope. After the output
    // scale (INT8), which a positively homogeneous function commutes with.
    ops.append_eltwise(1.0f, algorithm::eltwise_relu, eltwise_alpha(s.activation), 0.0f);
    attr.set_post_ops(ops);
  }
  // INT8: the input's channel scales are folded into the stored weights
  // (weight[oc][ic] x weight_scale[oc] / src_scale[ic]), so the s32 sums are
  // real sums x weight_scale[oc], and stored dst = (s32 sum + stored bias) x
  // dst_scale[oc] / weight_scale[oc].
  std::vector<float> stored_weight_scales, bias_scales;
  if (quant) {
    std::vector<float> output_scales;
    for (int o = 0; o < s.out_channels; ++o) {
      const float w = quant->weight_scales[o];
      output_scales.push_back(quant->dst_scales[o] / w);
      bias_scales.push_back(w);
      for (int i = 0; i < s.in_channels; ++i) stored_weight_scales.push_back(w / quant->src_scales[i]);
    }
    attr = scaled(output_scales, {1}, attr);
  }
  auto make_pd = [&](algorithm alg) {
    auto desc = dnnl::convolution_forward::desc(
        training ? prop_kind::forward_training : prop_kind::forward_inference, alg,
        activation_desc(batch, s.in_channels, height, width, src_type, winograd),
        memory::desc(weights_dims, weights_type, tag::any), memory::desc({s.out_channels}, dt::f32, tag::x),
        activation_desc(batch, s.out_channels, height, width, dst_type, winograd), {1, 1}, pad.before, pad.after);
    return dnnl::convolution_forward::primitive_desc(desc, user_scratchpad(attr), net.engine);
  };
  // Not the input convolution: Winograd would take its one channel padded to
  // 16, 3x slower than direct.
  const bool try_winograd = winograd && s.kernel == 3 && s.in_channels % 16 == 0;
  layer.algorithm = try_winograd ? algorithm::convolution_winograd : algorithm::convolution_direct;
  layer.fwd_pd = with_fallback(layer.algorithm, make_pd);

  layer.user_weights = user_memory(net, weights_dims, tag::hwio);
  layer.user_bias = user_memory(net, {s.out_channels}, tag::x);
  layer.weights = net.make(layer.fwd_pd.weights_desc());
  layer.bias = net.make(layer.fwd_pd.bias_desc());
  if (quant)
    layer.load_steps = {reorder_step(layer.user_weights, layer.weights, scaled(stored_weight_scales, {0, 1})),
                        reorder_step(layer.user_bias, layer.bias, scaled(bias_scales, {0}))};
  else
    layer.load_steps = {reorder_step(layer.user_weights, layer.weights), reorder_step(layer.user_bias, layer.bias)};

  layer.src = reorder_if_needed(net, net.forward, src, layer.fwd_pd.src_desc());
  layer.dst = net.make_activation(layer.fwd_pd.dst_desc());
  net.append(net.forward, layer.fwd_pd,
             {{DNNL_ARG_SRC, layer.src},
              {DNNL_ARG_WEIGHTS, layer.weights},
              {DNNL_ARG_BIAS, layer.bias},
              {DNNL_ARG_DST, layer.dst}});
  return layer.dst;
}

std::optional<memory> conv_backward(Net& net, ConvLayer& layer, const memory& diff_dst, bool need_diff_src) {
  const ConvSpec& s = layer.spec;
  const Padding pad = same_padding(s.kernel);
  const memory::desc src_md = layer.fwd_pd.src_desc();
  const memory::desc dst_md = layer.fwd_pd.dst_desc();
  const memory::dims weights_dims{s.out_channels, s.in_channels, s.kernel, s.kernel};
  // Gradients of activations flow in the compute type, also where the
  // forward output did not (f32 logits after bf16 layers).
  const dt act_type = src_md.data_type();
  auto any_like = [&](const memory::desc& md) { return memory::desc(md.dims(), act_type, tag::any); };

  // Through the fused activation first: d(pre-activation) from the saved output.
  memory diff_pre = diff_dst;
  if (s.activation != Activation::None) {
    auto eltwise_fwd_hint = dnnl::eltwise_forward::primitive_desc(
        dnnl::eltwise_forward::desc(prop_kind::forward_training, algorithm::eltwise_relu_use_dst_for_bwd, dst_md,
                                    eltwise_alpha(s.activation)),
        net.engine);
    auto bwd_pd = dnnl::eltwise_backward::primitive_desc(
        dnnl::eltwise_backward::desc(algorithm::eltwise_relu_use_dst_for_bwd, dst_md, dst_md,
                                     eltwise_alpha(s.activation)),
        user_scratchpad(), net.engine, eltwise_fwd_hint);
    memory dd = reorder_if_needed(net, net.backward, diff_dst, bwd_pd.diff_dst_desc());
    diff_pre = net.make_activation(bwd_pd.diff_src_desc());
    net.append(net.backward, bwd_pd, {{DNNL_ARG_DIFF_DST, dd}, {DNNL_ARG_DST, layer.dst}, {DNNL_ARG_DIFF_SRC, diff_pre}});
  }

  // Weights and bias gradients.
  algorithm w_alg = layer.algorithm;
  auto make_bwd_w_pd = [&](algorithm alg, const memory::desc& src, const memory::desc& diff_dst) {
    return dnnl::convolution_backward_weights::primitive_desc(
        dnnl::convolution_backward_weights::desc(alg, src, memory::desc(weights_dims, dt::f32, tag::any),
                                                 memory::desc({s.out_channels}, dt::f32, tag::x), diff_dst, {1, 1},
                                                 pad.before, pad.after),
        user_scratchpad(), net.engine, layer.fwd_pd);
  };
  auto bwd_w_pd =
      with_fallback(w_alg, [&](algorithm alg) { return make_bwd_w_pd(alg, any_like(src_md), any_like(dst_md)); });
  // oneDNN 2.6's AMX bf16 backward-weights kernel (jit:avx512_core_amx_bf16,
  // what it picks for nhwc on Sapphire Rapids and later) writes past its
  // buffers on rows wider than 352 pixels, from 4 rows on: the heap is
  // corrupted, then the process dies (or worse). Up to 352 its gradients
  // equal the AVX-512 kernel's to 1e-6. Wider rows take a layout its other
  // kernels handle: 16-channel blocks, or plain nchw (a gemm) where blocks
  // would fall to the reference kernel (one input channel).
  if (std::string(bwd_w_pd.impl_info_str()).find("amx") != std::string::npos && src_md.dims()[3] > 352) {
    bool replaced = false;
    for (tag layout : {tag::nChw16c, tag::nchw}) {
      auto pd = make_bwd_w_pd(w_alg, memory::desc(src_md.dims(), act_type, layout),
                              memory::desc(dst_md.dims(), act_type, layout));
      const std::string impl = pd.impl_info_str();
      if (impl.find("amx") == std::string::npos && impl.rfind("ref", 0) != 0) {
        bwd_w_pd = pd;
        replaced = true;
        break;
      }
    }
    if (!replaced)
      throw Error("bf16 training on rows of " + std::to_string(src_md.dims()[3]) + " pixels with " +
                  std::to_string(s.in_channels) + " -> " + std::to_string(s.out_channels) +
                  " channels: oneDNN 2.6's AMX kernel for it is broken and it offers no other; train in fp32 or on "
                  "images at most 352 pixels wide");
  }
  memory w_src = reorder_if_needed(net, net.backward, layer.src, bwd_w_pd.src_desc());
  memory w_diff_dst = reorder_if_needed(net, net.backward, diff_pre, bwd_w_pd.diff_dst_desc());
  layer.diff_weights = net.make(bwd_w_pd.diff_weights_desc());
  layer.diff_bias = net.make(bwd_w_pd.diff_bias_desc());
  net.append(net.backward, bwd_w_pd,
             {{DNNL_ARG_SRC, w_src},
              {DNNL_ARG_DIFF_DST, w_diff_dst},
              {DNNL_ARG_DIFF_WEIGHTS, layer.diff_weights},
              {DNNL_ARG_DIFF_BIAS, layer.diff_bias}});
  layer.user_diff_weights = user_memory(net, weights_dims, tag::hwio);
  layer.user_diff_bias = user_memory(net, {s.out_channels}, tag::x);
  layer.grad_steps = {reorder_step(layer.diff_weights, layer.user_diff_weights),
                      reorder_step(layer.diff_bias, layer.user_diff_bias)};

  if (!need_diff_src) return std::nullopt;
  algorithm d_alg = layer.algorithm;
  auto bwd_d_pd = with_fallback(d_alg, [&](algorithm alg) {
    return dnnl::convolution_backward_data::primitive_desc(
        dnnl::convolution_backward_data::desc(alg, any_like(src_md), memory::desc(weights_dims, act_type, tag::any),
                                              any_like(dst_md), {1, 1}, pad.before, pad.after),
        user_scratchpad(), net.engine, layer.fwd_pd);
  });
  // The weights change only in set_parameters: their backward layout is made there.
  layer.bwd_data_weights = layer.weights;
  if (bwd_d_pd.weights_desc() != layer.weights.get_desc()) {
    layer.bwd_data_weights = net.make(bwd_d_pd.weights_desc());
    layer.load_steps.push_back(reorder_step(layer.weights, layer.bwd_data_weights));
  }
  const memory d_diff_dst = bwd_d_pd.diff_dst_desc() == w_diff_dst.get_desc()
                                ? w_diff_dst
                                : reorder_if_needed(net, net.backward, diff_pre, bwd_d_pd.diff_dst_desc());
  memory diff_src = net.make_activation(bwd_d_pd.diff_src_desc());
  net.append(net.backward, bwd_d_pd,
             {{DNNL_ARG_DIFF_DST, d_diff_dst}, {DNNL_ARG_WEIGHTS, layer.bwd_data_weights}, {DNNL_ARG_DIFF_SRC, diff_src}});
  return diff_src;
}

}  // namespace unetind::cpu
