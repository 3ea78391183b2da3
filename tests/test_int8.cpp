// INT8 inference: the quantisation plan, its closeness to fp32, calibration
// stored in and checked against the weights file, and the accuracy
// criterion of the acceptance (the demo recipe, Dice and decisions at 0.5).
#include <gtest/gtest.h>

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

TEST(Int8Plan, TypesAndScalesFollowTheScheme) {
  const Graph g = build_graph({});
  std::vector<float> ranges(g.nodes.size());
  for (size_t i = 0; i < ranges.size(); ++i) ranges[i] = 1.0f + float(i);
  const auto q = cpu::plan_int8(g, ranges);
  EXPECT_EQ(q[0].type, dt::s8);
  EXPECT_FLOAT_EQ(q[0].scale, 127.0f / ranges[0]);
  for (size_t i = 1; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    SCOPED_TRACE("node " + std::to_string(i));
    if (int(i) == g.output) {
      EXPECT_EQ(q[i].type, dt::f32);
    } else if (n.kind == OpKind::Conv2d) {
      EXPECT_EQ(q[i].type, dt::u8);  // ReLU
      EXPECT_FLOAT_EQ(q[i].scale, 255.0f / ranges[i]);
    } else if (n.kind == OpKind::Concat) {
      const float wa = 255.0f / q[n.inputs[0]].scale, wb = 255.0f / q[n.inputs[1]].scale;
      EXPECT_FLOAT_EQ(q[i].scale, 255.0f / std::max(wa, wb));
    } else {
      EXPECT_EQ(q[i].scale, q[n.inputs[0]].scale);  // pooling and upsampling move values only
    }
  }
  ranges.pop_back();
  EXPECT_THROW(cpu::plan_int8(g, ranges), Error);
}

TEST(Int8, ProbabilitiesCloseToFp32) {
  const int size = 64, count = 3;
  Parameters params = init_parameters({}, Initializer::HeNormal, 7);
  const std::vector<float> images = random_images(count, size, 1);
  params.int8_calibration =
      std::make_shared<const Int8Calibration>(calibrate_int8(params, images, count, size, "test images"));
  std::vector<float> fp32(images.size()), int8(images.size());
  Predictor(params, make_backend("cpu"), size, Precision::F32).run(images.data(), count, fp32.data());
  Predictor(params, make_backend("cpu"), size, Precision::INT8).run(images.data(), count, int8.data());
  // bench/peers.py's int8 criterion (all but 0.1% within 0.02), a bound on
  // the worst pixel, and not equal: it did quantise.
  size_t over = 0;
  for (size_t k = 0; k < fp32.size(); ++k) over += std::fabs(fp32[k] - int8[k]) > 0.02f;
  EXPECT_LE(double(over), 1e-3 * double(fp32.size()));
  EXPECT_LT(test::max_abs_diff(fp32, int8), 0.05);
  EXPECT_GT(test::max_abs_diff(fp32, int8), 0.0);
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
  EXPECT_EQ(loaded.int8_calibration->ranges.size(), build_graph({}).nodes.size());
  EXPECT_NO_THROW(Predictor(loaded, make_backend("cpu"), size, Precision::INT8));
  // Other weights under the same calibration: refused.
  Parameters changed = loaded;
  changed.tensors[0].tensor.data[0] += 0.5f;
  EXPECT_THROW(Predictor(changed, make_backend("cpu"), size, Precision::INT8), Error);
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
  if (!cpu::cpu_has_vnni()) GTEST_SKIP() << "this CPU has no VNNI: the note is what every int8 run prints here";
  std::string log;
  ASSERT_EQ(test::run_shell("ONEDNN_MAX_CPU_ISA=AVX512_CORE " + std::string(UNETIND_CLI) +
                                " benchmark --precision int8 --batch 1 --image-size 32 --iters 1 --warmup 0",
                            &log),
            0)
      << log;
  EXPECT_NE(log.find("no VNNI"), std::string::npos) << log;
  ASSERT_EQ(test::run_cli("benchmark --precision int8 --batch 1 --image-size 32 --iters 1 --warmup 0", &log), 0) << log;
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
