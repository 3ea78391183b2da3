// The peer for bench_vs_libtorch: TinyUNet (SPEC.md section 1) in LibTorch,
// NCHW, executed op by op in eager mode, with the weights of our Parameters.
// The network is walked from unetind::build_graph so that both sides run the
// same graph; the equality check in bench_vs_libtorch.cpp makes sure they
// also compute the same function.
#pragma once
#include <torch/script.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "unetind/model.h"

namespace unetind::bench {

// How the peer lays out and computes its tensors.
//   Contiguous: torch's default NCHW (its convolutions go through oneDNN).
//   ChannelsLast: NHWC strides for activations and weights.
//   Frozen: inference only, a TorchScript module of the same ops, frozen and
//     passed through torch::jit::optimize_for_inference (torch's own
//     rewrite for oneDNN: prepacked weights, oneDNN tensor layouts).
enum class TorchVariant { Contiguous, ChannelsLast, Frozen };
std::string to_string(TorchVariant v);  // "default" | "channels_last" | "frozen"
TorchVariant parse_torch_variant(const std::string& s);

class TorchTinyUNet {
 public:
  // Copies every HWIO kernel of `params` into torch's OIHW, in `dtype`
  // (kFloat or kBFloat16). With `trainable` the weights and biases require
  // gradients (Contiguous and ChannelsLast only).
  TorchTinyUNet(const Parameters& params, TorchVariant variant, torch::ScalarType dtype, bool trainable);

  // images: count x size x size prepared inputs (our NHWC with C = 1, which
  // is also NCHW); returns them as the model's input tensor (a copy).
  torch::Tensor input(const float* images, int count, int size) const;
  // Logits, N x 1 x H x W.
  torch::Tensor forward(const torch::Tensor& x);

  // Weights and biases, in our Parameters order.
  const std::vector<torch::Tensor>& parameters() const { return tensors_; }

 private:
  torch::Tensor eager_forward(const torch::Tensor& x) const;
  void freeze();

  Graph graph_;
  TorchVariant variant_;
  torch::ScalarType dtype_;
  std::vector<torch::Tensor> tensors_;
  std::vector<int> last_use_;  // per node, the last node that reads it
  torch::jit::Module frozen_;
};

}  // namespace unetind::bench
