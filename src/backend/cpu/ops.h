// One entry point per op family and direction. Forward functions append to
// net.forward and return the output memory; backward functions append to
// net.backward (called in reverse graph order) and return the gradient with
// respect to the op's input(s). An incoming gradient may come in any layout
// and type (the caller's f32 array for the output node): each backward
// converts it to what its primitives want.
#pragma once
#include <optional>

#include "backend/cpu/net.h"
#include "unetind/model.h"

namespace unetind::cpu {

// --- conv2d.cpp: convolution + bias + fused activation (SAME padding; a
// 2x2 kernel pads 0 before and 1 after, as TF does).
struct ConvLayer {
  ConvSpec spec;
  dnnl::convolution_forward::primitive_desc fwd_pd;
  dnnl::algorithm algorithm = dnnl::algorithm::convolution_direct;  // what fwd_pd computes by; backward follows
  memory weights, bias;                    // in the primitive's layout
  memory user_weights, user_bias;          // HWIO / [out], handles set by set_parameters
  std::vector<Step> load_steps;            // user -> primitive layouts, run once per set_parameters
  memory src, dst;                         // what the forward read (after any reorder) and wrote
  // Training only.
  memory bwd_data_weights;                 // the weights in the backward-data primitive's layout
  memory diff_weights, diff_bias;          // in the backward primitive's layout, always f32
  memory user_diff_weights, user_diff_bias;
  std::vector<Step> grad_steps;            // primitive layout -> user, run after backward
};

// INT8 inference: stored = round(real x scale), saturated, per channel of
// src and dst (int8.h); an f32 dst holds real values (dst scales of 1). The
// src scales are folded into the s8 weights, so oneDNN 2.6's (s32 sum +
// bias) x output scale takes the bias pre-multiplied by the weight scale.
struct ConvQuant {
  std::vector<float> src_scales;     // per input channel (int8.h)
  std::vector<float> dst_scales;     // per output channel; 1 for f32 logits
  std::vector<float> weight_scales;  // per output channel, for src_scales folded in
};

// act_type is the compute type of src, weights and dst; dst_type may differ
// (f32 logits after bf16 layers). Bias and gradients are f32 whatever it is.
// With `quant`, src keeps its own (integer) type, the weights are s8 and
// act_type is unused; inference only.
// `winograd` (fp32 only): src and dst in the 16-channel-blocked layout that
// oneDNN's Winograd kernels take, and a 3x3 convolution by Winograd where
// oneDNN has a kernel for it (otherwise direct, still blocked so that
// neighbours need no reorder); conv_backward then uses Winograd too.
memory conv_forward(Net& net, ConvLayer& layer, const memory& src, int batch, int height, int width, dt act_type,
                    dt dst_type, bool training, bool winograd, const ConvQuant* quant = nullptr);
// diff_dst is d(loss)/d(activation output), of any type (converted to the
// compute type); returns d(loss)/d(src) unless need_diff_src is false (the
// first convolution).
std::optional<memory> conv_backward(Net& net, ConvLayer& layer, const memory& diff_dst, bool need_diff_src);

// --- pooling.cpp: max pooling 2x2, stride 2.
struct PoolLayer {
  dnnl::pooling_forward::primitive_desc fwd_pd;
  memory workspace;  // argmax positions kept for backward
};
memory pool_forward(Net& net, PoolLayer& layer, const memory& src, bool training);
memory pool_backward(Net& net, PoolLayer& layer, const memory& diff_dst);

// --- resampling.cpp: nearest-neighbour x2 upsampling. For an exact x2,
// oneDNN's nearest rule picks in[i/2][j/2], the pixel replication of SPEC.md.
struct UpsampleLayer {
  dnnl::resampling_forward::primitive_desc fwd_pd;
};
memory upsample_forward(Net& net, UpsampleLayer& layer, const memory& src, bool training);
memory upsample_backward(Net& net, UpsampleLayer& layer, const memory& diff_dst);  // 2x2 sums

// --- concat.cpp: channel concatenation [a, b]; backward splits.
// INT8: the inputs may have different scales; each is requantised to the
// output's (stored x rescale[i]) and the output has type `type`.
struct ConcatQuant {
  dt type = dt::u8;
  float rescale[2] = {1, 1};
};
memory concat_forward(Net& net, const memory& a, const memory& b, const ConcatQuant* quant = nullptr);
// dst_md, a_md, b_md: the forward layouts of the output (diff_dst is
// reordered to it if needed) and of the inputs, which the gradients take.
std::pair<memory, memory> concat_backward(Net& net, const memory& diff_dst, const memory::desc& dst_md,
                                          const memory::desc& a_md, const memory::desc& b_md);

// --- eltwise.cpp: the final sigmoid and gradient accumulation.
// In-place sigmoid on a plain memory (the user's output array), run after the
// planned passes.
void append_sigmoid(Net& net, std::vector<Step>& steps, const memory& data);
// acc += contribution (acc keeps its layout), appended to net.backward.
void accumulate(Net& net, const memory& acc, const memory& contribution);

}  // namespace unetind::cpu
