// Centered RMSProp with TF1's slots and the staircase learning rate: a
// two-step example worked out by hand, the PyTorch golden's first step, the
// checkpoint slot names and a state round trip.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "golden.h"
#include "unetind/error.h"
#include "unetind/optimizer.h"

using namespace unetind;

namespace {

std::vector<NamedTensor> one_param(std::vector<float> values) {
  NamedTensor p{"w", Tensor({static_cast<int64_t>(values.size())})};
  p.tensor.data = std::move(values);
  return {p};
}

std::vector<Tensor> one_grad(std::vector<float> values) {
  Tensor g({static_cast<int64_t>(values.size())});
  g.data = std::move(values);
  return {g};
}

}  // namespace

TEST(LrSchedule, StaircaseDecay) {
  const LrSchedule s;  // 1e-4 * 0.8^floor(step / 500)
  EXPECT_EQ(s.at(0), 1e-4f);
  EXPECT_EQ(s.at(1), 1e-4f);
  EXPECT_EQ(s.at(499), 1e-4f);
  EXPECT_FLOAT_EQ(s.at(500), 8e-5f);
  EXPECT_EQ(s.at(999), s.at(500));
  EXPECT_FLOAT_EQ(s.at(1000), 6.4e-5f);
  EXPECT_FLOAT_EQ(s.at(2499), 4.096e-5f);
  EXPECT_FLOAT_EQ(s.at(2500), 3.2768e-5f);

  const LrSchedule other{0.5f, 0.1f, 3};
  EXPECT_FLOAT_EQ(other.at(2), 0.5f);
  EXPECT_FLOAT_EQ(other.at(3), 0.05f);
  EXPECT_FLOAT_EQ(other.at(7), 0.005f);
}

TEST(LrSchedule, BadSettingsAreErrors) {
  EXPECT_THROW((LrSchedule{1e-4f, 0.8f, 0}.at(1)), Error);
  EXPECT_THROW(LrSchedule{}.at(-1), Error);
}

// lr 0.01, rho 0.9, momentum 0.8, eps 1e-10, w = (1, -2, 0.5),
// g1 = (0.1, -0.3, 0), g2 = (0.2, 0.1, -0.4). Element 0, step 1, centered:
//   ms = 0.9 * 1 + 0.1 * 0.01 = 0.901, mg = 0.01, ms - mg^2 = 0.9009,
//   mom = 0.01 * 0.1 / sqrt(0.9009) = 0.00105357, w = 0.99894643.
// The rest was worked the same way in double.
TEST(RmsProp, CenteredTwoStepsByHand) {
  RmsProp opt(RmsPropConfig{0.9f, 0.8f, 1e-10f, true});
  auto params = one_param({1.0f, -2.0f, 0.5f});
  opt.step(params, one_grad({0.1f, -0.3f, 0.0f}), 0.01f);
  EXPECT_NEAR(params[0].tensor.data[0], 0.998946434, 2e-7);
  EXPECT_NEAR(params[0].tensor.data[1], -1.99685186, 2e-7);
  EXPECT_EQ(params[0].tensor.data[2], 0.5f);  // a zero gradient with no momentum yet moves nothing
  opt.step(params, one_grad({0.2f, 0.1f, -0.4f}), 0.01f);
  EXPECT_NEAR(params[0].tensor.data[0], 0.995886906, 2e-7);
  EXPECT_NEAR(params[0].tensor.data[1], -1.99543846, 2e-7);
  EXPECT_NEAR(params[0].tensor.data[2], 0.504405457, 2e-7);

  const std::vector<NamedTensor> state = opt.state(params);
  ASSERT_EQ(state.size(), 3u);
  EXPECT_EQ(state[0].name, "w/RMSProp");
  EXPECT_EQ(state[1].name, "w/RMSProp_1");
  EXPECT_EQ(state[2].name, "w/RMSProp_2");
  const std::vector<double> ms = {0.8149, 0.8191, 0.826}, mg = {0.029, -0.017, -0.04},
                            mom = {0.00305952788, -0.00141339744, -0.00440545734};
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_NEAR(state[0].tensor.data[i], ms[i], 1e-6) << i;
    EXPECT_NEAR(state[1].tensor.data[i], mg[i], 1e-7) << i;
    EXPECT_NEAR(state[2].tensor.data[i], mom[i], 1e-8) << i;
  }
}

TEST(RmsProp, UncenteredTwoStepsByHand) {
  RmsProp opt(RmsPropConfig{0.9f, 0.8f, 1e-10f, false});
  auto params = one_param({1.0f, -2.0f, 0.5f});
  opt.step(params, one_grad({0.1f, -0.3f, 0.0f}), 0.01f);
  EXPECT_NEAR(params[0].tensor.data[0], 0.998946493, 2e-7);
  EXPECT_NEAR(params[0].tensor.data[1], -1.99685342, 2e-7);
  opt.step(params, one_grad({0.2f, 0.1f, -0.4f}), 0.01f);
  EXPECT_NEAR(params[0].tensor.data[0], 0.995888156, 2e-7);
  EXPECT_NEAR(params[0].tensor.data[1], -1.99544107, 2e-7);
  EXPECT_NEAR(params[0].tensor.data[2], 0.504401188, 2e-7);

  const std::vector<NamedTensor> state = opt.state(params);
  ASSERT_EQ(state.size(), 2u);
  EXPECT_EQ(state[0].name, "w/RMSProp");
  EXPECT_EQ(state[1].name, "w/RMSProp_1");
  EXPECT_NEAR(state[1].tensor.data[2], -0.00440118848, 1e-8);
}

