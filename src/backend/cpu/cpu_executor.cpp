// Walks the model graph once per input shape: forward steps in graph order,
// backward steps in reverse order, each op's primitives built once here and
// executed on every call.
#include "backend/cpu/cpu_executor.h"

#include <algorithm>
#include <cmath>

#include "backend/cpu/int8.h"
#include "backend/cpu/ops.h"
#include "backend/plan.h"
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
  // `observed`: every node's output stays readable after forward(), for
  // node_max_abs().
  CpuExecutor(const Graph& graph, const ExecConfig& config, bool observed = false)
      : plan_(graph, config, "cpu backend"), observed_(observed) {
    if (config.precision == Precision::INT8) {
      if (config.training) throw Error("cpu backend: int8 is for inference only");
      // The primitives' output scales depend on the weights' scales: the net
      // is built by set_parameters().
      int8_ = plan_int8(graph, config.int8_ranges);
      return;
    }
    build();
  }

  void set_parameters(const std::vector<NamedTensor>& params) override {
    plan_.check_parameters(params);
    if (config().precision == Precision::INT8) {
      std::vector<std::vector<float>> scales(plan_.graph().convs.size());
      for (const Node& node : plan_.graph().nodes)
        if (node.kind == OpKind::Conv2d)
          scales[node.conv] = weight_scales(params[2 * node.conv].tensor, int8_[node.inputs[0]].scales);
      if (scales != weight_scales_ || !built_) {
        weight_scales_ = std::move(scales);
        try {
          build();
        } catch (const dnnl::error& e) {
          throw Error(std::string("cpu backend (oneDNN): ") + e.what());
        }
      }
    }
    for (size_t c = 0; c < convs_.size(); ++c) {
      ConvLayer& layer = convs_[c];
      layer.user_weights.set_data_handle(const_cast<float*>(params[2 * c].tensor.data.data()));
      layer.user_bias.set_data_handle(const_cast<float*>(params[2 * c + 1].tensor.data.data()));
      net_.run(layer.load_steps);
    }
  }

  void forward(const float* input, float* out, bool probabilities) override {
    if (!built_) throw Error("cpu backend: forward() on an int8 executor before set_parameters()");
    user_input_.set_data_handle(const_cast<float*>(input));
    user_output_.set_data_handle(out);
    net_.run(net_.forward);
    net_.run(output_steps_);
    if (!probabilities) return;
    check_outputs_finite(out, plan_output_count() / config().batch, config().batch);
    net_.run(sigmoid_steps_);
  }

  void backward(const float* dlogits, std::vector<Tensor>& grads) override {
    if (!config().training) throw Error("cpu backend: backward() on an executor compiled for inference");
    user_dlogits_.set_data_handle(const_cast<float*>(dlogits));
    net_.run(net_.backward);
    plan_.shape_gradients(grads);
    for (size_t c = 0; c < convs_.size(); ++c) {
      if (!plan_.conv_reached(int(c))) continue;
      ConvLayer& layer = convs_[c];
      layer.user_diff_weights.set_data_handle(grads[2 * c].data.data());
      layer.user_diff_bias.set_data_handle(grads[2 * c + 1].data.data());
      net_.run(layer.grad_steps);
    }
  }

  const ExecConfig& config() const override { return plan_.config(); }
  const Net& net() const { return net_; }
  size_t plan_output_count() const { return size_t(plan_.output_size().count()); }

  // Observed executors, after forward(): the largest |value| of each node's
  // output (in node order; the input's from the caller's array, still set).
  // Per node, per channel.
  std::vector<std::vector<float>> node_max_abs() {
    if (!observed_) throw Error("cpu backend: node_max_abs() of an executor not compiled to observe");
    std::vector<std::vector<float>> out;
    for (memory& m : outs_) {
      const memory::dims dims = m.get_desc().dims();
      memory plain(memory::desc(dims, dt::f32, tag::nchw), net_.engine);
      dnnl::reorder(m, plain).execute(net_.stream, m, plain);
      net_.stream.wait();
      const auto* v = static_cast<const float*>(plain.get_data_handle());
      const size_t channels = size_t(dims[1]), plane = size_t(dims[2] * dims[3]);
      std::vector<float> max_abs(channels, 0.0f);
      for (size_t k = 0; k < size_t(dims[0]) * channels * plane; ++k)
        max_abs[(k / plane) % channels] = std::max(max_abs[(k / plane) % channels], std::fabs(v[k]));
      out.push_back(std::move(max_abs));
    }
    return out;
  }

 private:
  // (Re)builds every primitive and plans the arena.
  void build() {
    net_ = Net();
    convs_.assign(plan_.graph().convs.size(), ConvLayer());
    for (size_t c = 0; c < convs_.size(); ++c) convs_[c].spec = plan_.graph().convs[c];
    pools_.clear();
    upsamples_.clear();
    output_steps_.clear();
    sigmoid_steps_.clear();
    build_forward();
    if (config().training) build_backward();
    if (observed_)
      for (size_t i = 1; i < outs_.size(); ++i) net_.keep_live(outs_[i]);
    net_.plan({&net_.forward, &output_steps_, &net_.backward}, config().activations);
    built_ = true;
  }

  memory::dims output_dims() const {
    const NodeSize& out = plan_.output_size();
    return {config().batch, out.channels, out.height, out.width};
  }

  void build_forward() {
    const Graph& graph = plan_.graph();
    const ExecConfig& config = plan_.config();
    const int n = config.batch;
    const dt act = config.precision == Precision::BF16 ? dt::bf16 : dt::f32;
    // oneDNN's Winograd kernels are fp32 and AVX-512 only. Elsewhere the
    // blocked layout they want would push the direct kernels onto slow paths.
    const bool winograd = config.conv_algorithm == ConvAlgorithm::Auto && act == dt::f32 &&
                          config.precision != Precision::INT8 && cpu_has_avx512_core();
    user_input_ = user_memory(net_, {n, graph.nodes[0].channels, config.height, config.width}, tag::nhwc);
    outs_.assign(graph.nodes.size(), memory());
    pools_.resize(graph.nodes.size());
    upsamples_.resize(graph.nodes.size());
    outs_[0] = user_input_;
    if (!int8_.empty()) {
      // The input is quantised once, in the layout the caller gives.
      outs_[0] = net_.make_activation(memory::desc(user_input_.get_desc().dims(), int8_[0].type, tag::nhwc));
      net_.append(net_.forward,
                  dnnl::reorder::primitive_desc(net_.engine, user_input_.get_desc(), net_.engine, outs_[0].get_desc(),
                                                user_scratchpad(scaled(int8_[0].scales, {1}))),
                  {{DNNL_ARG_FROM, user_input_}, {DNNL_ARG_TO, outs_[0]}});
    }
    for (size_t i = 1; i < graph.nodes.size(); ++i) {
      const Node& node = graph.nodes[i];
      const memory& in = outs_[node.inputs[0]];
      switch (node.kind) {
        case OpKind::Conv2d: {
          // The logits stay fp32 whatever the compute precision.
          const dt dst_type = static_cast<int>(i) == graph.output ? dt::f32 : act;
          const NodeSize& size = plan_.size(int(i));
          if (!int8_.empty()) {
            const ConvQuant quant{int8_[node.inputs[0]].scales, int8_[i].scales, weight_scales_[node.conv]};
            outs_[i] = conv_forward(net_, convs_[node.conv], in, n, size.height, size.width, act, int8_[i].type,
                                    false, false, &quant);
          } else {
            outs_[i] = conv_forward(net_, convs_[node.conv], in, n, size.height, size.width, act, dst_type,
                                    config.training, winograd);
          }
          break;
        }
        case OpKind::MaxPool2x2: outs_[i] = pool_forward(net_, pools_[i], in, config.training); break;
        case OpKind::Upsample2x: outs_[i] = upsample_forward(net_, upsamples_[i], in, config.training); break;
        case OpKind::Concat: {
          if (int8_.empty()) {
            outs_[i] = concat_forward(net_, in, outs_[node.inputs[1]]);
            break;
          }
          // Each input channel keeps its scale, converted only from u8 into s8.
          const dt type = int8_[i].type;
          const ConcatQuant quant{type,
                                  {int8_rescale(int8_[node.inputs[0]].type, type),
                                   int8_rescale(int8_[node.inputs[1]].type, type)}};
          outs_[i] = concat_forward(net_, in, outs_[node.inputs[1]], &quant);
          break;
        }
        case OpKind::Input: throw Error("cpu backend: graph has a second input node");
      }
    }
    user_output_ = user_memory(net_, output_dims(), tag::nhwc);
    const memory& logits = outs_[graph.output];
    output_steps_.push_back(reorder_step(logits, user_output_));
    append_sigmoid(net_, sigmoid_steps_, user_output_);
  }

  // The plan's schedule: the first contribution to a node's gradient is that
  // memory itself, later ones are added to it.
  void build_backward() {
    const Graph& graph = plan_.graph();
    std::vector<memory> diffs(graph.nodes.size());
    auto contribute = [&](const GradientTarget& to, const memory& grad) {
      if (!to.needed()) return;
      if (to.accumulate)
        accumulate(net_, diffs[to.node], grad);
      else
        diffs[to.node] = grad;
    };
    user_dlogits_ = user_memory(net_, output_dims(), tag::nhwc);
    diffs[graph.output] = user_dlogits_;

    for (const BackwardStep& step : plan_.backward()) {
      const int i = step.node;
      const Node& node = graph.nodes[i];
      const memory& diff = diffs[i];
      switch (node.kind) {
        case OpKind::Conv2d: {
          auto diff_src = conv_backward(net_, convs_[node.conv], diff, step.to[0].needed());
          if (diff_src) contribute(step.to[0], *diff_src);
          break;
        }
        case OpKind::MaxPool2x2:
          if (step.to[0].needed()) contribute(step.to[0], pool_backward(net_, pools_[i], diff));
          break;
        case OpKind::Upsample2x:
          if (step.to[0].needed()) contribute(step.to[0], upsample_backward(net_, upsamples_[i], diff));
          break;
        case OpKind::Concat: {
          auto [da, db] = concat_backward(net_, diff, outs_[i].get_desc(), outs_[node.inputs[0]].get_desc(),
                                          outs_[node.inputs[1]].get_desc());
          contribute(step.to[0], da);
          contribute(step.to[1], db);
          break;
        }
        case OpKind::Input: break;
      }
    }
  }

  ExecPlan plan_;
  Net net_;
  std::vector<ConvLayer> convs_;
  std::vector<PoolLayer> pools_;          // indexed by node
  std::vector<UpsampleLayer> upsamples_;  // indexed by node
  std::vector<memory> outs_;              // forward output of every node
  memory user_input_, user_output_, user_dlogits_;
  std::vector<Step> output_steps_, sigmoid_steps_;
  bool observed_ = false;
  bool built_ = false;
  std::vector<ActivationQuant> int8_;              // INT8 only: per node
  std::vector<std::vector<float>> weight_scales_;  // INT8 only: per convolution, per output channel
};

}  // namespace

