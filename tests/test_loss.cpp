// Losses and weight decay: against the PyTorch golden (scripts/make_golden.py),
// against formulas written out here, and their gradients against central
// finite differences in double.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "golden.h"
#include "unetind/error.h"
#include "unetind/loss.h"

using namespace unetind;

namespace {

const std::vector<LossKind> kAllKinds = {LossKind::Adaptive, LossKind::CrossEntropy, LossKind::DiceSorensen,
                                         LossKind::DiceJaccard, LossKind::L2};

double loss_value(LossKind kind, const std::vector<float>& logits, const std::vector<float>& labels) {
  return loss_forward_backward(kind, logits.data(), labels.data(), static_cast<int64_t>(logits.size()), nullptr)
      .value;
}

std::vector<float> gradient(LossKind kind, const std::vector<float>& logits, const std::vector<float>& labels) {
  std::vector<float> g(logits.size(), std::nanf(""));
  loss_forward_backward(kind, logits.data(), labels.data(), static_cast<int64_t>(logits.size()), g.data());
  return g;
}

// The losses in their textbook form (p = 1 / (1 + e^-x), cross-entropy from
// log p and log(1 - p)), fine for moderate logits.
double textbook_loss(LossKind kind, const std::vector<float>& logits, const std::vector<float>& labels) {
  double yp = 0, sp = 0, sy = 0, sp2 = 0, sy2 = 0, ce = 0, sq = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    const double p = 1.0 / (1.0 + std::exp(-static_cast<double>(logits[i])));
    const double y = labels[i];
    yp += y * p, sp += p, sy += y, sp2 += p * p, sy2 += y * y, sq += (p - y) * (p - y);
    ce -= y * std::log(p) + (1 - y) * std::log(1 - p);
  }
  const double sorensen = 1 - (2 * yp + 1) / (sp + sy + 1);
  const double mean_ce = ce / static_cast<double>(logits.size());
  switch (kind) {
    case LossKind::Adaptive: return sorensen < 0.3 ? sorensen : mean_ce;
    case LossKind::CrossEntropy: return mean_ce;
    case LossKind::DiceSorensen: return sorensen;
    case LossKind::DiceJaccard: return 1 - (2 * yp + 1) / (sp2 + sy2 + 1);
    case LossKind::L2: return sq / 2;
  }
  return NAN;
}

// Logits ~ N(0, scale), labels a mix of 0, 1 and soft values.
void random_case(size_t n, double scale, uint32_t seed, std::vector<float>& logits, std::vector<float>& labels) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, static_cast<float>(scale));
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  logits.resize(n);
  labels.resize(n);
  for (size_t i = 0; i < n; ++i) {
    logits[i] = normal(gen);
    const float u = unit(gen);
    labels[i] = u < 0.4f ? 0.0f : u < 0.8f ? 1.0f : unit(gen);
  }
}

// Logits that agree with binary labels, so that 1 - Dice is small.
void good_prediction_case(size_t n, uint32_t seed, std::vector<float>& logits, std::vector<float>& labels) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  logits.resize(n);
  labels.resize(n);
  for (size_t i = 0; i < n; ++i) {
    labels[i] = (i % 3 == 0) ? 1.0f : 0.0f;
    logits[i] = (labels[i] > 0 ? 4.0f : -4.0f) + noise(gen);
  }
}

// d(loss)/d(logit i) by central differences, the loss evaluated in double.
void expect_matches_finite_differences(LossKind kind, std::vector<float> logits, const std::vector<float>& labels,
                                       const std::vector<size_t>& indices) {
  const std::vector<float> g = gradient(kind, logits, labels);
  double g_max = 0;
  for (float v : g) g_max = std::max(g_max, std::abs(static_cast<double>(v)));
  ASSERT_GT(g_max, 0.0);
  for (size_t i : indices) {
    const float x = logits[i];
    const float xp = x + 1e-3f, xm = x - 1e-3f;
    logits[i] = xp;
    const double lp = loss_value(kind, logits, labels);
    logits[i] = xm;
    const double lm = loss_value(kind, logits, labels);
    logits[i] = x;
    const double fd = (lp - lm) / (static_cast<double>(xp) - static_cast<double>(xm));
    EXPECT_NEAR(g[i], fd, 1e-5 * g_max + 1e-4 * std::abs(fd)) << to_string(kind) << " at " << i;
  }
}

std::vector<size_t> all_indices(size_t n) {
  std::vector<size_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = i;
  return v;
}

}  // namespace

