#include "op_cases.h"

#include <cmath>
#include <tuple>

#include "test_util.h"

namespace unetind::test {

Node conv_node(int input, int conv, int channels, int scale) { return Node{OpKind::Conv2d, {input}, conv, channels, scale}; }

Graph single_conv(int k, int cin, int cout, Activation act) {
  Graph g;
  g.convs.push_back({"c0", k, cin, cout, act});
  g.nodes = {Node{OpKind::Input, {}, -1, cin, 1}, conv_node(0, 0, cout, 1)};
  g.output = 1;
  return g;
}

Graph conv_then(OpKind op, int c) {
  Graph g;
  g.convs.push_back({"c0", 3, c, c, Activation::None});
  const bool pool = op == OpKind::MaxPool2x2;
  g.nodes = {Node{OpKind::Input, {}, -1, c, pool ? 1 : 2}, conv_node(0, 0, c, pool ? 1 : 2),
             Node{op, {1}, -1, c, pool ? 2 : 1}};
  g.output = 2;
  return g;
}

Graph concat_graph(int c, int ca, int cb) {
  Graph g;
  g.convs.push_back({"a", 3, c, ca, Activation::Relu});
  g.convs.push_back({"b", 3, ca, cb, Activation::LeakyRelu});
  g.nodes = {Node{OpKind::Input, {}, -1, c, 1}, conv_node(0, 0, ca, 1), conv_node(1, 1, cb, 1),
             Node{OpKind::Concat, {2, 1}, -1, ca + cb, 1}};
  g.output = 3;
  return g;
}

size_t OpCase::input_elements() const {
  return size_t(batch) * height * width * graph.nodes[0].channels;
}

size_t OpCase::output_elements() const {
  const Node& out = graph.nodes[graph.output];
  const int oh = height * graph.nodes[0].scale / out.scale, ow = width * graph.nodes[0].scale / out.scale;
  return size_t(batch) * oh * ow * out.channels;
}

std::vector<OpCase> op_cases() {
  std::vector<OpCase> cs;
  for (int k : {1, 2, 3})
    for (auto [cin, cout] : std::vector<std::pair<int, int>>{{1, 1}, {1, 32}, {3, 5}, {16, 16}, {17, 33}, {64, 32}})
      for (Activation act : {Activation::None, Activation::Relu, Activation::LeakyRelu})
        cs.push_back({"conv" + std::to_string(k) + "x" + std::to_string(k) + "_" + std::to_string(cin) + "to" +
                          std::to_string(cout) + "_" + to_string(act),
                      single_conv(k, cin, cout, act), 2, 7, 5});
  // Rows as wide as a DAGM image: oneDNN 2.6's AMX bf16 backward-weights
  // kernel corrupts memory on rows wider than 352 pixels (conv2d.cpp).
  for (auto [k, cin, cout] : std::vector<std::tuple<int, int, int>>{{3, 1, 32}, {3, 32, 32}, {2, 16, 16}, {1, 32, 1}})
    cs.push_back({"conv" + std::to_string(k) + "x" + std::to_string(k) + "_" + std::to_string(cin) + "to" +
                      std::to_string(cout) + "_rows_of_512",
                  single_conv(k, cin, cout, Activation::Relu), 1, 8, 512});
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

std::vector<NamedTensor> random_params(const Graph& g, uint64_t seed) {
  std::vector<NamedTensor> p;
  for (const ConvSpec& c : g.convs) {
    const float scale = 1.0f / std::sqrt(float(c.kernel * c.kernel * c.in_channels));
    p.push_back({c.kernel_name(), random_tensor({c.kernel, c.kernel, c.in_channels, c.out_channels}, seed++, scale)});
    p.push_back({c.bias_name(), random_tensor({c.out_channels}, seed++, 0.1f)});
  }
  return p;
}

}  // namespace unetind::test
