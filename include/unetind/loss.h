// The training losses of NVIDIA's UNet-Industrial (utils/losses.py and
// model/unet.py), SPEC.md section 2: a reconstruction loss on the logits of
// the whole batch, flattened, plus weight decay on every parameter.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "unetind/safetensors.h"
#include "unetind/tensor.h"

namespace unetind {

// CLI names: adaptive_loss, x-entropy, dice_sorensen, dice_jaccard, l2_loss.
enum class LossKind { Adaptive, CrossEntropy, DiceSorensen, DiceJaccard, L2 };

std::string to_string(LossKind kind);
LossKind parse_loss_kind(const std::string& s);  // Error lists the valid names

// Adaptive switches from cross-entropy to 1 - Dice once 1 - Dice drops below this.
constexpr double kAdaptiveSwitchAt = 0.3;

struct LossResult {
  double value = 0.0;
  // The loss that was computed: `kind` itself, or for Adaptive the branch it
  // took (DiceSorensen or CrossEntropy).
  LossKind branch = LossKind::Adaptive;
};

// p = sigmoid(logits), y = labels (masks in [0, 1]), over n values:
//   dice_sorensen  1 - (2 sum(y p) + 1) / (sum(p) + sum(y) + 1)
//   dice_jaccard   1 - (2 sum(y p) + 1) / (sum(p^2) + sum(y^2) + 1)
//   x-entropy      mean of max(x, 0) - x y + log(1 + exp(-|x|))
//   l2_loss        sum((p - y)^2) / 2
//   adaptive_loss  dice_sorensen if it is below kAdaptiveSwitchAt, else x-entropy
// When `dlogits` is not null it receives d(loss)/d(logits) (n values).
// Sums are accumulated in double in fixed-size chunks, so the result does not
// depend on the number of threads.
LossResult loss_forward_backward(LossKind kind, const float* logits, const float* labels, int64_t n,
                                 float* dlogits);

// coef * sum(v^2) / 2 over every value of every tensor (biases included), as
// TF's coef * add_n(l2_loss(v)). When `grads` is not null (same order and
// shapes as `params`) coef * v is added to it.
double weight_decay(const std::vector<NamedTensor>& params, double coef, std::vector<Tensor>* grads);

}  // namespace unetind