ArenaStats arena_stats(const Executor& exec) {
  const auto* cpu = dynamic_cast<const CpuExecutor*>(&exec);
  if (!cpu) throw Error("cpu backend: arena_stats() of an executor of another backend");
  return {cpu->net().arena_bytes(), cpu->net().activation_bytes(), cpu->net().placements()};
}

std::vector<std::vector<float>> node_max_abs(const Graph& graph, const std::vector<NamedTensor>& params,
                                             const float* images, int count, int height, int width) {
  CpuExecutor exec(graph, ExecConfig{1, height, width, false, Precision::F32, ConvAlgorithm::Auto, {}}, true);
  exec.set_parameters(params);
  std::vector<float> logits(exec.plan_output_count());
  std::vector<std::vector<float>> out;
  for (int i = 0; i < count; ++i) {
    exec.forward(images + size_t(i) * height * width, logits.data(), false);
    const std::vector<std::vector<float>> m = exec.node_max_abs();
    if (out.empty()) out = m;
    for (size_t k = 0; k < out.size(); ++k)
      for (size_t c = 0; c < out[k].size(); ++c) out[k][c] = std::max(out[k][c], m[k][c]);
  }
  return out;
}

std::unique_ptr<Executor> compile_cpu(const Graph& graph, const ExecConfig& config) {
  if (config.precision == Precision::INT8 && config.training)
    throw Error("cpu backend: int8 is for inference only; train in fp32 or bf16");
  if (config.activations && config.training)
    throw Error("cpu backend: a training executor keeps its activations from forward() to backward(), so it "
                "cannot share an ActivationArena");
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
