// One full training step (loss, gradients, weight decay, RMSProp update)
// against the independent PyTorch golden (scripts/make_golden.py), llm.c
// style: every tensor compared by name.
#include <gtest/gtest.h>

#include <cmath>

#include "golden.h"
#include "test_util.h"
#include "unetind/backend.h"
#include "unetind/trainer.h"

namespace unetind {
namespace {

double max_abs(const std::vector<float>& v) {
  double m = 1e-12;
  for (float x : v) m = std::max(m, double(std::fabs(x)));
  return m;
}

TEST(TrainStep, GradientsMatchTheGolden) {
  test::Golden golden;
  const ModelConfig config{};
  const auto& params = golden.parameters();
  const Tensor& input = golden.get("input");
  const Tensor& mask = golden.get("mask");
  const int n = 2, h = 32, w = 32;

  auto exec = make_backend("cpu")->compile(build_graph(config), {n, h, w, true, Precision::F32});
  exec->set_parameters(params);
  std::vector<float> logits(n * h * w), dlogits(n * h * w);
  exec->forward(input.data.data(), logits.data(), false);
  EXPECT_LE(test::max_abs_diff(logits, golden.get("logits").data), 1e-4);

  for (LossKind kind : {LossKind::Adaptive, LossKind::DiceSorensen}) {
    SCOPED_TRACE(to_string(kind));
    const LossResult loss = loss_forward_backward(kind, logits.data(), mask.data.data(), n * h * w, dlogits.data());
    std::vector<Tensor> grads;
    exec->backward(dlogits.data(), grads);
    const double l2 = weight_decay(params, 1e-5, &grads);
    EXPECT_NEAR(loss.value + l2, golden.scalar("loss/" + to_string(kind)), 1e-5);
    for (size_t i = 0; i < params.size(); ++i) {
      SCOPED_TRACE(params[i].name);
      const test::GoldenValues want = golden.values("grad/" + to_string(kind) + "/" + params[i].name, params[i].name);
      std::vector<float> got;
      for (int64_t idx : want.index) got.push_back(grads[i].data[idx]);
      // 1e-3 of the largest value: see Model tests (ReLU kinks in float).
      EXPECT_LE(test::max_abs_diff(got, want.value), 1e-3 * max_abs(want.value));
    }
  }
}

TEST(TrainStep, OneRmsPropStepMatchesTheGolden) {
  test::Golden golden;
  std::vector<NamedTensor> params = golden.parameters();
  const std::vector<NamedTensor> before = params;
  auto backend = make_backend("cpu");
  TrainingStep step({}, *backend, 2, 32, Precision::F32, LossKind::Adaptive, 1e-5);
  RmsProp optimizer;
  const StepResult r =
      step.run(params, optimizer, golden.get("input").data.data(), golden.get("mask").data.data(), 1e-4f);
  EXPECT_NEAR(r.loss, golden.scalar("loss/adaptive_loss"), 1e-5);
  EXPECT_EQ(r.branch, LossKind::CrossEntropy);  // 1 - Dice is far above 0.3 at the start

  for (size_t i = 0; i < params.size(); ++i) {
    SCOPED_TRACE(params[i].name);
    // delta1 = p - step1, kept in float64 by the golden: the update itself.
    const test::GoldenValues want = golden.values("delta1/" + params[i].name, params[i].name);
    std::vector<float> got;
    for (int64_t idx : want.index) got.push_back(before[i].tensor.data[idx] - params[i].tensor.data[idx]);
    // Float32 weights hold the update to about 1e-7 of the weight's size.
    EXPECT_LE(test::max_abs_diff(got, want.value), 2e-3 * max_abs(want.value) + 1e-7 * max_abs(before[i].tensor.data));
  }
  const StepResult r2 =
      step.run(params, optimizer, golden.get("input").data.data(), golden.get("mask").data.data(), 1e-4f);
  EXPECT_NEAR(r2.loss, golden.scalar("loss_step2"), 1e-5);
  EXPECT_LT(r2.loss, r.loss);
}

}  // namespace
}  // namespace unetind
