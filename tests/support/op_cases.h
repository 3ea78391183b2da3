// The op sweep that the cross-backend tests (test_ops, test_bf16) run: each
// op alone, or behind the convolution whose gradients check its backward,
// over shapes small and odd ones included.
#pragma once
#include <string>
#include <vector>

#include "unetind/model.h"

namespace unetind::test {

struct OpCase {
  std::string name;
  Graph graph;
  int batch, height, width;
  // Elements of the input node's and of the output node's tensor (node
  // scales say how each size relates to the input's).
  size_t input_elements() const;
  size_t output_elements() const;
};

Node conv_node(int input, int conv, int channels, int scale);
Graph single_conv(int k, int cin, int cout, Activation act);
// Input -> conv (no activation, so no ties) -> op: the conv's gradients
// check the op's backward.
Graph conv_then(OpKind op, int c);
// Input -> A -> B, concat[B, A]: A's gradient has two contributions.
Graph concat_graph(int c, int ca, int cb);

std::vector<OpCase> op_cases();

// Kernels scaled by 1/sqrt(fan-in), biases up to 0.1: activations stay O(1).
std::vector<NamedTensor> random_params(const Graph& g, uint64_t seed);

}  // namespace unetind::test