TEST(RmsProp, StateBeforeTheFirstStepIsTfsInitialSlots) {
  RmsProp opt;
  auto params = one_param({1.0f, 2.0f});
  const std::vector<NamedTensor> state = opt.state(params);
  ASSERT_EQ(state.size(), 3u);
  EXPECT_EQ(state[0].tensor.data, std::vector<float>(2, 1.0f));  // rms starts at ones
  EXPECT_EQ(state[1].tensor.data, std::vector<float>(2, 0.0f));
  EXPECT_EQ(state[2].tensor.data, std::vector<float>(2, 0.0f));
}

TEST(RmsProp, StateRoundTripContinuesBitwise) {
  auto params = one_param({0.3f, -0.7f, 1.5f, 0.0f});
  RmsProp a;
  a.step(params, one_grad({0.5f, -0.25f, 0.125f, 1.0f}), 1e-3f);
  a.step(params, one_grad({-0.1f, 0.2f, 0.3f, -0.4f}), 1e-3f);

  // The checkpoint holds the parameters and the slots side by side.
  std::vector<NamedTensor> checkpoint = params;
  for (NamedTensor& t : a.state(params)) checkpoint.push_back(t);
  RmsProp b;
  b.load_state(params, checkpoint, "ckpt.safetensors");
  auto params_b = params;
  const auto g = one_grad({0.05f, 0.05f, -0.5f, 0.25f});
  a.step(params, g, 1e-3f);
  b.step(params_b, g, 1e-3f);
  EXPECT_EQ(params[0].tensor.data, params_b[0].tensor.data);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(a.state(params)[i].tensor.data, b.state(params_b)[i].tensor.data);
}

TEST(RmsProp, LoadStateErrorsNameTheFileAndSlot) {
  auto params = one_param({1.0f, 2.0f});
  RmsProp a;
  std::vector<NamedTensor> slots = a.state(params);
  slots.erase(slots.begin() + 1);  // w/RMSProp_1
  RmsProp b;
  try {
    b.load_state(params, slots, "ckpt.safetensors");
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("ckpt.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find("w/RMSProp_1"), std::string::npos) << msg;
  }
  slots = a.state(params);
  slots[2].tensor = Tensor({3});
  try {
    b.load_state(params, slots, "ckpt.safetensors");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("w/RMSProp_2"), std::string::npos) << e.what();
  }
}

TEST(RmsProp, MismatchedGradientsAreErrors) {
  RmsProp opt;
  auto params = one_param({1.0f, 2.0f});
  EXPECT_THROW(opt.step(params, {}, 1e-3f), Error);
  EXPECT_THROW(opt.step(params, one_grad({1.0f}), 1e-3f), Error);
  EXPECT_EQ(params[0].tensor.data, (std::vector<float>{1.0f, 2.0f}));
}

// One step on the golden's adaptive_loss gradients must give its step1
// parameters, and its momentum slot the golden's update delta1 = w - step1
// (which, unlike step1, keeps small updates to full precision). For sampled
// tensors the other gradients are left at zero: the update is elementwise,
// and only sampled values are compared.
TEST(RmsProp, FirstStepMatchesPyTorchGolden) {
  const test::Golden golden;
  std::vector<NamedTensor> params = golden.parameters();
  const std::vector<NamedTensor> before = params;
  std::vector<Tensor> grads;
  for (const NamedTensor& p : params) {
    Tensor g(p.tensor.shape, 0.0f);
    const test::GoldenValues gv = golden.values("grad/adaptive_loss/" + p.name, p.name);
    for (size_t k = 0; k < gv.index.size(); ++k) g.data[gv.index[k]] = gv.value[k];
    grads.push_back(std::move(g));
  }
  RmsProp opt;  // the defaults are the recipe's: centered, rho 0.9, momentum 0.8, eps 1e-10
  opt.step(params, grads, LrSchedule{}.at(0));
  const std::vector<NamedTensor> state = opt.state(params);
  ASSERT_EQ(state.size(), 3 * params.size());

  int64_t compared = 0;
  for (size_t t = 0; t < params.size(); ++t) {
    const std::string& name = params[t].name;
    const Tensor& mom = state[3 * t + 2].tensor;
    ASSERT_EQ(state[3 * t + 2].name, name + "/RMSProp_2");
    const test::GoldenValues step1 = golden.values("step1/" + name, name);
    const test::GoldenValues delta1 = golden.values("delta1/" + name, name);
    ASSERT_EQ(step1.index, delta1.index) << name;
    for (size_t k = 0; k < step1.index.size(); ++k) {
      const int64_t i = step1.index[k];
      // Both sides round w - delta to float32 once: within an ulp or two of w.
      const float ulps = 2 * std::numeric_limits<float>::epsilon() * std::abs(before[t].tensor.data[i]);
      ASSERT_NEAR(params[t].tensor.data[i], step1.value[k], ulps + 1e-5f * std::abs(delta1.value[k]))
          << name << " at " << i;
      ASSERT_NEAR(mom.data[i], delta1.value[k], 1e-5f * std::abs(delta1.value[k]) + 1e-13f) << name << " at " << i;
      ++compared;
    }
  }
  EXPECT_GT(compared, 50000);
}
