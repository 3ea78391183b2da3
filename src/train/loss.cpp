#include "unetind/loss.h"

#include <algorithm>
#include <cmath>

#include "unetind/error.h"

namespace unetind {

std::string to_string(LossKind kind) {
  switch (kind) {
    case LossKind::Adaptive: return "adaptive_loss";
    case LossKind::CrossEntropy: return "x-entropy";
    case LossKind::DiceSorensen: return "dice_sorensen";
    case LossKind::DiceJaccard: return "dice_jaccard";
    case LossKind::L2: return "l2_loss";
  }
  return "?";
}

LossKind parse_loss_kind(const std::string& s) {
  std::string names;
  for (LossKind k : {LossKind::Adaptive, LossKind::CrossEntropy, LossKind::DiceSorensen, LossKind::DiceJaccard,
                     LossKind::L2}) {
    if (to_string(k) == s) return k;
    names += (names.empty() ? "" : ", ") + to_string(k);
  }
  throw Error("unknown loss '" + s + "' (choose from " + names + ")");
}

namespace {

// Partial sums are taken over fixed chunks and added in chunk order, so the
// value is the same for any thread count.
constexpr int64_t kChunk = int64_t{1} << 16;

struct Sums {
  double yp = 0, p = 0, y = 0, p2 = 0, y2 = 0;
  double bce = 0;  // sum of max(x, 0) - x y + log(1 + exp(-|x|))
  double sq = 0;   // sum of (p - y)^2

  void add(const Sums& o) {
    yp += o.yp, p += o.p, y += o.y, p2 += o.p2, y2 += o.y2, bce += o.bce, sq += o.sq;
  }
};

// sigmoid(x) and log(1 + exp(-|x|)) from one exp, without overflow for large |x|.
struct SigmoidTerms {
  double p;
  double log1p_exp;
};

SigmoidTerms sigmoid_terms(double x) {
  const double e = std::exp(-std::abs(x));
  return {x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e), std::log1p(e)};
}

Sums accumulate(const float* logits, const float* labels, int64_t n) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<Sums> partial(chunks);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    Sums s;
    const int64_t end = std::min(n, (c + 1) * kChunk);
    for (int64_t i = c * kChunk; i < end; ++i) {
      const double x = logits[i], y = labels[i];
      const SigmoidTerms t = sigmoid_terms(x);
      s.yp += y * t.p;
      s.p += t.p;
      s.y += y;
      s.p2 += t.p * t.p;
      s.y2 += y * y;
      s.bce += std::max(x, 0.0) - x * y + t.log1p_exp;
      s.sq += (t.p - y) * (t.p - y);
    }
    partial[c] = s;
  }
  Sums total;
  for (const Sums& s : partial) total.add(s);
  return total;
}

// d(loss)/d(logits) = f(p, y) (elementwise, with the batch sums fixed).
template <typename F>
void fill_gradient(const float* logits, const float* labels, int64_t n, float* dlogits, F f) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const double p = sigmoid_terms(logits[i]).p;
    dlogits[i] = static_cast<float>(f(p, static_cast<double>(labels[i])));
  }
}

}  // namespace

LossResult loss_forward_backward(LossKind kind, const float* logits, const float* labels, int64_t n,
                                 float* dlogits) {
  if (n <= 0) throw Error("loss " + to_string(kind) + ": empty batch (" + std::to_string(n) + " values)");
  const Sums s = accumulate(logits, labels, n);

  // Smooth 1 in numerator and denominator, as NVIDIA's dice_coe.
  const double sorensen_union = s.p + s.y + 1.0;
  const double sorensen_loss = 1.0 - (2.0 * s.yp + 1.0) / sorensen_union;

  LossKind branch = kind;
  if (kind == LossKind::Adaptive)
    branch = sorensen_loss < kAdaptiveSwitchAt ? LossKind::DiceSorensen : LossKind::CrossEntropy;

  LossResult result{0.0, branch};
  switch (branch) {
    case LossKind::DiceSorensen: {
      result.value = sorensen_loss;
      if (!dlogits) break;
      const double dice = 1.0 - sorensen_loss;
      fill_gradient(logits, labels, n, dlogits,
                    [&](double p, double y) { return -(2.0 * y - dice) / sorensen_union * p * (1.0 - p); });
      break;
    }
    case LossKind::DiceJaccard: {
      const double jaccard_union = s.p2 + s.y2 + 1.0;
      const double dice = (2.0 * s.yp + 1.0) / jaccard_union;
      result.value = 1.0 - dice;
      if (!dlogits) break;
      fill_gradient(logits, labels, n, dlogits,
                    [&](double p, double y) { return -2.0 * (y - dice * p) / jaccard_union * p * (1.0 - p); });
      break;
    }
    case LossKind::CrossEntropy: {
      result.value = s.bce / static_cast<double>(n);
      if (!dlogits) break;
      const double inv_n = 1.0 / static_cast<double>(n);
      fill_gradient(logits, labels, n, dlogits, [&](double p, double y) { return (p - y) * inv_n; });
      break;
    }
    case LossKind::L2: {
      result.value = 0.5 * s.sq;
      if (!dlogits) break;
      fill_gradient(logits, labels, n, dlogits, [](double p, double y) { return (p - y) * p * (1.0 - p); });
      break;
    }
    case LossKind::Adaptive: break;  // resolved to a branch above
  }
  return result;
}

double weight_decay(const std::vector<NamedTensor>& params, double coef, std::vector<Tensor>* grads) {
  if (grads) {
    if (grads->size() != params.size())
      throw Error("weight decay: " + std::to_string(grads->size()) + " gradients for " +
                  std::to_string(params.size()) + " parameters");
    for (size_t t = 0; t < params.size(); ++t)
      if ((*grads)[t].shape != params[t].tensor.shape)
        throw Error("weight decay: gradient of " + params[t].name + " has shape " +
                    shape_to_string((*grads)[t].shape) + ", the parameter " +
                    shape_to_string(params[t].tensor.shape));
  }
  // TF adds d(coef * l2_loss(v))/dv = coef * v in the variable's float32.
  const float c = static_cast<float>(coef);
  double sum = 0.0;
  for (size_t t = 0; t < params.size(); ++t) {
    const std::vector<float>& v = params[t].tensor.data;
    for (float x : v) sum += static_cast<double>(x) * x;
    if (!grads) continue;
    std::vector<float>& g = (*grads)[t].data;
    for (size_t i = 0; i < v.size(); ++i) g[i] += c * v[i];
  }
  return coef * sum / 2.0;
}

}  // namespace unetind
