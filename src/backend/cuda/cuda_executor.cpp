// Walks the model graph once per input shape, as the CPU executor does:
// forward steps in graph order, backward steps in reverse order, each op's
// descriptors and algorithms chosen here and reused on every call. All
// activations, gradients and parameters live in one arena.
#include "backend/cuda/cuda_executor.h"

#include <algorithm>
#include <functional>

#include "backend/cuda/ops.h"

namespace unetind::cuda {

namespace {

struct StreamDeleter {
  void operator()(cudaStream_t s) const { cudaStreamDestroy(s); }
};
struct CudnnDeleter {
  void operator()(cudnnHandle_t h) const { cudnnDestroy(h); }
};

// A parameter tensor's place in the packed parameter (and gradient) region,
// aligned as the arena aligns its buffers.
int64_t align_floats(int64_t n) { return (n + 63) / 64 * 64; }

class CudaExecutor final : public Executor {
 public:
  CudaExecutor(const Graph& graph, const ExecConfig& config, int device) : graph_(graph), config_(config) {
    check_exec_shape(graph_, config_, "cuda backend");
    if (config.precision != Precision::F32 && config.precision != Precision::TF32)
      throw Error("cuda backend: precision " + to_string(config.precision) + " is not implemented (use fp32 or tf32)");

    ctx_.device = device;
    ctx_.precision = config.precision;
    UNETIND_CUDA_CHECK(cudaSetDevice(device));
    cudaStream_t stream = nullptr;
    UNETIND_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    stream_.reset(stream);
    cudnnHandle_t cudnn = nullptr;
    UNETIND_CUDNN_CHECK(cudnnCreate(&cudnn));
    cudnn_.reset(cudnn);
    UNETIND_CUDNN_CHECK(cudnnSetStream(cudnn, stream));
    ctx_.stream = stream;
    ctx_.cudnn = cudnn;

    convs_.resize(graph_.convs.size());
    for (size_t c = 0; c < convs_.size(); ++c) convs_[c].spec = graph_.convs[c];
    plan_memory();
    arena_.allocate();
    for (auto [slot, offset] : bindings_) *slot = arena_.at(offset);
    setup_layers();
    build_forward();
    if (config_.training) build_backward();
  }

  void set_parameters(const std::vector<NamedTensor>& params) override {
    if (params.size() != 2 * convs_.size())
      throw Error("cuda backend: expected " + std::to_string(2 * convs_.size()) + " parameter tensors, got " +
                  std::to_string(params.size()));
    for (size_t c = 0; c < convs_.size(); ++c) {
      const ConvSpec& s = convs_[c].spec;
      check_shape(params[2 * c], {s.kernel, s.kernel, s.in_channels, s.out_channels});
      check_shape(params[2 * c + 1], {s.out_channels});
      // HWIO -> KRSC, the filter layout of cuDNN's NHWC convolutions.
      const float* hwio = params[2 * c].tensor.data.data();
      float* krsc = host_params_.data() + kernel_offsets_[c];
      const int taps = s.kernel * s.kernel;
      for (int t = 0; t < taps; ++t)
        for (int i = 0; i < s.in_channels; ++i)
          for (int o = 0; o < s.out_channels; ++o)
            krsc[(int64_t(o) * taps + t) * s.in_channels + i] = hwio[(int64_t(t) * s.in_channels + i) * s.out_channels + o];
      std::copy_n(params[2 * c + 1].tensor.data.data(), s.out_channels, host_params_.data() + bias_offsets_[c]);
    }
    UNETIND_CUDA_CHECK(cudaSetDevice(ctx_.device));
    UNETIND_CUDA_CHECK(cudaMemcpyAsync(params_, host_params_.data(), host_params_.size() * sizeof(float),
                                       cudaMemcpyHostToDevice, ctx_.stream));
    UNETIND_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
  }

