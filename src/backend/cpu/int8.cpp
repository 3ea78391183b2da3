#include "backend/cpu/int8.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "unetind/error.h"

namespace unetind::cpu {

namespace {
using dt = dnnl::memory::data_type;

// The largest stored magnitude.
float levels(dt type) { return type == dt::u8 ? 255.0f : 127.0f; }
}  // namespace

float int8_rescale(dt from, dt to) { return levels(to) / levels(from); }

std::vector<ActivationQuant> plan_int8(const Graph& graph, const std::vector<std::vector<float>>& ranges) {
  if (ranges.size() != graph.nodes.size())
    throw Error("int8: the calibration has ranges for " + std::to_string(ranges.size()) + " activations, the model " +
                std::to_string(graph.nodes.size()) + " (calibrated for another model?)");
  for (size_t i = 0; i < ranges.size(); ++i) {
    if (ranges[i].size() != size_t(graph.nodes[i].channels))
      throw Error("int8: the calibration has " + std::to_string(ranges[i].size()) + " channel ranges for node " +
                  std::to_string(i) + ", which has " + std::to_string(graph.nodes[i].channels) +
                  " channels (calibrated for another model?)");
    for (float r : ranges[i])
      if (!std::isfinite(r) || r < 0)
        throw Error("int8: the calibration's range of a channel of node " + std::to_string(i) + " is " +
                    std::to_string(r));
  }
  // Over each channel's range; a channel that never took a non-zero value
  // still needs a finite scale.
  auto scales_over = [&](int node, dt type) {
    std::vector<float> s;
    for (float r : ranges[node]) s.push_back(levels(type) / std::max(r, 1e-6f));
    return s;
  };

  std::vector<ActivationQuant> q(graph.nodes.size());
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& node = graph.nodes[i];
    switch (node.kind) {
      case OpKind::Input: q[i] = {dt::s8, scales_over(int(i), dt::s8)}; break;
      case OpKind::Conv2d: {
        if (int(i) == graph.output) {  // f32 logits
          q[i] = {dt::f32, std::vector<float>(node.channels, 1.0f)};
          break;
        }
        const dt type = graph.convs[node.conv].activation == Activation::Relu ? dt::u8 : dt::s8;
        q[i] = {type, scales_over(int(i), type)};
        break;
      }
      case OpKind::MaxPool2x2:
      case OpKind::Upsample2x: q[i] = q[node.inputs[0]]; break;
      case OpKind::Concat: {
        const ActivationQuant& a = q[node.inputs[0]];
        const ActivationQuant& b = q[node.inputs[1]];
        if (a.type == dt::f32 || b.type == dt::f32) throw Error("int8: a concatenation of an fp32 activation");
        q[i].type = a.type == dt::u8 && b.type == dt::u8 ? dt::u8 : dt::s8;
        // Each channel keeps its real range: a u8 channel stored as s8 has
        // half the levels.
        for (const ActivationQuant* part : {&a, &b})
          for (float s : part->scales) q[i].scales.push_back(s * int8_rescale(part->type, q[i].type));
        break;
      }
    }
  }
  return q;
}

std::vector<float> weight_scales(const Tensor& hwio, const std::vector<float>& src_scales) {
  const int64_t out = hwio.shape.back(), in = hwio.shape[hwio.shape.size() - 2];
  if (int64_t(src_scales.size()) != in)
    throw Error("int8: " + std::to_string(src_scales.size()) + " input scales for a kernel of " + std::to_string(in) +
                " input channels");
  std::vector<float> max_abs(out, 0.0f);
  for (size_t k = 0; k < hwio.data.size(); ++k)
    max_abs[k % out] = std::max(max_abs[k % out], std::fabs(hwio.data[k]) / src_scales[(k / out) % in]);
  std::vector<float> scales(out);
  for (int64_t o = 0; o < out; ++o) scales[o] = max_abs[o] > 0 ? 127.0f / max_abs[o] : 1.0f;
  return scales;
}

bool cpu_has_vnni() {
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  auto has = [&](unsigned bits) { return (isa & bits) == bits; };
  return has(dnnl_cpu_isa_avx512_core_vnni) || has(dnnl_cpu_isa_avx2_vnni);
}

}  // namespace unetind::cpu
