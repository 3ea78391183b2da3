// INT8 inference on the CPU: which type and scale each activation is stored
// in, from a calibration's ranges, and the weights' per-channel scales.
//
// The scheme (docs/performance.md): stored = round(real x scale), saturated.
// The input is s8 over its range; a ReLU convolution's output is u8 over
// [0, range], any other s8 over [-range, range]; pooling and upsampling keep
// their input's type and scale (they only move values); a concatenation
// takes the wider range of its inputs, each requantised into it. Weights are
// s8, symmetric, one scale per output channel. The output 1x1 convolution
// takes u8 like the others but is not requantised: its s32 sums are scaled
// to f32 logits, and the sigmoid runs in fp32. (Feeding it f32 instead made
// the tail of the network 2-3x slower than bf16's: 4 bytes a value written
// and read for 32 channels at full resolution, for the same logits within
// the quantisation of its input.)
#pragma once
#include <dnnl.hpp>
#include <vector>

#include "unetind/model.h"
#include "unetind/tensor.h"

namespace unetind::cpu {

struct ActivationQuant {
  dnnl::memory::data_type type = dnnl::memory::data_type::f32;
  float scale = 1;  // stored = real x scale; 1 for f32
};

// One entry per graph node. Throws an Error where `ranges` does not have one
// positive finite value per node.
std::vector<ActivationQuant> plan_int8(const Graph& graph, const std::vector<float>& ranges);

// 127 / max |w| over each output channel of an HWIO kernel (1 where a
// channel is all zero).
std::vector<float> weight_scales(const Tensor& hwio);

// oneDNN's int8 convolutions use VNNI where the CPU has it (AVX512-VNNI or
// AVX-VNNI), and slower non-VNNI kernels elsewhere.
bool cpu_has_vnni();

}  // namespace unetind::cpu
