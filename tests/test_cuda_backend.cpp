// The CUDA backend against the CPU backend on the whole model (the per-op
// sweep against the plain-loop reference is test_ops, which runs on every
// backend available_backends() lists). Skips visibly where the build has no
// CUDA or the machine has no CUDA device.
#include <gtest/gtest.h>

#include <cmath>

#include "test_util.h"
#include "unetind/backend.h"
#include "unetind/error.h"

namespace unetind {
namespace {

// The first CUDA device's name, or "" with the reason in *why.
std::string cuda_device(std::string* why) {
#ifndef UNETIND_HAVE_CUDA
  *why = "built without CUDA (UNETIND_WITH_CUDA=OFF, or CMake found no CUDA toolkit and cuDNN)";
  return "";
#else
  for (const auto& name : available_backends())
    if (name.starts_with("cuda:")) return name;
  *why = "no CUDA device";
  return "";
#endif
}

#define REQUIRE_CUDA_DEVICE(var)              \
  std::string why_skipped;                    \
  const std::string var = cuda_device(&why_skipped); \
  if (var.empty()) GTEST_SKIP() << why_skipped

struct Run {
  std::vector<float> logits, probabilities;
  std::vector<Tensor> grads;
};

Run run_model(const std::string& device, Precision precision, int batch, int height, int width) {
  const Graph graph = build_graph({});
  const Parameters params = init_parameters({}, Initializer::HeNormal, 9);
  const auto input = test::random_values(size_t(batch) * height * width, 31);
  const auto dlogits = test::random_values(input.size(), 32, -1e-3f, 1e-3f);
  auto exec = make_backend(device)->compile(graph, {batch, height, width, true, precision});
  exec->set_parameters(params.tensors);
  Run r;
  r.logits.resize(input.size());
  r.probabilities.resize(input.size());
  exec->forward(input.data(), r.probabilities.data(), true);
  exec->forward(input.data(), r.logits.data(), false);
  exec->backward(dlogits.data(), r.grads);
  return r;
}

void expect_close(const Run& got, const Run& want, double forward_tol, double grad_tol) {
  EXPECT_LE(test::max_abs_diff(got.logits, want.logits), forward_tol * test::scale_of(want.logits));
  EXPECT_LE(test::max_abs_diff(got.probabilities, want.probabilities), forward_tol);
  ASSERT_EQ(got.grads.size(), want.grads.size());
  for (size_t p = 0; p < want.grads.size(); ++p) {
    SCOPED_TRACE("gradient " + std::to_string(p));
    ASSERT_EQ(got.grads[p].shape, want.grads[p].shape);
    EXPECT_LE(test::max_abs_diff(got.grads[p].data, want.grads[p].data), grad_tol * test::scale_of(want.grads[p].data));
  }
}

TEST(CudaBackend, DeviceNamesFollowWhatWasFound) {
  std::string why;
  const std::string device = cuda_device(&why);
  if (device.empty()) {
    // "cuda" must say why it cannot be had, and nothing lists it.
    try {
      make_backend("cuda");
      ADD_FAILURE() << "make_backend(\"cuda\") succeeded without a CUDA device";
    } catch (const Error& e) {
#ifdef UNETIND_HAVE_CUDA
      EXPECT_NE(std::string(e.what()).find("no CUDA device"), std::string::npos) << e.what();
#else
      EXPECT_NE(std::string(e.what()).find("no CUDA backend"), std::string::npos) << e.what();
#endif
    }
    EXPECT_EQ(available_backends(), std::vector<std::string>{"cpu"});
  } else {
    EXPECT_EQ(make_backend("cuda")->name(), "cuda:0");
    EXPECT_EQ(make_backend(device)->name(), device);
  }
  EXPECT_THROW(make_backend("cuda:9999"), Error);
  EXPECT_THROW(make_backend("cuda:x"), Error);
  EXPECT_THROW(make_backend("cudax"), Error);
}

TEST(CudaBackend, PrecisionNamesRoundTrip) {
  for (Precision p : {Precision::F32, Precision::TF32, Precision::BF16}) EXPECT_EQ(parse_precision(to_string(p)), p);
  EXPECT_THROW(parse_precision("fp8"), Error);
}

TEST(CudaBackend, ModelMatchesCpuInFp32) {
  REQUIRE_CUDA_DEVICE(device);
  // Square and not, and a batch above one: every op, both directions.
  for (auto [batch, h, w] : std::vector<std::tuple<int, int, int>>{{2, 64, 64}, {1, 32, 80}}) {
    SCOPED_TRACE(std::to_string(batch) + "x" + std::to_string(h) + "x" + std::to_string(w));
    expect_close(run_model(device, Precision::F32, batch, h, w), run_model("cpu", Precision::F32, batch, h, w), 1e-4,
                 1e-4);
  }
}

TEST(CudaBackend, ModelMatchesCpuInTf32WithinTf32Rounding) {
  REQUIRE_CUDA_DEVICE(device);
  // TF32 keeps 10 mantissa bits: about 1e-3 relative per product.
  expect_close(run_model(device, Precision::TF32, 2, 64, 64), run_model("cpu", Precision::F32, 2, 64, 64), 2e-2, 5e-2);
}

TEST(CudaBackend, InferenceExecutorAndRepeatedCallsAgree) {
  REQUIRE_CUDA_DEVICE(device);
  const Graph graph = build_graph({});
  const Parameters params = init_parameters({}, Initializer::HeUniform, 5);
  const auto input = test::random_values(size_t(3) * 48 * 48, 7);
  auto backend = make_backend(device);
  auto infer = backend->compile(graph, {3, 48, 48, false, Precision::F32});
  auto train = backend->compile(graph, {3, 48, 48, true, Precision::F32});
  infer->set_parameters(params.tensors);
  train->set_parameters(params.tensors);
  std::vector<float> a(input.size()), b(input.size()), c(input.size());
  infer->forward(input.data(), a.data(), true);
  infer->forward(input.data(), b.data(), true);
  train->forward(input.data(), c.data(), true);
  EXPECT_EQ(test::max_abs_diff(a, b), 0.0);  // algorithms fixed at compile: same result every call
  EXPECT_LE(test::max_abs_diff(a, c), 1e-5);
  std::vector<Tensor> grads;
  EXPECT_THROW(infer->backward(a.data(), grads), Error);
}

// The training executor with its state on the GPU: the five losses, weight
// decay and the fused RMSProp update take the CPU's steps (whose arithmetic
// they share), a non-finite loss leaves the state, and the state reads back
// in the CPU's names.
TEST(CudaBackend, TrainingExecutorTakesTheCpuSteps) {
  REQUIRE_CUDA_DEVICE(device);
  const Graph graph = build_graph({});
  const Parameters params = init_parameters({}, Initializer::HeNormal, 3);
  const int batch = 2, size = 64, steps = 3;
  const auto images = test::random_values(size_t(batch) * size * size, 41);
  auto masks = test::random_values(images.size(), 42, 0.f, 1.f);
  for (LossKind loss : {LossKind::Adaptive, LossKind::CrossEntropy, LossKind::DiceSorensen, LossKind::DiceJaccard,
                        LossKind::L2}) {
    SCOPED_TRACE(to_string(loss));
    const TrainingConfig training{loss, 1e-3, {}};
    auto gpu = make_backend(device)->compile_training(graph, {batch, size, size, true, Precision::F32}, training, nullptr);
    auto cpu = make_backend("cpu")->compile_training(graph, {batch, size, size, true, Precision::F32}, training, nullptr);
    gpu->load(params.tensors, {});
    cpu->load(params.tensors, {});
    for (int s = 0; s < steps; ++s) {
      const StepResult g = gpu->step(images.data(), masks.data(), 1e-3f);
      const StepResult c = cpu->step(images.data(), masks.data(), 1e-3f);
      EXPECT_EQ(g.branch, c.branch);
      EXPECT_NEAR(g.reconstruction, c.reconstruction, 1e-5 * std::fabs(c.reconstruction) + 1e-7) << "step " << s;
      EXPECT_NEAR(g.l2, c.l2, 1e-6 * c.l2) << "step " << s;
    }
    const auto want = cpu->parameters(), got = gpu->parameters();
    ASSERT_EQ(got.size(), want.size());
    for (size_t p = 0; p < want.size(); ++p) {
      EXPECT_EQ(got[p].name, want[p].name);
      EXPECT_LE(test::max_abs_diff(got[p].tensor.data, want[p].tensor.data), 1e-4 * test::scale_of(want[p].tensor.data))
          << want[p].name;
    }
    const auto want_state = cpu->optimizer_state(), got_state = gpu->optimizer_state();
    ASSERT_EQ(got_state.size(), want_state.size());
    for (size_t i = 0; i < want_state.size(); ++i) EXPECT_EQ(got_state[i].name, want_state[i].name);
  }
  auto gpu = make_backend(device)->compile_training(graph, {batch, size, size, true, Precision::F32}, {}, nullptr);
  gpu->load(params.tensors, {});
  masks[0] = std::nanf("");
  EXPECT_THROW(gpu->step(images.data(), masks.data(), 1e-3f), Error);
  const auto after = gpu->parameters();
  for (size_t p = 0; p < after.size(); ++p) EXPECT_EQ(test::max_abs_diff(after[p].tensor.data, params.tensors[p].tensor.data), 0.0);
}

TEST(CudaBackend, RejectsWhatItDoesNotImplement) {
  REQUIRE_CUDA_DEVICE(device);
  const Graph graph = build_graph({});
  auto backend = make_backend(device);
  EXPECT_THROW(backend->compile(graph, {1, 40, 40, false, Precision::F32}), Error);  // not a multiple of 16
  EXPECT_THROW(backend->compile(graph, {1, 32, 32, false, Precision::BF16}), Error);
  auto exec = backend->compile(graph, {1, 32, 32, false, Precision::F32});
  auto params = init_parameters({}, Initializer::HeNormal, 1).tensors;
  params.pop_back();
  EXPECT_THROW(exec->set_parameters(params), Error);
}

}  // namespace
}  // namespace unetind