TEST(LossKind, NamesRoundTripAndUnknownListsChoices) {
  const std::vector<std::string> names = {"adaptive_loss", "x-entropy", "dice_sorensen", "dice_jaccard", "l2_loss"};
  for (size_t i = 0; i < kAllKinds.size(); ++i) {
    EXPECT_EQ(to_string(kAllKinds[i]), names[i]);
    EXPECT_EQ(parse_loss_kind(names[i]), kAllKinds[i]);
  }
  try {
    parse_loss_kind("dice");
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'dice'"), std::string::npos) << msg;
    for (const std::string& n : names) EXPECT_NE(msg.find(n), std::string::npos) << msg;
  }
}

TEST(Loss, ValuesMatchTheTextbookFormulas) {
  std::vector<float> logits, labels;
  random_case(1000, 2.0, 1, logits, labels);
  for (LossKind kind : kAllKinds)
    EXPECT_NEAR(loss_value(kind, logits, labels), textbook_loss(kind, logits, labels),
                1e-12 * std::max(1.0, std::abs(textbook_loss(kind, logits, labels))))
        << to_string(kind);
}

TEST(Loss, ManyChunksSumLikeOnePass) {
  // More than a few of the fixed reduction chunks, with a ragged last one.
  std::vector<float> logits, labels;
  random_case(3 * 65536 + 123, 3.0, 2, logits, labels);
  for (LossKind kind : kAllKinds) {
    const double expected = textbook_loss(kind, logits, labels);
    EXPECT_NEAR(loss_value(kind, logits, labels), expected, 1e-10 * std::max(1.0, std::abs(expected)))
        << to_string(kind);
  }
}

TEST(Loss, GradientsMatchFiniteDifferences) {
  std::vector<float> logits, labels;
  random_case(257, 2.0, 3, logits, labels);
  for (LossKind kind : kAllKinds) expect_matches_finite_differences(kind, logits, labels, all_indices(257));
}

TEST(Loss, AdaptiveSwitchesToDiceWhenDiceLossIsBelowThreshold) {
  std::vector<float> logits, labels;
  good_prediction_case(300, 4, logits, labels);
  const double dice_loss = loss_value(LossKind::DiceSorensen, logits, labels);
  ASSERT_LT(dice_loss, 0.2);  // far enough from 0.3 for the finite differences

  std::vector<float> g_adaptive(300), g_dice(300);
  const LossResult adaptive =
      loss_forward_backward(LossKind::Adaptive, logits.data(), labels.data(), 300, g_adaptive.data());
  const LossResult dice =
      loss_forward_backward(LossKind::DiceSorensen, logits.data(), labels.data(), 300, g_dice.data());
  EXPECT_EQ(adaptive.branch, LossKind::DiceSorensen);
  EXPECT_EQ(dice.branch, LossKind::DiceSorensen);
  EXPECT_EQ(adaptive.value, dice.value);
  EXPECT_EQ(g_adaptive, g_dice);
  expect_matches_finite_differences(LossKind::Adaptive, logits, labels, all_indices(300));

  // The same logits against the opposite labels: 1 - Dice is large.
  for (float& y : labels) y = 1.0f - y;
  std::vector<float> g_ce(300);
  const LossResult flipped =
      loss_forward_backward(LossKind::Adaptive, logits.data(), labels.data(), 300, g_adaptive.data());
  const LossResult ce = loss_forward_backward(LossKind::CrossEntropy, logits.data(), labels.data(), 300, g_ce.data());
  EXPECT_EQ(flipped.branch, LossKind::CrossEntropy);
  EXPECT_EQ(flipped.value, ce.value);
  EXPECT_EQ(g_adaptive, g_ce);
}

TEST(Loss, CrossEntropyIsFiniteForSaturatedLogits) {
  const std::vector<float> logits = {100.0f, -100.0f, 100.0f, -100.0f};
  const std::vector<float> labels = {0.0f, 1.0f, 1.0f, 0.0f};
  std::vector<float> g(4);
  const LossResult r = loss_forward_backward(LossKind::CrossEntropy, logits.data(), labels.data(), 4, g.data());
  // Two wrong answers cost |x| each, two right ones log(1 + e^-100).
  EXPECT_NEAR(r.value, (100.0 + 100.0 + 2 * std::log1p(std::exp(-100.0))) / 4, 1e-12);
  EXPECT_FLOAT_EQ(g[0], 0.25f);
  EXPECT_FLOAT_EQ(g[1], -0.25f);
  EXPECT_NEAR(g[2], 0.0f, 1e-30);
  EXPECT_NEAR(g[3], 0.0f, 1e-30);
}

