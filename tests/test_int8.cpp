// INT8 inference: the quantisation plan, its closeness to fp32, calibration
// stored in and checked against the weights file, and the accuracy
// criterion of the acceptance (the demo recipe, Dice and decisions at 0.5).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <random>

#include "backend/cpu/int8.h"
#include "test_util.h"
#include "unetind/calibration.h"
#include "unetind/error.h"
#include "unetind/evaluation.h"
#include "unetind/predictor.h"
#include "unetind/synth.h"
#include "unetind/trainer.h"

namespace unetind {
namespace {

using dt = dnnl::memory::data_type;

std::vector<float> random_images(int count, int size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(size_t(count) * size * size);
  for (float& x : v) x = u(rng);
  return v;
}

// Per node, per channel: distinct ranges, so that a scale taken from the
// wrong channel or node shows.
std::vector<std::vector<float>> distinct_ranges(const Graph& g) {
  std::vector<std::vector<float>> ranges(g.nodes.size());
  for (size_t i = 0; i < ranges.size(); ++i)
    for (int c = 0; c < g.nodes[i].channels; ++c) ranges[i].push_back(1.0f + float(i) + 0.25f * float(c));
  return ranges;
}

std::vector<float> scales_over(const std::vector<float>& ranges, float levels) {
  std::vector<float> s;
  for (float r : ranges) s.push_back(levels / r);
  return s;
}

TEST(Int8Plan, TypesAndScalesFollowTheScheme) {
  const Graph g = build_graph({});
  std::vector<std::vector<float>> ranges = distinct_ranges(g);
  const auto q = cpu::plan_int8(g, ranges);
  EXPECT_EQ(q[0].type, dt::s8);
  EXPECT_EQ(q[0].scales, scales_over(ranges[0], 127.0f));
  for (size_t i = 1; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    SCOPED_TRACE("node " + std::to_string(i));
    ASSERT_EQ(q[i].scales.size(), size_t(n.channels));
    if (int(i) == g.output) {
      EXPECT_EQ(q[i].type, dt::f32);
      EXPECT_EQ(q[i].scales, std::vector<float>(n.channels, 1.0f));
    } else if (n.kind == OpKind::Conv2d) {
      EXPECT_EQ(q[i].type, dt::u8);  // ReLU
      EXPECT_EQ(q[i].scales, scales_over(ranges[i], 255.0f));
    } else if (n.kind == OpKind::Concat) {
      // Both inputs are u8: each channel keeps its input's scale.
      EXPECT_EQ(q[i].type, dt::u8);
      std::vector<float> both = q[n.inputs[0]].scales;
      both.insert(both.end(), q[n.inputs[1]].scales.begin(), q[n.inputs[1]].scales.end());
      EXPECT_EQ(q[i].scales, both);
    } else {
      EXPECT_EQ(q[i].scales, q[n.inputs[0]].scales);  // pooling and upsampling move values only
    }
  }
  // A u8 channel concatenated into s8 keeps its real range on half the levels.
  EXPECT_FLOAT_EQ(cpu::int8_rescale(dt::u8, dt::s8), 127.0f / 255.0f);
  EXPECT_EQ(cpu::int8_rescale(dt::u8, dt::u8), 1.0f);
  EXPECT_EQ(cpu::int8_rescale(dt::s8, dt::s8), 1.0f);
  // A channel missing, a node missing, a range that is not one: refused.
  ranges = distinct_ranges(g);
  ranges[3].pop_back();
  EXPECT_THROW(cpu::plan_int8(g, ranges), Error);
  ranges = distinct_ranges(g);
  ranges[5][0] = std::nanf("");
  EXPECT_THROW(cpu::plan_int8(g, ranges), Error);
  ranges = distinct_ranges(g);
  ranges.pop_back();
  EXPECT_THROW(cpu::plan_int8(g, ranges), Error);
}

// A convolution's weights fold its input's channel scales in: stored weight
// [o][i] = w x scale[o] / src_scale[i] reaches 127 in every output channel.
TEST(Int8Plan, WeightScalesFoldTheInputScalesIn) {
  Tensor hwio;
  hwio.shape = {1, 1, 2, 2};   // [in][out]: w[0][0]=1 w[0][1]=-4 w[1][0]=3 w[1][1]=2
  hwio.data = {1, -4, 3, 2};
  const std::vector<float> s = cpu::weight_scales(hwio, {1.0f, 0.5f});
  // Over input 1 (scale 0.5) the weights count double: max |w / src| is
  // max(1, 6) = 6 for output 0 and max(4, 4) = 4 for output 1.
  EXPECT_FLOAT_EQ(s[0], 127.0f / 6.0f);
  EXPECT_FLOAT_EQ(s[1], 127.0f / 4.0f);
  EXPECT_THROW(cpu::weight_scales(hwio, {1.0f}), Error);
}

// `params` calibrated on `images`, then run in fp32 and int8: bench/peers.py's
// int8 criterion (all but 0.1% of the probabilities within 0.02) and a bound
// on the worst pixel. Returns that worst difference.
double expect_int8_close_to_fp32(Parameters& params, const std::vector<float>& images, int count, int size) {
  params.int8_calibration =
      std::make_shared<const Int8Calibration>(calibrate_int8(params, images, count, size, "test images"));
  std::vector<float> fp32(images.size()), int8(images.size());
  Predictor(params, make_backend("cpu"), size, Precision::F32).run(images.data(), count, fp32.data());
  Predictor(params, make_backend("cpu"), size, Precision::INT8).run(images.data(), count, int8.data());
  size_t over = 0;
  for (size_t k = 0; k < fp32.size(); ++k) over += std::fabs(fp32[k] - int8[k]) > 0.02f;
  EXPECT_LE(double(over), 1e-3 * double(fp32.size()));
  const double worst = test::max_abs_diff(fp32, int8);
  EXPECT_LT(worst, 0.05);
  return worst;
}

TEST(Int8, ProbabilitiesCloseToFp32) {
  const int size = 64, count = 3;
  Parameters params = init_parameters({}, Initializer::HeNormal, 7);
  // Close, and not equal: it did quantise.
  EXPECT_GT(expect_int8_close_to_fp32(params, random_images(count, size, 1), count, size), 0.0);
}

// The reason for per-channel scales: one channel of the first convolution
// made 100x wider than its neighbours, and the next convolution's weights
// from it 100x smaller. The function is the same (ReLU commutes with a
// positive scale); with one scale per tensor the other 31 channels are left
// a few levels each (4235 of the 12288 probabilities were then more than
// 0.02 off), with one per channel they keep their resolution.
TEST(Int8, AChannelFarWiderThanItsNeighboursKeepsTheOthersResolution) {
  const int size = 64, count = 3;
  Parameters params = init_parameters({}, Initializer::HeNormal, 7);
  const Graph g = build_graph({});
  // Node 1 is the first convolution; only the second reads it.
  ASSERT_EQ(g.nodes[1].kind, OpKind::Conv2d);
  ASSERT_EQ(g.nodes[1].conv, 0);
  ASSERT_EQ(g.convs[0].activation, Activation::Relu);
  for (size_t i = 2; i < g.nodes.size(); ++i)
    for (int in : g.nodes[i].inputs)
      if (in == 1) {
        ASSERT_TRUE(g.nodes[i].kind == OpKind::Conv2d && g.nodes[i].conv == 1) << "node " << i;
      }
  const int wide = 5;
  Tensor& k0 = params.tensors[0].tensor;  // conv 0: HWIO kernel, then its bias
  Tensor& b0 = params.tensors[1].tensor;
  Tensor& k1 = params.tensors[2].tensor;
  const int64_t out0 = k0.shape.back(), out1 = k1.shape.back(), in1 = k1.shape[2];
  ASSERT_EQ(in1, out0);
  for (size_t k = 0; k < k0.data.size(); ++k)
    if (int64_t(k) % out0 == wide) k0.data[k] *= 100.0f;
  b0.data[wide] *= 100.0f;
  for (size_t k = 0; k < k1.data.size(); ++k)
    if ((int64_t(k) / out1) % in1 == wide) k1.data[k] /= 100.0f;

  expect_int8_close_to_fp32(params, random_images(count, size, 1), count, size);
  const std::vector<float>& r = params.int8_calibration->ranges[1];
  float others = 0;
  for (int c = 0; c < int(r.size()); ++c)
    if (c != wide) others = std::max(others, r[c]);
  EXPECT_GT(r[wide], 20.0f * others) << "the channel is not wider: the test would prove nothing";
}

TEST(Int8, CalibrationIsStoredWithTheWeightsAndChecked) {
  test::TempDir dir;
  const int size = 32;
  const Parameters params = init_parameters({}, Initializer::HeNormal, 3);
  save_parameters(dir.str("m.safetensors"), params, {{"note", "kept"}});
  // No calibration: refused, naming the file and the command that makes one.
  try {
    Predictor(load_parameters(dir.str("m.safetensors")), make_backend("cpu"), size, Precision::INT8);
    ADD_FAILURE() << "an uncalibrated model ran in int8";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir.str("m.safetensors")), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("calibrate"), std::string::npos) << e.what();
  }
  const std::vector<float> images = random_images(2, size, 2);
  write_calibrated_model(dir.str("m.safetensors"), dir.str("c.safetensors"),
                         calibrate_int8(params, images, 2, size, "two images"));
  const SafetensorsFile file = read_safetensors(dir.str("c.safetensors"));
  EXPECT_EQ(file.metadata.at("note"), "kept");
  const Parameters loaded = load_parameters(dir.str("c.safetensors"));
  ASSERT_TRUE(loaded.int8_calibration);
  EXPECT_EQ(loaded.int8_calibration->images, 2);
  const Graph g = build_graph({});
  ASSERT_EQ(loaded.int8_calibration->ranges.size(), g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i)
    EXPECT_EQ(loaded.int8_calibration->ranges[i].size(), size_t(g.nodes[i].channels)) << "node " << i;
  EXPECT_NO_THROW(Predictor(loaded, make_backend("cpu"), size, Precision::INT8));
  // Other weights under the same calibration: refused.
  Parameters changed = loaded;
  changed.tensors[0].tensor.data[0] += 0.5f;
  EXPECT_THROW(Predictor(changed, make_backend("cpu"), size, Precision::INT8), Error);
  // A calibration from before per-channel ranges (one range per node):
  // refused, naming the file and what to do.
  SafetensorsFile old = file;
  nlohmann::json j = nlohmann::json::parse(old.metadata.at("int8_calibration"));
  std::vector<float> flat;
  for (const auto& channels : j.at("ranges")) flat.push_back(channels.at(0).get<float>());
  j["ranges"] = flat;
  old.metadata["int8_calibration"] = j.dump();
  write_safetensors(dir.str("old.safetensors"), old.tensors, old.metadata);
  try {
    load_parameters(dir.str("old.safetensors"));
    ADD_FAILURE() << "a per-node calibration was read as per-channel";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir.str("old.safetensors")), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("calibrate it again"), std::string::npos) << e.what();
  }
  // Images that are not `count` of that size: an Error, not a read past them.
  EXPECT_THROW(calibrate_int8(params, std::vector<float>(10), 2, size, "too few values"), Error);
}

