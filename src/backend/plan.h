// What every backend derives alike from a graph and an input shape, so that
// an executor only dispatches ops: each node's size, the parameters' shapes,
// which convolutions a gradient reaches, and the backward schedule (for each
// contribution to a node's gradient, whether it writes it or adds to it).
#pragma once
#include <string>
#include <vector>

#include "unetind/backend.h"

namespace unetind {

// A node's output: batch x height x width x channels.
struct NodeSize {
  int height = 0, width = 0, channels = 0;
  int64_t pixels = 0;  // batch x height x width
  int64_t count() const { return pixels * channels; }
};

// Where a backward step sends the gradient of one of its inputs. The model
// input (node 0) needs none: needed() is false and nothing is computed for it.
struct GradientTarget {
  int node = 0;
  bool accumulate = false;  // false: the first contribution, written; true: added
  bool needed() const { return node > 0; }
};

// One backward step: the gradient of `node`'s output flows to its inputs,
// to[0] for inputs[0] and, for a concat, to[1] for the skip tensor.
struct BackwardStep {
  int node = 0;
  GradientTarget to[2];
};

class ExecPlan {
 public:
  // Throws an Error, prefixed by `who` ("cpu backend"), for a shape the
  // graph cannot take (see check_exec_shape).
  ExecPlan(const Graph& graph, const ExecConfig& config, std::string who);

  const Graph& graph() const { return graph_; }
  const ExecConfig& config() const { return config_; }
  const std::string& who() const { return who_; }
  const NodeSize& size(int node) const { return sizes_[node]; }
  const NodeSize& output_size() const { return sizes_[graph_.output]; }

  // Parameters order (model.h): HWIO kernel, then bias, of each convolution.
  const std::vector<Shape>& parameter_shapes() const { return parameter_shapes_; }
  // Throws an Error naming the tensor where `params` do not have those shapes.
  void check_parameters(const std::vector<NamedTensor>& params) const;

  // Training only: the steps of the backward pass in execution order, for
  // the nodes that reach the output; a convolution that does not reach it
  // gets no gradient, so its parameters' gradients are zero.
  const std::vector<BackwardStep>& backward() const { return backward_; }
  bool conv_reached(int conv) const { return conv_reached_[conv]; }
  // Gives `grads` the parameters' shapes (reallocating only where they
  // differ) and zeroes those of unreached convolutions, so that a backend
  // writes the reached ones only.
  void shape_gradients(std::vector<Tensor>& grads) const;

 private:
  void plan_backward();

  Graph graph_;
  ExecConfig config_;
  std::string who_;
  std::vector<NodeSize> sizes_;
  std::vector<Shape> parameter_shapes_;
  std::vector<BackwardStep> backward_;
  std::vector<bool> conv_reached_;
};

}  // namespace unetind
