// TinyUNet's graph (SPEC.md section 1), built the way NVIDIA's UNet_v1 builds
// it: an input block, three downsample blocks, a bottleneck, three upsample
// blocks and an output block, with the block widths of the chosen variant.
#include <map>

#include "unetind/error.h"
#include "unetind/model.h"

namespace unetind {

namespace {

struct Widths {
  int input;
  std::vector<int> blocks;
  int bottleneck;
  int output;
};

Widths widths_of(Variant v) {
  if (v == Variant::Original) return {64, {128, 256, 512}, 1024, 64};
  return {32, {32, 64, 128}, 256, 32};
}

class GraphBuilder {
 public:
  explicit GraphBuilder(Activation act) : act_(act) {
    graph_.nodes.push_back(Node{OpKind::Input, {}, -1, 1, 1});
  }

  int conv(int input, const std::string& scope, int kernel, int out_channels, Activation act) {
    const Node& in = graph_.nodes.at(input);
    graph_.convs.push_back(ConvSpec{scope, kernel, in.channels, out_channels, act});
    return add(Node{OpKind::Conv2d, {input}, static_cast<int>(graph_.convs.size()) - 1, out_channels, in.scale});
  }
  int conv(int input, const std::string& scope, int kernel, int out_channels) {
    return conv(input, scope, kernel, out_channels, act_);
  }
  int pool(int input) {
    const Node& in = graph_.nodes.at(input);
    return add(Node{OpKind::MaxPool2x2, {input}, -1, in.channels, in.scale * 2});
  }
  int upsample(int input) {
    const Node& in = graph_.nodes.at(input);
    return add(Node{OpKind::Upsample2x, {input}, -1, in.channels, in.scale / 2});
  }
  int concat(int decoder, int skip) {
    const Node& a = graph_.nodes.at(decoder);
    const Node& b = graph_.nodes.at(skip);
    return add(Node{OpKind::Concat, {decoder, skip}, -1, a.channels + b.channels, a.scale});
  }
  Graph finish(int output) {
    graph_.output = output;
    return std::move(graph_);
  }

 private:
  int add(Node n) {
    graph_.nodes.push_back(std::move(n));
    return static_cast<int>(graph_.nodes.size()) - 1;
  }
  Activation act_;
  Graph graph_;
};

}  // namespace

Graph build_graph(const ModelConfig& config) {
  const Widths w = widths_of(config.variant);
  GraphBuilder g(config.activation);
  const std::string root = "UNet_v1/";

  std::vector<int> skips;
  int x = g.conv(0, root + "input_block/conv2d", 3, w.input);
  x = g.conv(x, root + "input_block/conv2d_1", 3, w.input);
  skips.push_back(x);
  x = g.pool(x);

  for (size_t i = 0; i < w.blocks.size(); ++i) {
    const std::string scope = root + "downsample_block_" + std::to_string(i + 1) + "/";
    x = g.conv(x, scope + "conv2d", 3, w.blocks[i]);
    x = g.conv(x, scope + "conv2d_1", 3, w.blocks[i]);
    skips.push_back(x);
    x = g.pool(x);
  }

  x = g.conv(x, root + "bottleneck_block/conv2d", 3, w.bottleneck);
  x = g.conv(x, root + "bottleneck_block/conv2d_1", 3, w.bottleneck);
  x = g.upsample(x);
  x = g.conv(x, root + "bottleneck_block/deconv2d/conv2d", 2, w.bottleneck / 2);

  for (size_t i = 0; i < w.blocks.size(); ++i) {
    const int filters = w.blocks[w.blocks.size() - 1 - i];
    const std::string scope = root + "upsample_block_" + std::to_string(i + 1) + "/";
    x = g.concat(x, skips.back());
    skips.pop_back();
    x = g.conv(x, scope + "conv2d", 3, filters);
    x = g.conv(x, scope + "conv2d_1", 3, filters / 2);
    x = g.upsample(x);
    x = g.conv(x, scope + "deconv2d/conv2d", 2, filters / 2);
  }

  // NVIDIA's scope name is misspelt "ouputs_block"; checkpoints depend on it.
  x = g.concat(x, skips.back());
  x = g.conv(x, root + "ouputs_block/conv2d", 3, w.output);
  x = g.conv(x, root + "ouputs_block/conv2d_1", 3, w.output);
  x = g.conv(x, root + "ouputs_block/conv2d_2", 1, 1, Activation::None);
  return g.finish(x);
}

int64_t parameter_count(const Graph& graph) {
  int64_t n = 0;
  for (const ConvSpec& c : graph.convs)
    n += static_cast<int64_t>(c.kernel) * c.kernel * c.in_channels * c.out_channels + c.out_channels;
  return n;
}

double forward_flops(const Graph& graph, int height, int width) {
  double flops = 0;
  for (const Node& node : graph.nodes) {
    if (node.kind != OpKind::Conv2d) continue;
    const ConvSpec& c = graph.convs[node.conv];
    const double pixels = double(height / node.scale) * (width / node.scale);
    flops += 2.0 * pixels * c.kernel * c.kernel * c.in_channels * c.out_channels;
  }
  return flops;
}

std::string to_string(Variant v) { return v == Variant::Original ? "original" : "tinyUNet"; }

std::string to_string(Activation a) {
  switch (a) {
    case Activation::None: return "none";
    case Activation::Relu: return "relu";
    case Activation::LeakyRelu: return "leaky_relu";
  }
  return "?";
}

std::string to_string(Initializer i) {
  switch (i) {
    case Initializer::HeNormal: return "he_normal";
    case Initializer::HeUniform: return "he_uniform";
    case Initializer::GlorotNormal: return "glorot_normal";
    case Initializer::GlorotUniform: return "glorot_uniform";
    case Initializer::Orthogonal: return "orthogonal";
  }
  return "?";
}

namespace {
template <typename E>
E parse_enum(const std::string& s, const std::vector<E>& values, const char* what) {
  std::string names;
  for (E v : values) {
    if (to_string(v) == s) return v;
    names += (names.empty() ? "" : ", ") + to_string(v);
  }
  throw Error("unknown " + std::string(what) + " '" + s + "' (choose from " + names + ")");
}
}  // namespace

Variant parse_variant(const std::string& s) {
  return parse_enum(s, std::vector{Variant::TinyUNet, Variant::Original}, "model variant");
}
Activation parse_activation(const std::string& s) {
  return parse_enum(s, std::vector{Activation::Relu, Activation::LeakyRelu}, "activation");
}
Initializer parse_initializer(const std::string& s) {
  return parse_enum(s,
                    std::vector{Initializer::HeNormal, Initializer::HeUniform, Initializer::GlorotNormal,
                                Initializer::GlorotUniform, Initializer::Orthogonal},
                    "initializer");
}

}  // namespace unetind
