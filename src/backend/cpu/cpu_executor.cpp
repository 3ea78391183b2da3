// Walks the model graph once per input shape: forward steps in graph order,
// backward steps in reverse order, each op's primitives built once here and
// executed on every call.
#include "backend/cpu/cpu_executor.h"

#include <algorithm>

#include "backend/cpu/ops.h"
#include "unetind/error.h"

namespace unetind::cpu {

namespace {

// oneDNN's Winograd and bf16 kernels need AVX-512 (avx512_core) at least.
bool cpu_has_avx512_core() {
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  return (isa & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core;
}

class CpuExecutor final : public Executor {
 public:
  CpuExecutor(const Graph& graph, const ExecConfig& config) : graph_(graph), config_(config) {
    check_exec_shape(graph_, config_, "cpu backend");
    convs_.resize(graph_.convs.size());
    for (size_t c = 0; c < convs_.size(); ++c) convs_[c].spec = graph_.convs[c];
    build_forward();
    if (config_.training) build_backward();
    net_.plan({&net_.forward, &output_steps_, &net_.backward});
  }

  void set_parameters(const std::vector<NamedTensor>& params) override {
    if (params.size() != 2 * convs_.size())
      throw Error("cpu backend: expected " + std::to_string(2 * convs_.size()) + " parameter tensors, got " +
                  std::to_string(params.size()));
    for (size_t c = 0; c < convs_.size(); ++c) {
      ConvLayer& layer = convs_[c];
      const ConvSpec& s = layer.spec;
      check_shape(params[2 * c], {s.kernel, s.kernel, s.in_channels, s.out_channels});
      check_shape(params[2 * c + 1], {s.out_channels});
      layer.user_weights.set_data_handle(const_cast<float*>(params[2 * c].tensor.data.data()));
      layer.user_bias.set_data_handle(const_cast<float*>(params[2 * c + 1].tensor.data.data()));
      net_.run(layer.load_steps);
    }
  }

  void forward(const float* input, float* out, bool probabilities) override {
    user_input_.set_data_handle(const_cast<float*>(input));
    user_output_.set_data_handle(out);
    net_.run(net_.forward);
    net_.run(output_steps_);
    if (probabilities) net_.run(sigmoid_steps_);
  }

  void backward(const float* dlogits, std::vector<Tensor>& grads) override {
    if (!config_.training) throw Error("cpu backend: backward() on an executor compiled for inference");
    user_dlogits_.set_data_handle(const_cast<float*>(dlogits));
    net_.run(net_.backward);
    grads.resize(2 * convs_.size());
    for (size_t c = 0; c < convs_.size(); ++c) {
      ConvLayer& layer = convs_[c];
      const ConvSpec& s = layer.spec;
      if (grads[2 * c].shape != Shape{s.kernel, s.kernel, s.in_channels, s.out_channels})
        grads[2 * c] = Tensor({s.kernel, s.kernel, s.in_channels, s.out_channels});
      if (grads[2 * c + 1].shape != Shape{s.out_channels}) grads[2 * c + 1] = Tensor({s.out_channels});
      if (layer.grad_steps.empty()) {  // a convolution that does not reach the output
        std::fill(grads[2 * c].data.begin(), grads[2 * c].data.end(), 0.0f);
        std::fill(grads[2 * c + 1].data.begin(), grads[2 * c + 1].data.end(), 0.0f);
        continue;
      }
      layer.user_diff_weights.set_data_handle(grads[2 * c].data.data());
      layer.user_diff_bias.set_data_handle(grads[2 * c + 1].data.data());
      net_.run(layer.grad_steps);
    }
  }

  const ExecConfig& config() const override { return config_; }
  const Net& net() const { return net_; }

 private:
  static void check_shape(const NamedTensor& t, const Shape& expected) {
    if (t.tensor.shape != expected)
      throw Error("cpu backend: parameter '" + t.name + "' has shape " + shape_to_string(t.tensor.shape) +
                  ", expected " + shape_to_string(expected));
  }

  memory::dims output_dims() const {
    const Node& out = graph_.nodes[graph_.output];
    return {config_.batch, out.channels, height_of(out), width_of(out)};
  }
  int height_of(const Node& node) const { return config_.height * graph_.nodes[0].scale / node.scale; }
  int width_of(const Node& node) const { return config_.width * graph_.nodes[0].scale / node.scale; }

  void build_forward() {
    const int n = config_.batch;
    const dt act = config_.precision == Precision::BF16 ? dt::bf16 : dt::f32;
    // oneDNN's Winograd kernels are fp32 and AVX-512 only. Elsewhere the
    // blocked layout they want would push the direct kernels onto slow paths.
    const bool winograd = config_.conv_algorithm == ConvAlgorithm::Auto && act == dt::f32 && cpu_has_avx512_core();
    user_input_ = user_memory(net_, {n, graph_.nodes[0].channels, config_.height, config_.width}, tag::nhwc);
    outs_.assign(graph_.nodes.size(), memory());
    pools_.resize(graph_.nodes.size());
    upsamples_.resize(graph_.nodes.size());
    outs_[0] = user_input_;
    for (size_t i = 1; i < graph_.nodes.size(); ++i) {
      const Node& node = graph_.nodes[i];
      const memory& in = outs_[node.inputs[0]];
      switch (node.kind) {
        case OpKind::Conv2d: {
          // The logits stay fp32 whatever the compute precision.
          const dt dst_type = static_cast<int>(i) == graph_.output ? dt::f32 : act;
          outs_[i] = conv_forward(net_, convs_[node.conv], in, n, height_of(node), width_of(node), act, dst_type,
                                  config_.training, winograd);
          break;
        }
        case OpKind::MaxPool2x2: outs_[i] = pool_forward(net_, pools_[i], in, config_.training); break;
        case OpKind::Upsample2x: outs_[i] = upsample_forward(net_, upsamples_[i], in, config_.training); break;
        case OpKind::Concat: outs_[i] = concat_forward(net_, in, outs_[node.inputs[1]]); break;
        case OpKind::Input: throw Error("cpu backend: graph has a second input node");
      }
    }
    user_output_ = user_memory(net_, output_dims(), tag::nhwc);
    const memory& logits = outs_[graph_.output];
    output_steps_.push_back(reorder_step(logits, user_output_));
    append_sigmoid(net_, sigmoid_steps_, user_output_);
  }

  void build_backward() {
    std::vector<std::optional<memory>> diffs(graph_.nodes.size());
    auto contribute = [&](int node, const memory& grad) {
      if (node == 0) return;  // the input needs no gradient
      if (!diffs[node]) {
        diffs[node] = grad;
      } else {
        accumulate(net_, *diffs[node], grad);  // a skip tensor feeds both a pool and a concat
      }
    };
    user_dlogits_ = user_memory(net_, output_dims(), tag::nhwc);
    diffs[graph_.output] = user_dlogits_;

    for (size_t i = graph_.nodes.size() - 1; i >= 1; --i) {
      const Node& node = graph_.nodes[i];
      if (!diffs[i]) continue;  // does not reach the output: no gradient flows through it
      const memory& diff = *diffs[i];
      const int in = node.inputs[0];
      switch (node.kind) {
        case OpKind::Conv2d: {
          auto diff_src = conv_backward(net_, convs_[node.conv], diff, in != 0);
          if (diff_src) contribute(in, *diff_src);
          break;
        }
        case OpKind::MaxPool2x2: contribute(in, pool_backward(net_, pools_[i], diff)); break;
        case OpKind::Upsample2x: contribute(in, upsample_backward(net_, upsamples_[i], diff)); break;
        case OpKind::Concat: {
          const int skip = node.inputs[1];
          auto [da, db] = concat_backward(net_, diff, outs_[i].get_desc(), outs_[in].get_desc(), outs_[skip].get_desc());
          contribute(in, da);
          contribute(skip, db);
          break;
        }
        case OpKind::Input: break;
      }
    }
  }

  Graph graph_;
  ExecConfig config_;
  Net net_;
  std::vector<ConvLayer> convs_;
  std::vector<PoolLayer> pools_;          // indexed by node
  std::vector<UpsampleLayer> upsamples_;  // indexed by node
  std::vector<memory> outs_;              // forward output of every node
  memory user_input_, user_output_, user_dlogits_;
  std::vector<Step> output_steps_, sigmoid_steps_;
};

}  // namespace

ArenaStats arena_stats(const Executor& exec) {
  const auto* cpu = dynamic_cast<const CpuExecutor*>(&exec);
  if (!cpu) throw Error("cpu backend: arena_stats() of an executor of another backend");
  return {cpu->net().arena_bytes(), cpu->net().activation_bytes(), cpu->net().placements()};
}

std::unique_ptr<Executor> compile_cpu(const Graph& graph, const ExecConfig& config) {
  // oneDNN runs bf16 natively with AVX512-BF16, emulates it (slowly) with
  // plain AVX-512 and has no bf16 kernels below that.
  if (config.precision == Precision::BF16 && !cpu_has_avx512_core())
    throw Error("cpu backend: bf16 needs a CPU with AVX-512 (oneDNN has no bf16 kernels for this one); use fp32");
  try {
    return std::make_unique<CpuExecutor>(graph, config);
  } catch (const dnnl::error& e) {
    throw Error(std::string("cpu backend (oneDNN): ") + e.what());
  }
}

}  // namespace unetind::cpu