TEST(Int8, TrainingIsRefused) {
  auto backend = make_backend("cpu");
  ExecConfig c{1, 32, 32, true, Precision::INT8};
  EXPECT_THROW(backend->compile_training(build_graph({}), c, TrainingConfig{}, nullptr), Error);
}

// Without VNNI (here: oneDNN limited to plain AVX-512) int8 still runs, on
// oneDNN's slower kernels, and says so.
TEST(Int8, WithoutVnniRunsAndSaysSo) {
  const std::string run = "benchmark --precision int8 --batch 1 --image-size 32 --iters 1 --warmup 0";
  std::string log;
  if (!cpu::cpu_has_vnni()) {
    // This CPU is the case itself: every int8 run says so.
    ASSERT_EQ(test::run_cli(run, &log), 0) << log;
    EXPECT_NE(log.find("no VNNI"), std::string::npos) << log;
    return;
  }
  // A VNNI CPU told to stop short of it (oneDNN's ISA cap) says so; uncapped, it does not.
  ASSERT_EQ(test::run_shell("ONEDNN_MAX_CPU_ISA=AVX512_CORE " + std::string(UNETIND_CLI) + " " + run, &log), 0) << log;
  EXPECT_NE(log.find("no VNNI"), std::string::npos) << log;
  ASSERT_EQ(test::run_cli(run, &log), 0) << log;
  EXPECT_EQ(log.find("no VNNI"), std::string::npos) << log;
}