  void forward(const float* input, float* out, bool probabilities) override {
    UNETIND_CUDA_CHECK(cudaSetDevice(ctx_.device));
    UNETIND_CUDA_CHECK(cudaMemcpyAsync(outs_[0], input, node_count(0) * sizeof(float), cudaMemcpyHostToDevice,
                                       ctx_.stream));
    for (const auto& step : forward_) step();
    const int64_t count = node_count(graph_.output);
    const float* result = outs_[graph_.output];
    if (probabilities) {
      sigmoid_forward(ctx_, result, probabilities_, count);
      result = probabilities_;
    }
    UNETIND_CUDA_CHECK(cudaMemcpyAsync(out, result, count * sizeof(float), cudaMemcpyDeviceToHost, ctx_.stream));
    UNETIND_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
  }

  void backward(const float* dlogits, std::vector<Tensor>& grads) override {
    if (!config_.training) throw Error("cuda backend: backward() on an executor compiled for inference");
    UNETIND_CUDA_CHECK(cudaSetDevice(ctx_.device));
    UNETIND_CUDA_CHECK(cudaMemcpyAsync(diffs_[graph_.output], dlogits, node_count(graph_.output) * sizeof(float),
                                       cudaMemcpyHostToDevice, ctx_.stream));
    for (const auto& step : backward_) step();
    UNETIND_CUDA_CHECK(cudaMemcpyAsync(host_params_.data(), param_grads_, host_params_.size() * sizeof(float),
                                       cudaMemcpyDeviceToHost, ctx_.stream));
    UNETIND_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
    grads.resize(2 * convs_.size());
    for (size_t c = 0; c < convs_.size(); ++c) {
      const ConvSpec& s = convs_[c].spec;
      Tensor& dk = grads[2 * c];
      Tensor& db = grads[2 * c + 1];
      if (dk.shape != Shape{s.kernel, s.kernel, s.in_channels, s.out_channels})
        dk = Tensor({s.kernel, s.kernel, s.in_channels, s.out_channels});
      if (db.shape != Shape{s.out_channels}) db = Tensor({s.out_channels});
      if (!conv_reached_[c]) {  // a convolution that does not reach the output
        std::fill(dk.data.begin(), dk.data.end(), 0.0f);
        std::fill(db.data.begin(), db.data.end(), 0.0f);
        continue;
      }
      const float* krsc = host_params_.data() + kernel_offsets_[c];
      const int taps = s.kernel * s.kernel;
      for (int o = 0; o < s.out_channels; ++o)
        for (int t = 0; t < taps; ++t)
          for (int i = 0; i < s.in_channels; ++i)
            dk.data[(int64_t(t) * s.in_channels + i) * s.out_channels + o] = krsc[(int64_t(o) * taps + t) * s.in_channels + i];
      std::copy_n(host_params_.data() + bias_offsets_[c], s.out_channels, db.data.data());
    }
  }

  const ExecConfig& config() const override { return config_; }

 private:
  static void check_shape(const NamedTensor& t, const Shape& expected) {
    if (t.tensor.shape != expected)
      throw Error("cuda backend: parameter '" + t.name + "' has shape " + shape_to_string(t.tensor.shape) +
                  ", expected " + shape_to_string(expected));
  }

  int height_of(int node) const { return config_.height * graph_.nodes[0].scale / graph_.nodes[node].scale; }
  int width_of(int node) const { return config_.width * graph_.nodes[0].scale / graph_.nodes[node].scale; }
  int64_t pixels_of(int node) const { return int64_t(config_.batch) * height_of(node) * width_of(node); }
  int64_t node_count(int node) const { return pixels_of(node) * graph_.nodes[node].channels; }

  // Reserves every buffer in the arena; the pointers are bound once it exists.
  void plan(float** slot, int64_t floats) { bindings_.emplace_back(slot, arena_.reserve(floats)); }

