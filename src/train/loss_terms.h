// The arithmetic of the five losses (loss.h), for loss_forward_backward on
// the host and the CUDA backend's loss kernels alike: what each value adds to
// the batch sums, what the loss and its gradient factors are once the sums
// are known, and d(loss)/d(logit) of one value.
#pragma once
#include <math.h>

#include <cstdint>

#include "train/host_device.h"
#include "unetind/loss.h"

namespace unetind::loss_terms {

// Sums over the batch, in double. An aggregate without initialisers (CUDA
// shared memory cannot hold constructed objects): start from Sums{}.
struct Sums {
  double yp, p, y, p2, y2;
  double bce;  // sum of max(x, 0) - x y + log(1 + exp(-|x|))
  double sq;   // sum of (p - y)^2

  UNETIND_HOST_DEVICE void add(const Sums& o) {
    yp += o.yp, p += o.p, y += o.y, p2 += o.p2, y2 += o.y2, bce += o.bce, sq += o.sq;
  }
};

// sigmoid(x) and log(1 + exp(-|x|)) from one exp, without overflow for large |x|.
struct SigmoidTerms {
  double p;
  double log1p_exp;
};

UNETIND_HOST_DEVICE inline SigmoidTerms sigmoid_terms(double x) {
  const double e = exp(-fabs(x));
  return {x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e), log1p(e)};
}

UNETIND_HOST_DEVICE inline void add_value(Sums& s, double x, double y) {
  const SigmoidTerms t = sigmoid_terms(x);
  s.yp += y * t.p;
  s.p += t.p;
  s.y += y;
  s.p2 += t.p * t.p;
  s.y2 += y * y;
  s.bce += (x < 0.0 ? 0.0 : x) - x * y + t.log1p_exp;  // std::max(x, 0.0)
  s.sq += (t.p - y) * (t.p - y);
}

// The loss of the batch and what its gradient needs: the branch computed
// (Adaptive resolves to DiceSorensen or CrossEntropy), the Dice value and
// the denominator of the Dice losses, 1/n for the mean.
struct Coefficients {
  double value;
  LossKind branch;
  double dice, denominator, inv_n;
};

UNETIND_HOST_DEVICE inline Coefficients coefficients(LossKind kind, const Sums& s, int64_t n) {
  // Smooth 1 in numerator and denominator, as NVIDIA's dice_coe.
  const double sorensen_union = s.p + s.y + 1.0;
  const double sorensen_loss = 1.0 - (2.0 * s.yp + 1.0) / sorensen_union;
  LossKind branch = kind;
  if (kind == LossKind::Adaptive)
    branch = sorensen_loss < kAdaptiveSwitchAt ? LossKind::DiceSorensen : LossKind::CrossEntropy;
  Coefficients c{0.0, branch, 0.0, 0.0, 1.0 / static_cast<double>(n)};
  switch (branch) {
    case LossKind::DiceSorensen:
      c.value = sorensen_loss;
      c.dice = 1.0 - sorensen_loss;
      c.denominator = sorensen_union;
      break;
    case LossKind::DiceJaccard:
      c.denominator = s.p2 + s.y2 + 1.0;
      c.dice = (2.0 * s.yp + 1.0) / c.denominator;
      c.value = 1.0 - c.dice;
      break;
    case LossKind::CrossEntropy: c.value = s.bce / static_cast<double>(n); break;
    case LossKind::L2: c.value = 0.5 * s.sq; break;
    case LossKind::Adaptive: break;  // resolved to a branch above
  }
  return c;
}

// d(loss)/d(logit) of a value with sigmoid p and label y.
UNETIND_HOST_DEVICE inline double gradient(const Coefficients& c, double p, double y) {
  switch (c.branch) {
    case LossKind::DiceSorensen: return -(2.0 * y - c.dice) / c.denominator * p * (1.0 - p);
    case LossKind::DiceJaccard: return -2.0 * (y - c.dice * p) / c.denominator * p * (1.0 - p);
    case LossKind::CrossEntropy: return (p - y) * c.inv_n;
    case LossKind::L2: return (p - y) * p * (1.0 - p);
    case LossKind::Adaptive: break;
  }
  return 0.0;
}

}  // namespace unetind::loss_terms
