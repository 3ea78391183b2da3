// bf16 on the CPU backend: every op forward and backward against the
// plain-loop reference, and the whole model against its own fp32 run
// (probabilities within 0.02, gradients pointing the same way, a training
// step that lowers the loss). Skipped, visibly, on CPUs without AVX512-BF16,
// where oneDNN emulates bf16 (AVX-512) or has no kernels for it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "op_cases.h"
#include "reference_ops.h"
#include "test_util.h"
#include "unetind/backend.h"
#include "unetind/synth.h"
#include "unetind/trainer.h"

namespace unetind {
namespace {

// One compute thread: these sizes gain little from more, and under
// `ctest -j` more oversubscribe the cores, where each small primitive then
// waits out a scheduler tick at its closing barrier.
std::unique_ptr<Backend> cpu_backend() { return make_backend("cpu", 1); }

// bf16 keeps 8 significant bits: a value's last place is at most 2^-7 of it.
constexpr double kBf16Ulp = 1.0 / 128;

// Round to nearest even at bf16's 8 significant bits, as oneDNN converts.
float round_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u = (u + 0x7fff + ((u >> 16) & 1)) & 0xffff0000u;
  std::memcpy(&x, &u, 4);
  return x;
}
std::vector<float> round_bf16(std::vector<float> v) {
  for (float& x : v) x = round_bf16(x);
  return v;
}

// Every parameter's gradient by the reference, given each node's forward
// output and d(loss)/d(output). With `magnitudes`, the sums of the absolute
// values of the terms instead (|x|, |w|, |dy| throughout; ReLU masks and
// pooling's argmax still from the forward pass).
std::vector<Tensor> reference_gradients(const Graph& graph, std::vector<NamedTensor> params,
                                        const std::vector<ref::Act>& acts, std::vector<float> dy, bool magnitudes) {
  if (!magnitudes) return ref::backward_nodes(graph, params, acts, dy);
  auto abs_all = [](std::vector<float>& v) {
    for (float& x : v) x = std::fabs(x);
  };
  std::vector<ref::Act> abs_acts = acts;
  for (ref::Act& a : abs_acts) abs_all(a.v);
  for (NamedTensor& p : params) abs_all(p.tensor.data);
  abs_all(dy);
  return ref::backward_nodes(graph, params, acts, dy, &abs_acts);
}

TEST(Bf16, EveryOpMatchesReferenceForwardAndBackward) {
  SKIP_WITHOUT_BF16();
  auto backend = cpu_backend();
  for (const test::OpCase& c : test::op_cases()) {
    SCOPED_TRACE(c.name + " batch " + std::to_string(c.batch) + " " + std::to_string(c.height) + "x" +
                 std::to_string(c.width));
    // Data that bf16 holds exactly, so that what is left to compare is how
    // the ops compute, not how the inputs round.
    auto params = test::random_params(c.graph, 7);
    for (NamedTensor& p : params) p.tensor.data = round_bf16(p.tensor.data);
    const auto input = round_bf16(test::random_values(c.input_elements(), 11));

    auto exec = backend->compile(c.graph, {c.batch, c.height, c.width, true, Precision::BF16});
    exec->set_parameters(params);
    std::vector<float> got(c.output_elements());
    exec->forward(input.data(), got.data(), false);

    // The reference, storing each op's output in bf16 as the backend does;
    // a convolution that is the output keeps f32 (the model's logits).
    const std::vector<ref::Act> acts =
        ref::forward_nodes(c.graph, params, input.data(), c.batch, c.height, c.width, [&](int i, ref::Act& a) {
          if (!(c.graph.nodes[i].kind == OpKind::Conv2d && i == c.graph.output)) a.v = round_bf16(a.v);
        });
    const auto& want = acts[c.graph.output].v;
    // Summing in another order may round a stored value to the next bf16.
    const double floor = 1e-5 * test::scale_of(want);
    auto expect_forward = [&](const std::vector<float>& out, const char* executor) {
      SCOPED_TRACE(executor);
      ASSERT_EQ(out.size(), want.size());
      for (size_t j = 0; j < out.size(); ++j)
        ASSERT_LE(std::fabs(out[j] - want[j]), kBf16Ulp * std::fabs(want[j]) + floor) << "output " << j;
    };
    expect_forward(got, "training executor");
    // An inference executor may take other kernels (pooling.cpp's own).
    auto inference = backend->compile(c.graph, {c.batch, c.height, c.width, false, Precision::BF16});
    inference->set_parameters(params);
    std::vector<float> inferred(c.output_elements());
    inference->forward(input.data(), inferred.data(), false);
    expect_forward(inferred, "inference executor");

    // Backward: gradients flow in bf16, parameter gradients sum in f32.
    const auto dy = round_bf16(test::random_values(got.size(), 13));
    std::vector<Tensor> grads;
    exec->backward(dy.data(), grads);
    const auto want_grads = reference_gradients(c.graph, params, acts, dy, false);
    // Each gradient in between is rounded to bf16 (leaky ReLU's 0.2 dy, the
    // sum of a skip's two contributions, upsampling's 2x2 sums, ...): a few
    // roundings of the terms summed, so the bound scales with the sum of
    // their magnitudes. A wrong gradient is off by the order of that sum.
    const auto magnitudes = reference_gradients(c.graph, params, acts, dy, true);
    ASSERT_EQ(grads.size(), want_grads.size());
    for (size_t p = 0; p < grads.size(); ++p) {
      SCOPED_TRACE(params[p].name);
      ASSERT_EQ(grads[p].shape, want_grads[p].shape);
      for (size_t j = 0; j < grads[p].data.size(); ++j)
        ASSERT_LE(std::fabs(grads[p].data[j] - want_grads[p].data[j]),
                  4 * kBf16Ulp * magnitudes[p].data[j] + 1e-5 * test::scale_of(want_grads[p].data))
            << "element " << j;
    }
  }
}

// Two DAGM-like 512x512 images (synthetic texture, one with a defect), as
// `predict` prepares them.
std::vector<float> dagm_like_batch() {
  std::vector<float> batch;
  for (bool defective : {true, false}) {
    const SynthImage img = synthesize_image(1, kModelImageSize, defective, 3, defective ? 1 : 2);
    const std::vector<float> pixels(img.pixels.begin(), img.pixels.end());
    const auto x = prepare_input(pixels, kModelImageSize, kModelImageSize, kModelImageSize);
    batch.insert(batch.end(), x.begin(), x.end());
  }
  return batch;
}

Parameters model_params(Activation act) {
  Parameters p = init_parameters({Variant::TinyUNet, act}, Initializer::HeUniform, 21);
  for (size_t i = 1; i < p.tensors.size(); i += 2) p.tensors[i].tensor = test::random_tensor(p.tensors[i].tensor.shape, i, 0.05f);
  return p;
}

TEST(Bf16, ModelProbabilitiesWithin002OfFp32) {
  SKIP_WITHOUT_BF16();
  const auto input = dagm_like_batch();
  for (Activation act : {Activation::Relu, Activation::LeakyRelu}) {
    SCOPED_TRACE(to_string(act));
    const Parameters params = model_params(act);
    const Graph graph = build_graph(params.config);
    auto backend = cpu_backend();
    std::vector<std::vector<float>> probs;
    for (Precision precision : {Precision::F32, Precision::BF16}) {
      auto exec = backend->compile(graph, {2, kModelImageSize, kModelImageSize, false, precision});
      exec->set_parameters(params.tensors);
      probs.emplace_back(input.size());
      exec->forward(input.data(), probs.back().data(), true);
    }
    // The comparison means something only where the sigmoid is not flat.
    size_t sensitive = 0;
    for (float p : probs[0]) sensitive += p > 0.1f && p < 0.9f;
    ASSERT_GT(sensitive, probs[0].size() / 10);
    EXPECT_LE(test::max_abs_diff(probs[0], probs[1]), 0.02);
  }
}

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) ab += double(a[i]) * b[i], aa += double(a[i]) * a[i], bb += double(b[i]) * b[i];
  return ab / std::sqrt(aa * bb + 1e-300);
}