TEST(Loss, EmptyBatchIsAnError) {
  const float x = 0;
  EXPECT_THROW(loss_forward_backward(LossKind::L2, &x, &x, 0, nullptr), Error);
}

class GoldenLoss : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { golden_ = new test::Golden(); }
  static void TearDownTestSuite() {
    delete golden_;
    golden_ = nullptr;
  }
  static test::Golden* golden_;
};
test::Golden* GoldenLoss::golden_ = nullptr;

TEST_F(GoldenLoss, ValuesAndGradientsMatchPyTorch) {
  const Tensor& logits = golden_->get("logits");
  const Tensor& mask = golden_->get("mask");
  ASSERT_EQ(logits.shape, (Shape{2, 32, 32, 1}));
  ASSERT_EQ(mask.shape, logits.shape);
  for (LossKind kind : kAllKinds) {
    const std::string name = to_string(kind);
    std::vector<float> g(logits.numel());
    const LossResult r = loss_forward_backward(kind, logits.data.data(), mask.data.data(), logits.numel(), g.data());
    const double expected = golden_->scalar("loss_recon/" + name);
    EXPECT_NEAR(r.value, expected, 2e-7 * std::abs(expected)) << name;

    const Tensor& dlogits = golden_->get("dlogits/" + name);
    ASSERT_EQ(dlogits.shape, logits.shape) << name;
    float g_max = 0;
    for (float v : dlogits.data) g_max = std::max(g_max, std::abs(v));
    ASSERT_GT(g_max, 0.0f) << name;
    for (int64_t i = 0; i < logits.numel(); ++i)
      ASSERT_NEAR(g[i], dlogits.data[i], 1e-6f * g_max + 1e-5f * std::abs(dlogits.data[i])) << name << " at " << i;
  }
  // The golden batch is a poor prediction: adaptive_loss is cross-entropy there.
  EXPECT_EQ(loss_forward_backward(LossKind::Adaptive, logits.data.data(), mask.data.data(), logits.numel(), nullptr)
                .branch,
            LossKind::CrossEntropy);
}

TEST_F(GoldenLoss, GradientsMatchFiniteDifferencesOnTheGoldenBatch) {
  const Tensor& logits = golden_->get("logits");
  const Tensor& mask = golden_->get("mask");
  std::vector<size_t> some;
  for (size_t i = 0; i < static_cast<size_t>(logits.numel()); i += 37) some.push_back(i);
  for (LossKind kind : kAllKinds) expect_matches_finite_differences(kind, logits.data, mask.data, some);
}

TEST_F(GoldenLoss, WeightDecayMatchesPyTorch) {
  const std::vector<NamedTensor>& params = golden_->parameters();
  ASSERT_EQ(params.size(), 46u);
  const double expected = golden_->scalar("loss_l2");
  EXPECT_NEAR(weight_decay(params, 1e-5, nullptr), expected, 2e-7 * expected);
}

TEST(WeightDecay, ValueAndGradient) {
  std::vector<NamedTensor> params = {{"a/kernel", Tensor({2, 2})}, {"a/bias", Tensor({3})}};
  params[0].tensor.data = {1.0f, -2.0f, 0.5f, 3.0f};
  params[1].tensor.data = {-1.0f, 0.25f, 0.0f};
  // sum(v^2) = 1 + 4 + 0.25 + 9 + 1 + 0.0625 = 15.3125
  EXPECT_DOUBLE_EQ(weight_decay(params, 0.01, nullptr), 0.01 * 15.3125 / 2);

  std::vector<Tensor> grads = {Tensor({2, 2}, 1.0f), Tensor({3}, -1.0f)};
  EXPECT_DOUBLE_EQ(weight_decay(params, 0.01, &grads), 0.01 * 15.3125 / 2);
  const std::vector<float> expected0 = {1.01f, 0.98f, 1.005f, 1.03f}, expected1 = {-1.01f, -0.9975f, -1.0f};
  for (size_t i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(grads[0].data[i], expected0[i]) << i;
  for (size_t i = 0; i < 3; ++i) EXPECT_FLOAT_EQ(grads[1].data[i], expected1[i]) << i;

  // A wrong shape is caught before any gradient is touched.
  std::vector<Tensor> wrong = {Tensor({2, 2}), Tensor({4})};
  try {
    weight_decay(params, 0.01, &wrong);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a/bias"), std::string::npos) << e.what();
  }
  EXPECT_EQ(wrong[0].data, std::vector<float>(4, 0.0f));
  std::vector<Tensor> too_few = {Tensor({2, 2})};
  EXPECT_THROW(weight_decay(params, 0.01, &too_few), Error);
}