  void plan_memory() {
    int64_t packed = 0;
    for (const ConvLayer& l : convs_) {
      kernel_offsets_.push_back(packed);
      packed += align_floats(int64_t(l.spec.kernel) * l.spec.kernel * l.spec.in_channels * l.spec.out_channels);
      bias_offsets_.push_back(packed);
      packed += align_floats(l.spec.out_channels);
    }
    host_params_.assign(packed, 0.0f);
    plan(&params_, packed);
    if (config_.training) plan(&param_grads_, packed);

    const size_t nodes = graph_.nodes.size();
    outs_.assign(nodes, nullptr);
    diffs_.assign(nodes, nullptr);
    for (size_t i = 0; i < nodes; ++i) {
      plan(&outs_[i], node_count(int(i)));
      if (config_.training && i > 0) plan(&diffs_[i], node_count(int(i)));
    }
    plan(&probabilities_, node_count(graph_.output));

    for (size_t i = 1; i < nodes; ++i) {
      const Node& node = graph_.nodes[i];
      if (node.kind != OpKind::Conv2d) continue;
      ConvLayer& l = convs_[node.conv];
      const int64_t k = l.spec.kernel;
      const int64_t padded =
          int64_t(config_.batch) * (height_of(int(i)) + k - 1) * (width_of(int(i)) + k - 1) * l.spec.in_channels;
      if (l.spec.kernel % 2 == 0) {
        plan(&l.padded, padded);
        if (config_.training && node.inputs[0] != 0) plan(&l.diff_padded, padded);
      }
      if (config_.training && l.spec.activation != Activation::None) plan(&l.diff_pre, node_count(int(i)));
    }
  }

  void setup_layers() {
    for (size_t c = 0; c < convs_.size(); ++c) {
      convs_[c].weights = params_ + kernel_offsets_[c];
      convs_[c].bias = params_ + bias_offsets_[c];
      if (config_.training) {
        convs_[c].diff_weights = param_grads_ + kernel_offsets_[c];
        convs_[c].diff_bias = param_grads_ + bias_offsets_[c];
      }
    }
    pools_.resize(graph_.nodes.size());
    size_t workspace = 0;
    for (size_t i = 1; i < graph_.nodes.size(); ++i) {
      const Node& node = graph_.nodes[i];
      if (node.kind == OpKind::Conv2d) {
        workspace = std::max(workspace, conv_setup(ctx_, convs_[node.conv], config_.batch, height_of(int(i)),
                                                   width_of(int(i)), config_.training));
      } else if (node.kind == OpKind::MaxPool2x2) {
        const int in = node.inputs[0];
        pools_[i] = std::make_unique<PoolLayer>();
        pool_setup(*pools_[i], config_.batch, height_of(in), width_of(in), graph_.nodes[in].channels);
      }
    }
    if (workspace > 0) {
      workspace_.reserve(int64_t((workspace + sizeof(float) - 1) / sizeof(float)));
      workspace_.allocate();
      ctx_.workspace = workspace_.at(0);
      ctx_.workspace_bytes = workspace;
    }
  }

  void build_forward() {
    for (size_t step = 1; step < graph_.nodes.size(); ++step) {
      const int i = int(step);
      const Node& node = graph_.nodes[i];
      const int in = node.inputs.empty() ? -1 : node.inputs[0];
      switch (node.kind) {
        case OpKind::Conv2d:
          forward_.push_back([this, i, in, c = node.conv] { conv_forward(ctx_, convs_[c], outs_[in], outs_[i]); });
          break;
        case OpKind::MaxPool2x2:
          forward_.push_back([this, i, in] { pool_forward(ctx_, *pools_[i], outs_[in], outs_[i]); });
          break;
        case OpKind::Upsample2x:
          forward_.push_back([this, i, in] {
            upsample_forward(ctx_, outs_[in], outs_[i], config_.batch, height_of(in), width_of(in),
                             graph_.nodes[in].channels);
          });
          break;
        case OpKind::Concat: {
          const int skip = node.inputs[1];
          forward_.push_back([this, i, in, skip] {
            concat_forward(ctx_, outs_[in], outs_[skip], outs_[i], pixels_of(i), graph_.nodes[in].channels,
                           graph_.nodes[skip].channels);
          });
          break;
        }
        case OpKind::Input: throw Error("cuda backend: graph has a second input node");
      }
    }
  }

