#include "backend/cuda/cuda_net.h"

#include <algorithm>

namespace unetind::cuda {

namespace {

// A parameter tensor's place in the packed region, aligned as the arena
// aligns its buffers.
int64_t align_floats(int64_t n) { return (n + 63) / 64 * 64; }

}  // namespace

CudaNet::CudaNet(const Graph& graph, const ExecConfig& config, int device) : plan_(graph, config, "cuda backend") {
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

  convs_.resize(graph.convs.size());
  for (size_t c = 0; c < convs_.size(); ++c) convs_[c].spec = graph.convs[c];
  plan_memory();
  arena_.allocate();
  for (auto [slot, offset] : bindings_) *slot = arena_.at(offset);
  setup_layers();
  build_forward();
  if (config.training) build_backward();
}

void CudaNet::plan_memory() {
  const bool training = plan_.config().training;
  int64_t packed = 0;
  for (const Shape& shape : plan_.parameter_shapes()) {
    offsets_.push_back(packed);
    packed += align_floats(shape_numel(shape));
  }
  host_packed_.assign(packed, 0.0f);
  plan(&params_, packed);
  if (training) plan(&param_grads_, packed);

  const Graph& graph = plan_.graph();
  const size_t nodes = graph.nodes.size();
  outs_.assign(nodes, nullptr);
  diffs_.assign(nodes, nullptr);
  for (size_t i = 0; i < nodes; ++i) {
    plan(&outs_[i], plan_.size(int(i)).count());
    if (training && i > 0) plan(&diffs_[i], plan_.size(int(i)).count());
  }
  plan(&probabilities_, output_count());

  for (size_t i = 1; i < nodes; ++i) {
    const Node& node = graph.nodes[i];
    if (node.kind != OpKind::Conv2d) continue;
    ConvLayer& l = convs_[node.conv];
    const int64_t k = l.spec.kernel;
    const NodeSize& size = plan_.size(int(i));
    const int64_t padded = int64_t(plan_.config().batch) * (size.height + k - 1) * (size.width + k - 1) * l.spec.in_channels;
    if (l.spec.kernel % 2 == 0) {
      plan(&l.padded, padded);
      if (training && node.inputs[0] != 0) plan(&l.diff_padded, padded);
    }
    if (training && l.spec.activation != Activation::None) plan(&l.diff_pre, size.count());
  }
}

void CudaNet::setup_layers() {
  const bool training = plan_.config().training;
  for (size_t c = 0; c < convs_.size(); ++c) {
    convs_[c].weights = params_ + offsets_[2 * c];
    convs_[c].bias = params_ + offsets_[2 * c + 1];
    if (training) {
      convs_[c].diff_weights = param_grads_ + offsets_[2 * c];
      convs_[c].diff_bias = param_grads_ + offsets_[2 * c + 1];
    }
  }
  const Graph& graph = plan_.graph();
  pools_.resize(graph.nodes.size());
  size_t workspace = 0;
  for (size_t i = 1; i < graph.nodes.size(); ++i) {
    const Node& node = graph.nodes[i];
    if (node.kind == OpKind::Conv2d) {
      const NodeSize& size = plan_.size(int(i));
      workspace = std::max(workspace, conv_setup(ctx_, convs_[node.conv], plan_.config().batch, size.height,
                                                 size.width, training));
    } else if (node.kind == OpKind::MaxPool2x2) {
      const NodeSize& in = plan_.size(node.inputs[0]);
      pools_[i] = std::make_unique<PoolLayer>();
      pool_setup(*pools_[i], plan_.config().batch, in.height, in.width, in.channels);
    }
  }
  if (workspace > 0) {
    workspace_.reserve(int64_t((workspace + sizeof(float) - 1) / sizeof(float)));
    workspace_.allocate();
    ctx_.workspace = workspace_.at(0);
    ctx_.workspace_bytes = workspace;
  }
}

void CudaNet::build_forward() {
  const Graph& graph = plan_.graph();
  const int batch = plan_.config().batch;
  for (size_t step = 1; step < graph.nodes.size(); ++step) {
    const int i = int(step);
    const Node& node = graph.nodes[i];
    const int in = node.inputs.empty() ? -1 : node.inputs[0];
    switch (node.kind) {
      case OpKind::Conv2d:
        forward_.push_back([this, i, in, c = node.conv] { conv_forward(ctx_, convs_[c], outs_[in], outs_[i]); });
        break;
      case OpKind::MaxPool2x2:
        forward_.push_back([this, i, in] { pool_forward(ctx_, *pools_[i], outs_[in], outs_[i]); });
        break;
      case OpKind::Upsample2x: {
        const NodeSize s = plan_.size(in);
        forward_.push_back([this, i, in, batch, s] {
          upsample_forward(ctx_, outs_[in], outs_[i], batch, s.height, s.width, s.channels);
        });
        break;
      }
      case OpKind::Concat: {
        const int skip = node.inputs[1];
        const int64_t pixels = plan_.size(i).pixels;
        const int ca = plan_.size(in).channels, cb = plan_.size(skip).channels;
        forward_.push_back([this, i, in, skip, pixels, ca, cb] {
          concat_forward(ctx_, outs_[in], outs_[skip], outs_[i], pixels, ca, cb);
        });
        break;
      }
      case OpKind::Input: throw Error("cuda backend: graph has a second input node");
    }
  }
}

void CudaNet::build_backward() {
  const Graph& graph = plan_.graph();
  const int batch = plan_.config().batch;
  // The model input needs no gradient: a null target, and no step for it.
  auto target = [&](const GradientTarget& to) { return to.needed() ? diffs_[to.node] : nullptr; };
  for (const BackwardStep& step : plan_.backward()) {
    const int i = step.node;
    const Node& node = graph.nodes[i];
    const int in = node.inputs[0];
    float* diff_src = target(step.to[0]);
    const bool acc = step.to[0].accumulate;
    switch (node.kind) {
      case OpKind::Conv2d:
        backward_.push_back([this, i, in, c = node.conv, diff_src, acc] {
          conv_backward(ctx_, convs_[c], outs_[in], outs_[i], diffs_[i], diff_src, acc);
        });
        break;
      case OpKind::MaxPool2x2:
        if (diff_src)
          backward_.push_back([this, i, in, diff_src, acc] {
            pool_backward(ctx_, *pools_[i], outs_[in], outs_[i], diffs_[i], diff_src, acc);
          });
        break;
      case OpKind::Upsample2x:
        if (diff_src) {
          const NodeSize s = plan_.size(in);
          backward_.push_back([this, i, diff_src, acc, batch, s] {
            upsample_backward(ctx_, diffs_[i], diff_src, batch, s.height, s.width, s.channels, acc);
          });
        }
        break;
      case OpKind::Concat: {
        float* diff_skip = target(step.to[1]);
        const bool acc_skip = step.to[1].accumulate;
        const int64_t pixels = plan_.size(i).pixels;
        const int ca = plan_.size(in).channels, cb = plan_.size(node.inputs[1]).channels;
        backward_.push_back([this, i, diff_src, diff_skip, acc, acc_skip, pixels, ca, cb] {
          concat_backward(ctx_, diffs_[i], diff_src, diff_skip, pixels, ca, cb, acc, acc_skip);
        });
        break;
      }
      case OpKind::Input: break;
    }
  }
}

void CudaNet::forward() const {
  for (const auto& step : forward_) step();
}

void CudaNet::backward() const {
  if (!plan_.config().training) throw Error("cuda backend: backward() on an executor compiled for inference");
  for (const auto& step : backward_) step();
}

void CudaNet::upload(const std::vector<const Tensor*>& tensors, float* packed) const {
  const auto& shapes = plan_.parameter_shapes();
  if (tensors.size() != shapes.size())
    throw Error("cuda backend: " + std::to_string(tensors.size()) + " tensors for " + std::to_string(shapes.size()) +
                " parameters");
  for (size_t p = 0; p < tensors.size(); ++p) {
    const Shape& shape = shapes[p];
    if (tensors[p]->shape != shape)
      throw Error("cuda backend: tensor " + std::to_string(p) + " has shape " + shape_to_string(tensors[p]->shape) +
                  ", expected " + shape_to_string(shape));
    const float* from = tensors[p]->data.data();
    float* to = host_packed_.data() + offsets_[p];
    if (shape.size() == 1) {
      std::copy_n(from, shape[0], to);
      continue;
    }
    // HWIO -> KRSC.
    const int64_t taps = shape[0] * shape[1], in = shape[2], out = shape[3];
    for (int64_t t = 0; t < taps; ++t)
      for (int64_t i = 0; i < in; ++i)
        for (int64_t o = 0; o < out; ++o) to[(o * taps + t) * in + i] = from[(t * in + i) * out + o];
  }
  UNETIND_CUDA_CHECK(cudaSetDevice(ctx_.device));
  UNETIND_CUDA_CHECK(cudaMemcpyAsync(packed, host_packed_.data(), host_packed_.size() * sizeof(float),
                                     cudaMemcpyHostToDevice, ctx_.stream));
  UNETIND_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
}

std::vector<Tensor> CudaNet::download(const float* packed) const {
  UNETIND_CUDA_CHECK(cudaSetDevice(ctx_.device));
  UNETIND_CUDA_CHECK(cudaMemcpyAsync(host_packed_.data(), packed, host_packed_.size() * sizeof(float),
                                     cudaMemcpyDeviceToHost, ctx_.stream));
  UNETIND_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
  std::vector<Tensor> out;
  for (size_t p = 0; p < plan_.parameter_shapes().size(); ++p) {
    const Shape& shape = plan_.parameter_shapes()[p];
    Tensor t(shape);
    const float* from = host_packed_.data() + offsets_[p];
    if (shape.size() == 1) {
      std::copy_n(from, shape[0], t.data.data());
    } else {  // KRSC -> HWIO
      const int64_t taps = shape[0] * shape[1], in = shape[2], out_channels = shape[3];
      for (int64_t o = 0; o < out_channels; ++o)
        for (int64_t tap = 0; tap < taps; ++tap)
          for (int64_t i = 0; i < in; ++i) t.data[(tap * in + i) * out_channels + o] = from[(o * taps + tap) * in + i];
    }
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace unetind::cuda
