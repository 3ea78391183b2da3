// INT8 inference on the CPU: which type and scales each activation is stored
// in, from a calibration's ranges, and the weights' scales.
//
// The scheme (docs/performance.md): stored = round(real x scale[channel]),
// saturated, with one scale per channel of every activation. The input is s8
// over its range; a ReLU convolution's output is u8 over [0, range], any
// other s8 over [-range, range]; pooling and upsampling keep their input's
// type and scales (they only move values, channel by channel); a
// concatenation keeps each input channel's scale, only converted where a u8
// input goes into an s8 output. A convolution folds its input's channel
// scales into its weights, which are s8, symmetric, one scale per output
// channel, so that its s32 sums are in real units times the weight scale;
// its per-channel output scales then produce its output's scales. The output
// 1x1 convolution takes u8 like the others but is not requantised: its s32
// sums are scaled to f32 logits, and the sigmoid runs in fp32. (Feeding it
// f32 instead made the tail of the network 2-3x slower than bf16's: 4 bytes
// a value written and read for 32 channels at full resolution, for the same
// logits within the quantisation of its input.)
//
// Why per channel: the channels of one activation range over very different
// values; a skip concatenation at full resolution joins encoder channels of
// range ~2 with decoder channels of range ~2000, and one scale for the
// tensor stored the encoder's as 0 (docs/performance.md).
#pragma once
#include <dnnl.hpp>
#include <vector>

#include "unetind/model.h"
#include "unetind/tensor.h"

namespace unetind::cpu {

struct ActivationQuant {
  dnnl::memory::data_type type = dnnl::memory::data_type::f32;
  std::vector<float> scales;  // per channel: stored = real x scale; 1 for f32
};

// One entry per graph node. Throws an Error where `ranges` does not have, for
// each node, one non-negative finite value per channel.
std::vector<ActivationQuant> plan_int8(const Graph& graph, const std::vector<std::vector<float>>& ranges);

// What a value stored as `from` is multiplied by to be stored as `to` over
// the same real range: 127/255 from u8 into s8, 1 between equal types.
float int8_rescale(dnnl::memory::data_type from, dnnl::memory::data_type to);

// A convolution's s8 weights for an input stored with `src_scales` (one per
// input channel): 127 / max |w / src_scale[in]| over each output channel of
// the HWIO kernel (1 where a channel is all zero). Stored weight
// [o][in] = round(w x scale[o] / src_scale[in]).
std::vector<float> weight_scales(const Tensor& hwio, const std::vector<float>& src_scales);

// oneDNN's int8 convolutions use VNNI where the CPU has it (AVX512-VNNI or
// AVX-VNNI), and slower non-VNNI kernels elsewhere.
bool cpu_has_vnni();

}  // namespace unetind::cpu
