#include "backend/plan.h"

#include <algorithm>

#include "unetind/error.h"

namespace unetind {

ExecPlan::ExecPlan(const Graph& graph, const ExecConfig& config, std::string who)
    : graph_(graph), config_(config), who_(std::move(who)) {
  check_exec_shape(graph_, config_, who_);
  const int input_scale = graph_.nodes[0].scale;
  for (const Node& node : graph_.nodes) {
    NodeSize s;
    s.height = config_.height * input_scale / node.scale;
    s.width = config_.width * input_scale / node.scale;
    s.channels = node.channels;
    s.pixels = int64_t(config_.batch) * s.height * s.width;
    sizes_.push_back(s);
  }
  for (const ConvSpec& c : graph_.convs) {
    parameter_shapes_.push_back({c.kernel, c.kernel, c.in_channels, c.out_channels});
    parameter_shapes_.push_back({c.out_channels});
  }
  if (config_.training) plan_backward();
}

void ExecPlan::plan_backward() {
  // Which nodes already hold a gradient when a step runs: the first
  // contribution writes, later ones add (a skip tensor feeds both a pool and
  // a concat).
  std::vector<bool> has_gradient(graph_.nodes.size(), false);
  has_gradient[graph_.output] = true;
  conv_reached_.assign(graph_.convs.size(), false);
  auto target = [&](int node) {
    GradientTarget t{node, false};
    if (!t.needed()) return t;
    t.accumulate = has_gradient[node];
    has_gradient[node] = true;
    return t;
  };
  for (int i = int(graph_.nodes.size()) - 1; i >= 1; --i) {
    const Node& node = graph_.nodes[i];
    if (!has_gradient[i]) continue;  // does not reach the output: no gradient flows through it
    BackwardStep step;
    step.node = i;
    if (node.kind == OpKind::Conv2d) conv_reached_[node.conv] = true;
    step.to[0] = target(node.inputs[0]);
    if (node.kind == OpKind::Concat) step.to[1] = target(node.inputs[1]);
    backward_.push_back(step);
  }
}

void ExecPlan::check_parameters(const std::vector<NamedTensor>& params) const {
  if (params.size() != parameter_shapes_.size())
    throw Error(who_ + ": expected " + std::to_string(parameter_shapes_.size()) + " parameter tensors, got " +
                std::to_string(params.size()));
  for (size_t p = 0; p < params.size(); ++p)
    if (params[p].tensor.shape != parameter_shapes_[p])
      throw Error(who_ + ": parameter '" + params[p].name + "' has shape " + shape_to_string(params[p].tensor.shape) +
                  ", expected " + shape_to_string(parameter_shapes_[p]));
}

void ExecPlan::shape_gradients(std::vector<Tensor>& grads) const {
  grads.resize(parameter_shapes_.size());
  for (size_t p = 0; p < grads.size(); ++p) {
    if (grads[p].shape != parameter_shapes_[p]) grads[p] = Tensor(parameter_shapes_[p]);
    if (!conv_reached_[p / 2]) std::fill(grads[p].data.begin(), grads[p].data.end(), 0.0f);
  }
}

}  // namespace unetind