// The acceptance criterion on one class (the three are in
// docs/performance.md): the demo recipe, then fp32 against int8 calibrated on
// the Train split, on the Test split.
TEST(Int8, KeepsTheAccuracyOfATrainedClass) {
  test::TempDir dir;
  SynthConfig s;
  s.class_id = 1;
  s.size = 128;
  s.train_defective = 80;
  s.train_ok = 80;
  s.test_defective = 40;
  s.test_ok = 160;
  write_synthetic_class(dir.str("data"), s);
  std::string log;
  ASSERT_EQ(test::run_cli("train --data " + dir.str("data") + " --class 1 --steps 500 --batch 8 --image-size 128 " +
                              "--lr 3e-4 --lr-decay-factor 0.8 --lr-decay-steps 200 --display-every 100 --out " +
                              dir.str("run"),
                          &log),
            0)
      << log;
  ASSERT_EQ(test::run_cli("calibrate --model " + dir.str("run/model.safetensors") + " --data " + dir.str("data") +
                              " --class 1 --image-size 128 --out " + dir.str("int8.safetensors"),
                          &log),
            0)
      << log;
  const std::vector<Sample> test_split = open_split(dir.str("data"), 1, Split::Test);
  auto evaluate = [&](const std::string& model, Precision p) {
    Predictor predictor(load_parameters(model), make_backend("cpu"), 128, p);
    return evaluate_samples(predictor, test_split, {});
  };
  const EvalReport fp32 = evaluate(dir.str("run/model.safetensors"), Precision::F32);
  const EvalReport int8 = evaluate(dir.str("int8.safetensors"), Precision::INT8);
  const ThresholdResult& f = fp32.thresholds[kHalfThresholdIndex];
  const ThresholdResult& q = int8.thresholds[kHalfThresholdIndex];
  EXPECT_GT(*f.dice_defective, 0.5) << "the class was not learnt: the comparison would mean little";
  EXPECT_NEAR(*q.dice_all, *f.dice_all, 0.01);
  EXPECT_NEAR(*q.dice_defective, *f.dice_defective, 0.01);
  ASSERT_EQ(fp32.images.size(), int8.images.size());
  size_t same = 0;
  for (size_t i = 0; i < fp32.images.size(); ++i)
    same += (fp32.images[i].score > 0.5f) == (int8.images[i].score > 0.5f);
  EXPECT_GE(double(same), 0.99 * double(fp32.images.size()));
}

}  // namespace
}  // namespace unetind
