#include "torch_tiny_unet.h"

#include <sstream>

#include "unetind/error.h"

namespace unetind::bench {

namespace {

// TF SAME for stride 1: a 3x3 pads 1 on every side, a 1x1 nothing, and a 2x2
// 0 at the top/left and 1 at the bottom/right, which torch's symmetric
// `padding` cannot express, hence an explicit pad before a valid conv.
int64_t symmetric_padding(int kernel) { return kernel == 3 ? 1 : 0; }
bool needs_explicit_pad(int kernel) { return kernel == 2; }

torch::Tensor activate(torch::Tensor y, Activation a) {
  switch (a) {
    case Activation::Relu: return torch::relu_(y);
    case Activation::LeakyRelu: return torch::leaky_relu_(y, kLeakyReluAlpha);
    case Activation::None: return y;
  }
  return y;
}

// The frozen module's attribute names.
std::string parameter_name(size_t index) { return std::string("p").append(std::to_string(index)); }

torch::MemoryFormat memory_format(TorchVariant v) {
  return v == TorchVariant::ChannelsLast ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
}

}  // namespace

std::string to_string(TorchVariant v) {
  switch (v) {
    case TorchVariant::Contiguous: return "default";
    case TorchVariant::ChannelsLast: return "channels_last";
    case TorchVariant::Frozen: return "frozen";
  }
  return "?";
}

TorchVariant parse_torch_variant(const std::string& s) {
  for (TorchVariant v : {TorchVariant::Contiguous, TorchVariant::ChannelsLast, TorchVariant::Frozen})
    if (s == to_string(v)) return v;
  throw Error("unknown torch variant '" + s + "' (default, channels_last or frozen)");
}

TorchTinyUNet::TorchTinyUNet(const Parameters& params, TorchVariant variant, torch::ScalarType dtype, bool trainable)
    : graph_(build_graph(params.config)), variant_(variant), dtype_(dtype) {
  if (trainable && variant == TorchVariant::Frozen) throw Error("the frozen torch variant is for inference only");
  const std::vector<NamedTensor> ordered = match_parameters(params.config, params.tensors, "torch peer");
  for (const NamedTensor& t : ordered) {
    std::vector<int64_t> shape(t.tensor.shape.begin(), t.tensor.shape.end());
    torch::Tensor v = torch::from_blob(const_cast<float*>(t.tensor.data.data()), shape, torch::kFloat);
    // clone() always copies, so the peer never aliases our parameters.
    if (shape.size() == 4) {
      v = v.permute({3, 2, 0, 1}).clone(torch::MemoryFormat::Contiguous).to(dtype_).contiguous(memory_format(variant_));
    } else {
      v = v.clone().to(dtype_);
    }
    if (trainable) v.set_requires_grad(true);
    tensors_.push_back(v);
  }
  last_use_.assign(graph_.nodes.size(), -1);
  for (size_t i = 0; i < graph_.nodes.size(); ++i)
    for (int in : graph_.nodes[i].inputs) last_use_[in] = static_cast<int>(i);
  if (variant_ == TorchVariant::Frozen) freeze();
}

torch::Tensor TorchTinyUNet::input(const float* images, int count, int size) const {
  return torch::from_blob(const_cast<float*>(images), {count, 1, size, size}, torch::kFloat)
      .to(dtype_)
      .contiguous(memory_format(variant_));
}

torch::Tensor TorchTinyUNet::forward(const torch::Tensor& x) {
  if (variant_ == TorchVariant::Frozen) return frozen_.forward({x}).toTensor();
  return eager_forward(x);
}

torch::Tensor TorchTinyUNet::eager_forward(const torch::Tensor& x) const {
  std::vector<torch::Tensor> outs(graph_.nodes.size());
  outs[0] = x;
  for (size_t i = 1; i < graph_.nodes.size(); ++i) {
    const Node& node = graph_.nodes[i];
    const torch::Tensor& in = outs[node.inputs[0]];
    switch (node.kind) {
      case OpKind::Conv2d: {
        const ConvSpec& s = graph_.convs[node.conv];
        const torch::Tensor padded = needs_explicit_pad(s.kernel) ? torch::constant_pad_nd(in, {0, 1, 0, 1}, 0) : in;
        outs[i] = activate(torch::conv2d(padded, tensors_[2 * node.conv], tensors_[2 * node.conv + 1], 1,
                                         symmetric_padding(s.kernel)),
                           s.activation);
        break;
      }
      case OpKind::MaxPool2x2: outs[i] = torch::max_pool2d(in, 2, 2); break;
      case OpKind::Upsample2x: outs[i] = torch::upsample_nearest2d(in, {2 * in.size(2), 2 * in.size(3)}); break;
      case OpKind::Concat: outs[i] = torch::cat({in, outs[node.inputs[1]]}, 1); break;
      case OpKind::Input: throw Error("torch peer: graph has a second input node");
    }
    // Release activations as soon as their last reader has run, as a
    // hand-written module would (autograd keeps what backward needs).
    for (int src : node.inputs)
      if (last_use_[src] == static_cast<int>(i)) outs[src] = torch::Tensor();
  }
  return outs[graph_.output];
}

// The same op sequence as eager_forward, as TorchScript source, so that the
// JIT can freeze the weights into the graph and rewrite it for oneDNN.
void TorchTinyUNet::freeze() {
  torch::jit::Module module("TinyUNet");
  for (size_t p = 0; p < tensors_.size(); ++p) module.register_parameter(parameter_name(p), tensors_[p], false);
  std::ostringstream src;
  src << "def forward(self, t0):\n";
  for (size_t i = 1; i < graph_.nodes.size(); ++i) {
    const Node& node = graph_.nodes[i];
    const int in = node.inputs[0];
    src << "    t" << i << " = ";
    switch (node.kind) {
      case OpKind::Conv2d: {
        const ConvSpec& s = graph_.convs[node.conv];
        const char* act = s.activation == Activation::Relu ? "torch.relu(" : s.activation == Activation::LeakyRelu ? "torch.leaky_relu(" : "(";
        const int64_t pad = symmetric_padding(s.kernel);
        src << act << "torch.conv2d(";
        if (needs_explicit_pad(s.kernel)) {
          src << "torch.constant_pad_nd(t" << in << ", [0, 1, 0, 1], 0.0)";
        } else {
          src << "t" << in;
        }
        src << ", self." << parameter_name(2 * node.conv) << ", self." << parameter_name(2 * node.conv + 1) << ", [1, 1], [" << pad << ", " << pad
            << "])";
        if (s.activation == Activation::LeakyRelu) src << ", " << kLeakyReluAlpha;
        src << ")";
        break;
      }
      case OpKind::MaxPool2x2: src << "torch.max_pool2d(t" << in << ", [2, 2], [2, 2])"; break;
      case OpKind::Upsample2x: src << "torch.upsample_nearest2d(t" << in << ", None, [2.0, 2.0])"; break;
      case OpKind::Concat: src << "torch.cat([t" << in << ", t" << node.inputs[1] << "], 1)"; break;
      case OpKind::Input: throw Error("torch peer: graph has a second input node");
    }
    src << "\n";
  }
  src << "    return t" << graph_.output << "\n";
  module.define(src.str());
  module.eval();
  frozen_ = torch::jit::optimize_for_inference(module);
}

}  // namespace unetind::bench
