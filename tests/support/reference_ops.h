// Plain-loop reference implementation of every op of the model, forward and
// backward, written from SPEC.md section 1 alone. Every fast path (oneDNN,
// bf16, later CUDA) is tested against it. Activations are NHWC float with
// accumulation in double, so that it is the slow, obviously right version.
#pragma once
#include <functional>
#include <vector>

#include "unetind/model.h"

namespace unetind::ref {

struct Act {  // N x H x W x C
  int n = 0, h = 0, w = 0, c = 0;
  std::vector<float> v;
  Act() = default;
  Act(int n_, int h_, int w_, int c_) : n(n_), h(h_), w(w_), c(c_), v(static_cast<size_t>(n_) * h_ * w_ * c_, 0.f) {}
  float& at(int b, int y, int x, int ch) { return v[((static_cast<size_t>(b) * h + y) * w + x) * c + ch]; }
  float at(int b, int y, int x, int ch) const { return v[((static_cast<size_t>(b) * h + y) * w + x) * c + ch]; }
};

// SAME convolution, stride 1 (pad (k-1)/2 before, the rest after), + bias,
// then the activation. kernel is HWIO.
Act conv2d(const Act& x, const Tensor& kernel, const Tensor& bias, Activation act);
Act maxpool2x2(const Act& x);
Act upsample2x(const Act& x);  // out[i][j] = in[i/2][j/2]
Act concat(const Act& a, const Act& b);

// Backward of each op given its forward inputs/outputs.
// conv: dy is d/d(activation output); y the forward output.
void conv2d_backward(const Act& x, const Tensor& kernel, const Act& y, Activation act, const Act& dy, Act* dx,
                     Tensor& dkernel, Tensor& dbias);
Act maxpool2x2_backward(const Act& x, const Act& dy);  // gradient to the first maximum
Act upsample2x_backward(const Act& dy);
void concat_backward(const Act& dy, int channels_a, Act& da, Act& db);

// Any graph: every node's output for `input` (N x H x W x C of the input
// node). `store`, if given, sees each op's output as it is kept (a bf16 test
// rounds it there, as a bf16 backend stores it).
std::vector<Act> forward_nodes(const Graph& graph, const std::vector<NamedTensor>& params, const float* input, int n,
                               int h, int w, const std::function<void(int node, Act&)>& store = {});
// Every parameter's gradient (parameter order), given every node's forward
// output and d(loss)/d(output). `multiplicands`, if given, stand in for
// `outs` where a convolution's backward multiplies by its input; `outs` still
// decide the activations' masks and pooling's argmax.
std::vector<Tensor> backward_nodes(const Graph& graph, const std::vector<NamedTensor>& params,
                                   const std::vector<Act>& outs, const std::vector<float>& dout,
                                   const std::vector<Act>* multiplicands = nullptr);

// The whole model: logits N x H x W for input N x H x W x 1 (already scaled).
std::vector<float> forward_logits(const Graph& graph, const std::vector<NamedTensor>& params, const float* input,
                                  int n, int h, int w);
// Gradients of every parameter (parameter order) given d(loss)/d(logits).
std::vector<Tensor> backward_params(const Graph& graph, const std::vector<NamedTensor>& params, const float* input,
                                    int n, int h, int w, const float* dlogits);

}  // namespace unetind::ref
