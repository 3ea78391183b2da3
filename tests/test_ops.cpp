// Cross-backend op test (as ggml's test-backend-ops): each op, forward and
// backward, on every backend that is built, against the plain-loop reference
// over a sweep of shapes, small and odd ones included.
#include <gtest/gtest.h>

#include <cmath>

#include "reference_ops.h"
#include "test_util.h"
#include "unetind/backend.h"
#include "unetind/error.h"

namespace unetind {
namespace {

struct Case {
  std::string name;
  Graph graph;
  int batch, height, width;
};

Node conv_node(int input, int conv, int channels, int scale) { return Node{OpKind::Conv2d, {input}, conv, channels, scale}; }

Graph single_conv(int k, int cin, int cout, Activation act) {
  Graph g;
  g.convs.push_back({"c0", k, cin, cout, act});
  g.nodes = {Node{OpKind::Input, {}, -1, cin, 1}, conv_node(0, 0, cout, 1)};
  g.output = 1;
  return g;
}

// Input -> conv (no activation, so no ties) -> op: the conv's gradients
// check the op's backward.
Graph conv_then(OpKind op, int c) {
  Graph g;
  g.convs.push_back({"c0", 3, c, c, Activation::None});
  const int scale = op == OpKind::MaxPool2x2 ? 2 : 1;
  g.nodes = {Node{OpKind::Input, {}, -1, c, scale == 2 ? 1 : 2}, conv_node(0, 0, c, scale == 2 ? 1 : 2),
             Node{op, {1}, -1, c, op == OpKind::MaxPool2x2 ? 2 : 1}};
  g.output = 2;
  return g;
}

// Input -> A -> B, concat[B, A]: A's gradient has two contributions.
Graph concat_graph(int c, int ca, int cb) {
  Graph g;
  g.convs.push_back({"a", 3, c, ca, Activation::Relu});
  g.convs.push_back({"b", 3, ca, cb, Activation::LeakyRelu});
  g.nodes = {Node{OpKind::Input, {}, -1, c, 1}, conv_node(0, 0, ca, 1), conv_node(1, 1, cb, 1),
             Node{OpKind::Concat, {2, 1}, -1, ca + cb, 1}};
  g.output = 3;
  return g;
}

std::vector<NamedTensor> random_params(const Graph& g, uint64_t seed) {
  std::vector<NamedTensor> p;
  for (const ConvSpec& c : g.convs) {
    const float scale = 1.0f / std::sqrt(float(c.kernel * c.kernel * c.in_channels));
    p.push_back({c.kernel_name(), test::random_tensor({c.kernel, c.kernel, c.in_channels, c.out_channels}, seed++, scale)});
    p.push_back({c.bias_name(), test::random_tensor({c.out_channels}, seed++, 0.1f)});
  }
  return p;
}

std::vector<Case> cases() {
  std::vector<Case> cs;
  for (int k : {1, 2, 3})
    for (auto [cin, cout] : std::vector<std::pair<int, int>>{{1, 1}, {1, 32}, {3, 5}, {16, 16}, {17, 33}, {64, 32}})
      for (Activation act : {Activation::None, Activation::Relu, Activation::LeakyRelu})
        cs.push_back({"conv" + std::to_string(k) + "x" + std::to_string(k) + "_" + std::to_string(cin) + "to" +
                          std::to_string(cout) + "_" + to_string(act),
                      single_conv(k, cin, cout, act), 2, 7, 5});
  for (int c : {1, 3, 16, 32})
    for (auto [h, w] : std::vector<std::pair<int, int>>{{2, 2}, {8, 6}, {16, 32}}) {
      cs.push_back({"maxpool_c" + std::to_string(c) + "_" + std::to_string(h) + "x" + std::to_string(w),
                    conv_then(OpKind::MaxPool2x2, c), 2, h, w});
      cs.push_back({"upsample_c" + std::to_string(c) + "_" + std::to_string(h) + "x" + std::to_string(w),
                    conv_then(OpKind::Upsample2x, c), 2, h, w});
    }
  for (auto [ca, cb] : std::vector<std::pair<int, int>>{{1, 1}, {16, 32}, {32, 16}, {5, 3}})
    cs.push_back({"concat_" + std::to_string(cb) + "+" + std::to_string(ca), concat_graph(2, ca, cb), 2, 6, 4});
  return cs;
}

double scale_of(const std::vector<float>& v) {
  double m = 1e-3;
  for (float x : v) m = std::max(m, double(std::fabs(x)));
  return m;
}

TEST(Ops, EveryBackendMatchesReferenceForwardAndBackward) {
  for (const std::string& device : available_backends()) {
    auto backend = make_backend(device);
    for (const Case& c : cases()) {
      SCOPED_TRACE(device + " " + c.name + " batch " + std::to_string(c.batch) + " " + std::to_string(c.height) + "x" +
                   std::to_string(c.width));
      const auto params = random_params(c.graph, 7);
      const int cin = c.graph.nodes[0].channels;
      const auto input = test::random_values(size_t(c.batch) * c.height * c.width * cin, 11);

      auto exec = backend->compile(c.graph, {c.batch, c.height, c.width, true, Precision::F32});
      exec->set_parameters(params);

      const Node& out = c.graph.nodes[c.graph.output];
      // Reference: the input node's scale marks how the output size relates.
      const int oh = c.height * c.graph.nodes[0].scale / out.scale, ow = c.width * c.graph.nodes[0].scale / out.scale;
      std::vector<float> got(size_t(c.batch) * oh * ow * out.channels);
      exec->forward(input.data(), got.data(), false);

      // Reference forward through the same graph.
      std::vector<ref::Act> acts(c.graph.nodes.size());
      acts[0] = ref::Act(c.batch, c.height, c.width, cin);
      acts[0].v = input;
      for (size_t i = 1; i < c.graph.nodes.size(); ++i) {
        const Node& n = c.graph.nodes[i];
        const ref::Act& in = acts[n.inputs[0]];
        if (n.kind == OpKind::Conv2d)
          acts[i] = ref::conv2d(in, params[2 * n.conv].tensor, params[2 * n.conv + 1].tensor, c.graph.convs[n.conv].activation);
        if (n.kind == OpKind::MaxPool2x2) acts[i] = ref::maxpool2x2(in);
        if (n.kind == OpKind::Upsample2x) acts[i] = ref::upsample2x(in);
        if (n.kind == OpKind::Concat) acts[i] = ref::concat(in, acts[n.inputs[1]]);
      }
      const auto& want = acts[c.graph.output].v;
      ASSERT_EQ(got.size(), want.size());
      EXPECT_LE(test::max_abs_diff(got, want), 1e-5 * scale_of(want));

      // Backward with a random output gradient.
      const auto dy = test::random_values(got.size(), 13);
      std::vector<Tensor> grads;
      exec->backward(dy.data(), grads);
      std::vector<ref::Act> diffs(c.graph.nodes.size());
      diffs[c.graph.output] = acts[c.graph.output];
      diffs[c.graph.output].v = dy;
      std::vector<Tensor> want_grads(params.size());
      for (size_t i = c.graph.nodes.size() - 1; i >= 1; --i) {
        const Node& n = c.graph.nodes[i];
        const int in = n.inputs[0];
        auto add = [&](int node, const ref::Act& g) {
          if (diffs[node].v.empty()) diffs[node] = g;
          else for (size_t j = 0; j < g.v.size(); ++j) diffs[node].v[j] += g.v[j];
        };
        if (n.kind == OpKind::Conv2d) {
          ref::Act dx;
          ref::conv2d_backward(acts[in], params[2 * n.conv].tensor, acts[i], c.graph.convs[n.conv].activation, diffs[i],
                               &dx, want_grads[2 * n.conv], want_grads[2 * n.conv + 1]);
          add(in, dx);
        }
        if (n.kind == OpKind::MaxPool2x2) add(in, ref::maxpool2x2_backward(acts[in], diffs[i]));
        if (n.kind == OpKind::Upsample2x) add(in, ref::upsample2x_backward(diffs[i]));
        if (n.kind == OpKind::Concat) {
          ref::Act da, db;
          ref::concat_backward(diffs[i], acts[in].c, da, db);
          add(in, da);
          add(n.inputs[1], db);
        }
      }
      ASSERT_EQ(grads.size(), want_grads.size());
      for (size_t p = 0; p < grads.size(); ++p) {
        SCOPED_TRACE(params[p].name);
        ASSERT_EQ(grads[p].shape, want_grads[p].shape);
        EXPECT_LE(test::max_abs_diff(grads[p].data, want_grads[p].data), 1e-5 * scale_of(want_grads[p].data));
      }
    }
  }
}

TEST(Ops, RejectsSizesTheGraphCannotPool) {
  auto backend = make_backend("cpu");
  EXPECT_THROW(backend->compile(conv_then(OpKind::MaxPool2x2, 3), {1, 7, 8, false, Precision::F32}), Error);
}

}  // namespace
}  // namespace unetind