  void build_backward() {
    // Which nodes already hold a gradient when a step runs: the first
    // contribution writes, later ones add.
    std::vector<bool> has_diff(graph_.nodes.size(), false);
    has_diff[graph_.output] = true;
    conv_reached_.assign(convs_.size(), false);
    // The input needs no gradient: null target, no step.
    auto target = [&](int node, bool& accumulate) -> float* {
      if (node == 0) return nullptr;
      accumulate = has_diff[node];
      has_diff[node] = true;
      return diffs_[node];
    };
    for (size_t step = graph_.nodes.size() - 1; step >= 1; --step) {
      const int i = int(step);
      const Node& node = graph_.nodes[i];
      if (!has_diff[i]) continue;  // does not reach the output: no gradient flows through it
      const int in = node.inputs[0];
      bool acc = false;
      switch (node.kind) {
        case OpKind::Conv2d: {
          conv_reached_[node.conv] = true;
          float* diff_src = target(in, acc);
          backward_.push_back([this, i, in, c = node.conv, diff_src, acc] {
            conv_backward(ctx_, convs_[c], outs_[in], outs_[i], diffs_[i], diff_src, acc);
          });
          break;
        }
        case OpKind::MaxPool2x2:
          if (float* diff_src = target(in, acc))
            backward_.push_back([this, i, in, diff_src, acc] {
              pool_backward(ctx_, *pools_[i], outs_[in], outs_[i], diffs_[i], diff_src, acc);
            });
          break;
        case OpKind::Upsample2x:
          if (float* diff_src = target(in, acc))
            backward_.push_back([this, i, in, diff_src, acc] {
              upsample_backward(ctx_, diffs_[i], diff_src, config_.batch, height_of(in), width_of(in),
                                graph_.nodes[in].channels, acc);
            });
          break;
        case OpKind::Concat: {
          const int skip = node.inputs[1];
          bool acc_skip = false;
          float* diff_a = target(in, acc);
          float* diff_b = target(skip, acc_skip);
          backward_.push_back([this, i, in, skip, diff_a, diff_b, acc, acc_skip] {
            concat_backward(ctx_, diffs_[i], diff_a, diff_b, pixels_of(i), graph_.nodes[in].channels,
                            graph_.nodes[skip].channels, acc, acc_skip);
          });
          break;
        }
        case OpKind::Input: break;
      }
    }
  }

  Graph graph_;
  ExecConfig config_;
  Context ctx_;
  std::unique_ptr<CUstream_st, StreamDeleter> stream_;
  std::unique_ptr<cudnnContext, CudnnDeleter> cudnn_;
  Arena arena_, workspace_;
  std::vector<std::pair<float**, size_t>> bindings_;  // arena pointer slots and their offsets
  std::vector<ConvLayer> convs_;
  std::vector<std::unique_ptr<PoolLayer>> pools_;  // indexed by node
  std::vector<int64_t> kernel_offsets_, bias_offsets_;  // in the packed parameter region
  std::vector<float> host_params_;                      // that region on the host (KRSC kernels)
  float* params_ = nullptr;
  float* param_grads_ = nullptr;
  float* probabilities_ = nullptr;
  std::vector<float*> outs_, diffs_;  // every node's output and d(loss)/d(output)
  std::vector<bool> conv_reached_;
  std::vector<std::function<void()>> forward_, backward_;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device) {}
  std::string name() const override { return "cuda:" + std::to_string(device_); }
  std::unique_ptr<Executor> compile(const Graph& graph, const ExecConfig& config) override {
    return std::make_unique<CudaExecutor>(graph, config, device_);
  }

 private:
  int device_;
};

}  // namespace

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: not an error for a caller that only lists devices
    return 0;
  }
  return count;
}

std::unique_ptr<Backend> make_cuda_backend(const std::string& device) {
  int index = 0;
  if (device != "cuda") {
    const std::string prefix = "cuda:";
    const std::string digits = device.rfind(prefix, 0) == 0 ? device.substr(prefix.size()) : "";
    if (digits.empty() || digits.size() > 4 ||
        !std::all_of(digits.begin(), digits.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
      throw Error("unknown device '" + device + "' (CUDA devices are named cuda or cuda:N)");
    index = std::stoi(digits);
  }
  const int count = device_count();
  if (count == 0) throw Error("device '" + device + "': no CUDA device was found");
  if (index >= count)
    throw Error("device '" + device + "': this machine has " + std::to_string(count) + " CUDA device(s), cuda:0 to cuda:" +
                std::to_string(count - 1));
  return std::make_unique<CudaBackend>(index);
}

}  // namespace unetind::cuda
