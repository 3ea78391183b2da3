#include "backend/cpu/int8.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "unetind/error.h"

namespace unetind::cpu {

namespace {
using dt = dnnl::memory::data_type;

float levels(dt type) { return type == dt::u8 ? 255.0f : 127.0f; }
}  // namespace

std::vector<ActivationQuant> plan_int8(const Graph& graph, const std::vector<float>& ranges) {
  if (ranges.size() != graph.nodes.size())
    throw Error("int8: the calibration has " + std::to_string(ranges.size()) + " activation ranges, the model " +
                std::to_string(graph.nodes.size()) + " nodes (calibrated for another model?)");
  for (size_t i = 0; i < ranges.size(); ++i)
    if (!std::isfinite(ranges[i]) || ranges[i] < 0)
      throw Error("int8: the calibration's range of node " + std::to_string(i) + " is " + std::to_string(ranges[i]));
  // A node that never took a non-zero value still needs a finite scale.
  auto range = [&](int i) { return std::max(ranges[i], 1e-6f); };

  std::vector<ActivationQuant> q(graph.nodes.size());
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& node = graph.nodes[i];
    switch (node.kind) {
      case OpKind::Input: q[i] = {dt::s8, 127.0f / range(int(i))}; break;
      case OpKind::Conv2d: {
        if (int(i) == graph.output) break;  // f32 logits
        const dt type = graph.convs[node.conv].activation == Activation::Relu ? dt::u8 : dt::s8;
        q[i] = {type, levels(type) / range(int(i))};
        break;
      }
      case OpKind::MaxPool2x2:
      case OpKind::Upsample2x: q[i] = q[node.inputs[0]]; break;
      case OpKind::Concat: {
        const ActivationQuant& a = q[node.inputs[0]];
        const ActivationQuant& b = q[node.inputs[1]];
        if (a.type == dt::f32 || b.type == dt::f32) throw Error("int8: a concatenation of an fp32 activation");
        const dt type = a.type == dt::u8 && b.type == dt::u8 ? dt::u8 : dt::s8;
        // The real ranges the inputs are stored over.
        const float widest = std::max(levels(a.type) / a.scale, levels(b.type) / b.scale);
        q[i] = {type, levels(type) / widest};
        break;
      }
    }
  }
  return q;
}

std::vector<float> weight_scales(const Tensor& hwio) {
  const int64_t out = hwio.shape.back();
  std::vector<float> max_abs(out, 0.0f);
  for (size_t k = 0; k < hwio.data.size(); ++k)
    max_abs[k % out] = std::max(max_abs[k % out], std::fabs(hwio.data[k]));
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