TEST(Bf16, ModelGradientsAgreeWithFp32) {
  SKIP_WITHOUT_BF16();
  const Parameters params = model_params(Activation::Relu);
  const Graph graph = build_graph(params.config);
  const int n = 2, h = 64, w = 64;
  const auto input = test::random_values(size_t(n) * h * w, 1);
  // Same-signed, as a loss gives (see the Model tests).
  const auto dlogits = test::random_values(input.size(), 2, 0.25f, 1.0f);
  auto backend = cpu_backend();
  std::vector<std::vector<Tensor>> grads(2);
  for (int p = 0; p < 2; ++p) {
    auto exec = backend->compile(graph, {n, h, w, true, p == 0 ? Precision::F32 : Precision::BF16});
    exec->set_parameters(params.tensors);
    std::vector<float> logits(input.size());
    exec->forward(input.data(), logits.data(), false);
    exec->backward(dlogits.data(), grads[p]);
  }
  for (size_t i = 0; i < grads[0].size(); ++i) {
    SCOPED_TRACE(params.tensors[i].name);
    EXPECT_GT(cosine(grads[0][i].data, grads[1][i].data), 0.99);
    EXPECT_LE(test::max_abs_diff(grads[0][i].data, grads[1][i].data), 0.1 * test::scale_of(grads[0][i].data));
  }
}

TEST(Bf16, TrainingStepsLowerTheLossAsFp32Does) {
  SKIP_WITHOUT_BF16();
  const int n = 2, size = 32, steps = 6;
  std::vector<float> images, masks;
  for (int i = 0; i < n; ++i) {
    const SynthImage img = synthesize_image(1, size, true, 5, i + 1);
    const std::vector<float> pixels(img.pixels.begin(), img.pixels.end());
    const auto x = prepare_input(pixels, size, size, size);
    images.insert(images.end(), x.begin(), x.end());
    for (uint8_t m : img.mask) masks.push_back(m / 255.0f);
  }
  auto backend = cpu_backend();
  std::vector<std::vector<double>> losses(2);
  for (int p = 0; p < 2; ++p) {
    Parameters params = init_parameters({}, Initializer::HeUniform, 8);
    TrainingStep step({}, *backend, n, size, p == 0 ? Precision::F32 : Precision::BF16, LossKind::CrossEntropy, 1e-5);
    RmsProp optimizer;
    for (int i = 0; i < steps; ++i)
      losses[p].push_back(step.run(params.tensors, optimizer, images.data(), masks.data(), 1e-3f).loss);
  }
  const double progress = losses[0].front() - losses[0].back();
  ASSERT_GT(progress, 0);
  for (int i = 0; i < steps; ++i) EXPECT_NEAR(losses[1][i], losses[0][i], 0.1 * progress) << "step " << i;
}

}  // namespace
}  // namespace unetind
