#include "unetind/loss.h"

#include <algorithm>

#include "train/loss_terms.h"
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

using loss_terms::Sums;

// Partial sums are taken over fixed chunks and added in chunk order, so the
// value is the same for any thread count.
constexpr int64_t kChunk = int64_t{1} << 16;

Sums accumulate(const float* logits, const float* labels, int64_t n) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<Sums> partial(chunks);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    Sums s{};
    const int64_t end = std::min(n, (c + 1) * kChunk);
    for (int64_t i = c * kChunk; i < end; ++i) loss_terms::add_value(s, logits[i], labels[i]);
    partial[c] = s;
  }
  Sums total{};
  for (const Sums& s : partial) total.add(s);
  return total;
}

}  // namespace

LossResult loss_forward_backward(LossKind kind, const float* logits, const float* labels, int64_t n,
                                 float* dlogits) {
  if (n <= 0) throw Error("loss " + to_string(kind) + ": empty batch (" + std::to_string(n) + " values)");
  const loss_terms::Coefficients c = loss_terms::coefficients(kind, accumulate(logits, labels, n), n);
  if (dlogits) {
    // d(loss)/d(logits): elementwise, with the batch sums fixed.
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const double p = loss_terms::sigmoid_terms(logits[i]).p;
      dlogits[i] = static_cast<float>(loss_terms::gradient(c, p, static_cast<double>(labels[i])));
    }
  }
  return {c.value, c.branch};
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
