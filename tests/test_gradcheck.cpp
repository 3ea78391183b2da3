// Gradients against central finite differences, on every backend that is
// built: for L = sum(r * output) with a fixed random r, the directional
// derivative (L(w + h d) - L(w - h d)) / 2h along a random direction d must
// equal <dL/dw, d> from backward(). One scalar per parameter tensor, so the
// check is cheap and a wrong gradient (transposed, shifted, mis-scaled)
// cannot pass it.
#include <gtest/gtest.h>

#include <cmath>

#include "op_cases.h"
#include "test_util.h"
#include "unetind/backend.h"

namespace unetind {
namespace {

double projected_loss(Executor& exec, const std::vector<NamedTensor>& params, const std::vector<float>& input,
                      const std::vector<float>& r) {
  std::vector<float> out(r.size());
  exec.set_parameters(params);
  exec.forward(input.data(), out.data(), false);
  double l = 0;
  for (size_t i = 0; i < r.size(); ++i) l += double(r[i]) * out[i];
  return l;
}

// `step`: small enough that few kinks (leaky ReLU, a pool's argmax) are
// crossed, large enough that float32 rounding of L stays below the tolerance.

void check_gradients(const Graph& graph, int batch, int h, int w, size_t out_size, double step = 1e-3) {
  for (const std::string& device : available_backends()) {
    SCOPED_TRACE(device);
    std::vector<NamedTensor> params;
    uint64_t seed = 100;
    for (const ConvSpec& c : graph.convs) {
      const float scale = std::sqrt(2.0f / (c.kernel * c.kernel * c.in_channels));
      params.push_back({c.kernel_name(), test::random_tensor({c.kernel, c.kernel, c.in_channels, c.out_channels}, seed++, scale)});
      params.push_back({c.bias_name(), test::random_tensor({c.out_channels}, seed++, 0.1f)});
    }
    const auto input = test::random_values(size_t(batch) * h * w * graph.nodes[0].channels, 1);
    const auto r = test::random_values(out_size, 2);
    auto exec = make_backend(device)->compile(graph, {batch, h, w, true, Precision::F32});

    std::vector<float> out(out_size);
    exec->set_parameters(params);
    exec->forward(input.data(), out.data(), false);
    std::vector<Tensor> grads;
    exec->backward(r.data(), grads);

    for (size_t p = 0; p < params.size(); ++p) {
      SCOPED_TRACE(params[p].name);
      const auto d = test::random_values(params[p].tensor.data.size(), 50 + p);
      double analytic = 0;
      for (size_t i = 0; i < d.size(); ++i) analytic += double(grads[p].data[i]) * d[i];
      auto shifted = params;
      for (size_t i = 0; i < d.size(); ++i) shifted[p].tensor.data[i] = params[p].tensor.data[i] + step * d[i];
      const double plus = projected_loss(*exec, shifted, input, r);
      for (size_t i = 0; i < d.size(); ++i) shifted[p].tensor.data[i] = params[p].tensor.data[i] - step * d[i];
      const double minus = projected_loss(*exec, shifted, input, r);
      const double numeric = (plus - minus) / (2 * step);
      EXPECT_NEAR(numeric, analytic, 2e-2 * std::max(1.0, std::fabs(analytic))) << "numeric " << numeric;
    }
  }
}

// Leaky ReLU and linear layers keep the loss smooth enough for differences.
TEST(GradCheck, ConvolutionsOfEveryKernelSize) {
  for (int k : {1, 2, 3}) {
    SCOPED_TRACE("kernel " + std::to_string(k));
    Graph g;
    g.convs = {{"a", k, 3, 8, Activation::LeakyRelu}, {"b", k, 8, 2, Activation::None}};
    g.nodes = {Node{OpKind::Input, {}, -1, 3, 1}, test::conv_node(0, 0, 8, 1), test::conv_node(1, 1, 2, 1)};
    g.output = 2;
    check_gradients(g, 2, 6, 5, 2 * 6 * 5 * 2);
  }
}

TEST(GradCheck, PoolUpsampleConcat) {
  Graph g;
  g.convs = {{"a", 3, 1, 4, Activation::None}, {"b", 3, 4, 4, Activation::LeakyRelu}, {"c", 2, 4, 4, Activation::None},
             {"d", 3, 8, 1, Activation::None}};
  g.nodes = {Node{OpKind::Input, {}, -1, 1, 1}, test::conv_node(0, 0, 4, 1), Node{OpKind::MaxPool2x2, {1}, -1, 4, 2},
             test::conv_node(2, 1, 4, 2), Node{OpKind::Upsample2x, {3}, -1, 4, 1}, test::conv_node(4, 2, 4, 1),
             Node{OpKind::Concat, {5, 1}, -1, 8, 1}, test::conv_node(6, 3, 1, 1)};
  g.output = 7;
  check_gradients(g, 2, 8, 6, 2 * 8 * 6);
}

TEST(GradCheck, WholeModel) {
  // The whole network with its activations made linear: 23 layers of leaky
  // ReLU kinks make finite differences converge too slowly for a tight
  // tolerance (the activations' backward is checked above and against the
  // plain-loop reference in test_model.cpp); the graph, the pools' argmax
  // routing, upsampling and the concatenations are all still here.
  const Graph g = build_graph({Variant::TinyUNet, Activation::None});
  check_gradients(g, 1, 16, 16, 16 * 16, 1e-4);
}

}  // namespace
}  // namespace unetind
