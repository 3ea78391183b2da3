// Checked against TensorFlow itself: the fixtures of tests/data/tf/ were made
// by TensorFlow (scripts/tf_reference.py, README there): its TF1 Saver
// checkpoint with RMSProp slots, a SavedModel, a TF2 object-based checkpoint,
// its probabilities on three inputs, and NVIDIA's recipe run for five steps
// and resumed for two. Our import, forward pass and training must reproduce
// them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "unetind/backend.h"
#include "unetind/error.h"
#include "unetind/npy.h"
#include "unetind/predictor.h"
#include "unetind/safetensors.h"
#include "unetind/tf_checkpoint.h"

namespace unetind {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

std::string tf_data(const std::string& rel) { return std::string(UNETIND_TEST_DATA_DIR) + "/tf/" + rel; }

// The TF tolerance of the issue: probabilities to 1e-5, losses to 1e-5
// relative, weights to 1e-5 of the tensor's largest value.
constexpr double kTolerance = 1e-5;

struct ForwardInput {
  std::string image;  // PNG
  std::string probs;  // TF's probabilities, [512, 512] .npy
};

// The committed inputs (odd size: cropped and padded, odd differences; small: padded).
std::vector<ForwardInput> committed_inputs() {
  return {{tf_data("inputs/odd_601x421.png"), tf_data("probs/odd_601x421.npy")},
          {tf_data("inputs/small_96x64.png"), tf_data("probs/small_96x64.npy")}};
}

// The real DAGM image TF saw, from ../shared (never copied into the project).
std::string dagm_image() {
  const std::string shared = test::shared_dir();
  const std::string path = shared + "/fixtures/dagm2007/Class1/Test/0002.PNG";
  std::error_code ec;
  return !shared.empty() && fs::exists(path, ec) ? path : "";
}
const std::string kDagmProbs = "probs/dagm_class1_test_0002.npy";

#define REQUIRE_DAGM_IMAGE()                  \
  const std::string dagm = dagm_image();      \
  if (dagm.empty()) GTEST_SKIP() << "no ../shared/fixtures/dagm2007 (a user's clone): the real-image case is skipped"

const ModelConfig kModel{};

void expect_bit_identical(const Parameters& a, const Parameters& b) {
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    SCOPED_TRACE(a.tensors[i].name);
    EXPECT_EQ(a.tensors[i].name, b.tensors[i].name);
    EXPECT_EQ(a.tensors[i].tensor.shape, b.tensors[i].tensor.shape);
    ASSERT_EQ(a.tensors[i].tensor.data.size(), b.tensors[i].tensor.data.size());
    EXPECT_EQ(0, std::memcmp(a.tensors[i].tensor.data.data(), b.tensors[i].tensor.data.data(),
                             a.tensors[i].tensor.data.size() * sizeof(float)));
  }
}

// ---------------------------------------------------------------- the three formats

TEST(TfFormats, Tf1SavedModelAndTf2WeightsAreBitIdentical) {
  const Parameters tf1 = import_tf_checkpoint(tf_data("tf1/model.ckpt-3"), kModel).parameters;
  ASSERT_EQ(tf1.tensors.size(), 46u);
  // Every path form of each format.
  for (const std::string& path : {tf_data("tf1"), tf_data("tf1/checkpoint"), tf_data("tf1/model.ckpt-3.index"),
                                  tf_data("saved_model"), tf_data("saved_model/variables/variables"),
                                  tf_data("tf2"), tf_data("tf2/checkpoint"), tf_data("tf2/ckpt-1")}) {
    SCOPED_TRACE(path);
    const TfImport imported = import_tf_checkpoint(path, kModel);
    EXPECT_EQ(imported.name_prefix, "");
    expect_bit_identical(imported.parameters, tf1);
  }
}

TEST(TfFormats, Tf2KeysAreMappedThroughTheObjectGraph) {
  const TfCheckpoint ckpt(tf_data("tf2"));
  const std::map<std::string, std::string> names = tf2_variable_names(ckpt);
  ASSERT_EQ(names.size(), 47u);  // 46 model variables and save_counter
  EXPECT_EQ(names.at("model/convs/0/kernel/.ATTRIBUTES/VARIABLE_VALUE"), "UNet_v1/input_block/conv2d/kernel");
  EXPECT_EQ(names.at("model/convs/22/bias/.ATTRIBUTES/VARIABLE_VALUE"), "UNet_v1/ouputs_block/conv2d_2/bias");
  EXPECT_EQ(names.at("save_counter/.ATTRIBUTES/VARIABLE_VALUE"), "save_counter");
  EXPECT_EQ(ckpt.find("UNet_v1/input_block/conv2d/kernel"), nullptr);  // the keys really differ
  // A TF1 checkpoint keys by name and has no object graph.
  EXPECT_TRUE(tf2_variable_names(TfCheckpoint(tf_data("tf1"))).empty());
}

TEST(TfFormats, Tf1CheckpointAsTheSaverWritesIt) {
  const TfCheckpoint ckpt(tf_data("tf1"));
  // 46 variables, 3 slots each under the optimiser's scope, the step.
  ASSERT_EQ(ckpt.tensors().size(), 46u * 4 + 1);
  EXPECT_EQ(ckpt.tensors().front().name, "UNet_v1/bottleneck_block/conv2d/bias");  // byte order: 'U' < 'o'
  EXPECT_EQ(ckpt.tensors().back().name, "optimizers/global_step");
  EXPECT_EQ(ckpt.read_int64("optimizers/global_step"), std::vector<int64_t>{3});
  ASSERT_NE(ckpt.find("optimizers/UNet_v1/input_block/conv2d/kernel/RMSProp_2"), nullptr);

  const TfImport imported = import_tf_checkpoint(tf_data("tf1"), kModel, /*with_optimizer_state=*/true);
  EXPECT_EQ(imported.global_step, 3);
  EXPECT_EQ(imported.skipped.size(), 46u * 3 + 1);
  ASSERT_EQ(imported.optimizer_slots.size(), 46u * 3);
  // Renamed to <parameter>/RMSProp[_N], TF's values untouched.
  for (const NamedTensor& slot : imported.optimizer_slots) {
    SCOPED_TRACE(slot.name);
    ASSERT_TRUE(slot.name.starts_with("UNet_v1/"));
    EXPECT_EQ(slot.tensor.data, ckpt.read_float("optimizers/" + slot.name).data);
  }
  // Without being asked for, the state is not read.
  EXPECT_TRUE(import_tf_checkpoint(tf_data("tf1"), kModel).optimizer_slots.empty());
}

TEST(TfFormats, IndexOfSeveralBlocksAsTensorFlowWritesIt) {
  const TfCheckpoint ckpt(tf_data("tf1_many"));
  ASSERT_EQ(ckpt.tensors().size(), 9000u);
  std::vector<std::string> names;
  for (int i = 0; i < 9000; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "block_%d/layer_%04d/kernel", i % 7, i);
    ASSERT_EQ(ckpt.read_float(name).data, (std::vector<float>{float(i), -float(i)})) << name;
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  for (size_t i = 0; i < names.size(); ++i) ASSERT_EQ(ckpt.tensors()[i].name, names[i]);
}

// ---------------------------------------------------------------- forward

std::vector<float> predict_one(Predictor& predictor, const std::string& image) {
  const PreparedImage prepared = load_prepared_image(image, kModelImageSize);
  std::vector<float> probs(prepared.input.size());
  predictor.run(prepared.input.data(), 1, probs.data());
  return probs;
}

void expect_tf_probabilities(const std::vector<float>& ours, const std::string& tf_probs) {
  const Tensor want = read_npy(tf_probs);
  ASSERT_EQ(want.shape, (Shape{kModelImageSize, kModelImageSize}));
  EXPECT_LE(test::max_abs_diff(ours, want.data), kTolerance) << tf_probs;
}

class TfForward : public ::testing::TestWithParam<ConvAlgorithm> {
 protected:
  Predictor predictor() const {
    return Predictor(import_tf_checkpoint(tf_data("tf1"), kModel).parameters, make_backend("cpu"), kModelImageSize,
                     Precision::F32, GetParam());
  }
};

TEST_P(TfForward, CommittedInputsGiveTensorFlowsProbabilities) {
  Predictor p = predictor();
  for (const ForwardInput& in : committed_inputs()) expect_tf_probabilities(predict_one(p, in.image), in.probs);
}

TEST_P(TfForward, RealDagmImageGivesTensorFlowsProbabilities) {
  REQUIRE_DAGM_IMAGE();
  Predictor p = predictor();
  expect_tf_probabilities(predict_one(p, dagm), tf_data(kDagmProbs));
}

INSTANTIATE_TEST_SUITE_P(Conv, TfForward, ::testing::Values(ConvAlgorithm::Direct, ConvAlgorithm::Auto),
                         [](const auto& info) { return to_string(info.param); });

// `import` on each format, then `predict`.
void import_and_predict(const std::vector<ForwardInput>& inputs) {
  for (const char* format : {"tf1", "saved_model", "tf2"}) {
    SCOPED_TRACE(format);
    TempDir tmp;
    std::string out;
    ASSERT_EQ(test::run_cli("import --tf-checkpoint " + tf_data(format) + " --out " + tmp.str("w.safetensors"), &out),
              0)
        << out;
    std::string images;
    for (const ForwardInput& in : inputs) images += " " + in.image;
    ASSERT_EQ(test::run_cli("predict --model " + tmp.str("w.safetensors") + " --out " + tmp.str("pred") + images, &out),
              0)
        << out;
    for (const ForwardInput& in : inputs) {
      const std::string stem = fs::path(in.image).stem().string();
      const Tensor ours = read_npy(tmp.str("pred/" + stem + "_prob.npy"));
      expect_tf_probabilities(ours.data, in.probs);
    }
  }
}

TEST(TfCli, ImportEachFormatThenPredictGivesTensorFlowsProbabilities) { import_and_predict(committed_inputs()); }

TEST(TfCli, ImportEachFormatThenPredictTheRealDagmImage) {
  REQUIRE_DAGM_IMAGE();
  import_and_predict({{dagm, tf_data(kDagmProbs)}});
}

TEST(TfCli, InspectListsEachFormat) {
  std::string out;
  ASSERT_EQ(test::run_cli("inspect " + tf_data("tf2"), &out), 0) << out;
  EXPECT_NE(out.find("model/convs/0/kernel/.ATTRIBUTES/VARIABLE_VALUE\tUNet_v1/input_block/conv2d/kernel\tDT_FLOAT\t"
                     "[3, 3, 1, 32]\n"),
            std::string::npos)
      << out;
  ASSERT_EQ(test::run_cli("inspect " + tf_data("tf1/checkpoint"), &out), 0) << out;
  EXPECT_NE(out.find("optimizers/UNet_v1/ouputs_block/conv2d_2/kernel/RMSProp_1\tDT_FLOAT\t[1, 1, 32, 1]\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("optimizers/global_step\tDT_INT64\t[]\n"), std::string::npos) << out;
  EXPECT_NE(out.find("185 tensors"), std::string::npos) << out;
  ASSERT_EQ(test::run_cli("inspect " + tf_data("saved_model"), &out), 0) << out;
  EXPECT_NE(out.find("46 tensors"), std::string::npos) << out;
}

// ---------------------------------------------------------------- training

// TF's expectations (expected.safetensors): per-step logs and the weights
// after the run, large tensors at the sampled flat indices idx/<name>.
class Expected {
 public:
  Expected() : file_(read_safetensors(tf_data("expected.safetensors"))) {}
  const std::vector<float>& get(const std::string& name) const {
    const Tensor* t = file_.find(name);
    if (!t) throw Error(tf_data("expected.safetensors") + ": no tensor " + name);
    return t->data;
  }
  int metadata_int(const std::string& key) const { return std::stoi(file_.metadata.at(key)); }

  // Our final weights of `run` against TF's, each tensor to 1e-5 of its largest value.
  void expect_weights(const std::string& run, const Parameters& ours) const {
    for (const NamedTensor& p : ours.tensors) {
      SCOPED_TRACE(p.name);
      const std::vector<float>& want = get(run + "/" + p.name);
      std::vector<float> got = p.tensor.data;
      if (const Tensor* idx = file_.find("idx/" + p.name)) {
        got.clear();
        for (float i : idx->data) got.push_back(p.tensor.data.at(static_cast<size_t>(i)));
      }
      ASSERT_EQ(got.size(), want.size());
      EXPECT_LE(test::max_abs_diff(got, want), kTolerance * test::scale_of(want));
    }
  }

 private:
  SafetensorsFile file_;
};

std::vector<nlohmann::json> metrics_of(const std::string& run_dir) {
  std::ifstream in(run_dir + "/metrics.jsonl");
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

// The recipe of expected.safetensors, on its two images, every step logged.
std::string train_args(const Expected& e, const std::string& run_dir, int steps) {
  return "train --data " + tf_data("train") + " --out " + run_dir + " --steps " + std::to_string(steps) + " --batch " +
         std::to_string(e.metadata_int("batch")) + " --lr-decay-steps " + std::to_string(e.metadata_int("lr_decay_steps")) +
         " --no-augment --display-every 1";
}

void expect_logs(const Expected& e, const std::string& run, const std::vector<nlohmann::json>& metrics,
                 int64_t first_step) {
  const std::vector<float>& loss = e.get(run + "/loss");
  ASSERT_EQ(metrics.size(), loss.size());
  for (size_t i = 0; i < loss.size(); ++i) {
    SCOPED_TRACE("step " + std::to_string(first_step + i));
    EXPECT_EQ(metrics[i]["step"].get<int64_t>(), first_step + static_cast<int64_t>(i));
    EXPECT_NEAR(metrics[i]["loss"].get<double>(), loss[i], kTolerance * std::fabs(loss[i]));
    EXPECT_NEAR(metrics[i]["reconstruction"].get<double>(), e.get(run + "/reconstruction")[i],
                kTolerance * std::fabs(loss[i]));
    EXPECT_NEAR(metrics[i]["l2"].get<double>(), e.get(run + "/l2")[i], kTolerance * e.get(run + "/l2")[i]);
    EXPECT_FLOAT_EQ(metrics[i]["lr"].get<float>(), e.get(run + "/lr")[i]);
    EXPECT_EQ(metrics[i]["loss_branch"], e.get(run + "/dice_branch")[i] ? "dice_sorensen" : "x-entropy");
  }
}

TEST(TfTraining, FiveStepsFromTensorFlowsWeightsViaInitFrom) {
  const Expected e;
  const int steps = e.metadata_int("fresh_steps");
  TempDir tmp;
  std::string out;
  ASSERT_EQ(test::run_cli(train_args(e, tmp.str("run"), steps) + " --init-from " + tf_data("tf1"), &out), 0) << out;
  EXPECT_NE(out.find("starting from the weights in " + tf_data("tf1")), std::string::npos) << out;
  expect_logs(e, "fresh", metrics_of(tmp.str("run")), 1);
  e.expect_weights("fresh", load_parameters(tmp.str("run/model.safetensors")));
}

TEST(TfTraining, ResumeFromTheImportedTf1CheckpointContinuesAsTensorFlow) {
  const Expected e;
  const int resume_at = e.metadata_int("resume_at");
  const int steps = resume_at + e.metadata_int("resumed_steps");
  TempDir tmp;
  std::string out;
  ASSERT_EQ(test::run_cli("import --tf-checkpoint " + tf_data("tf1") + " --out " + tmp.str("w.safetensors") +
                              " --run-dir " + tmp.str("run"),
                          &out),
            0)
      << out;
  EXPECT_NE(out.find("step " + std::to_string(resume_at) + ", 138 optimiser slots"), std::string::npos) << out;
  ASSERT_EQ(test::run_cli(train_args(e, tmp.str("run"), steps) + " --resume", &out), 0) << out;
  EXPECT_NE(out.find("at step " + std::to_string(resume_at)), std::string::npos) << out;
  expect_logs(e, "resumed", metrics_of(tmp.str("run")), resume_at + 1);
  e.expect_weights("resumed", load_parameters(tmp.str("run/model.safetensors")));

  // A second import into the same run is refused: it would overwrite the run.
  EXPECT_NE(test::run_cli("import --tf-checkpoint " + tf_data("tf1") + " --out " + tmp.str("w2.safetensors") +
                              " --run-dir " + tmp.str("run"),
                          &out),
            0);
  EXPECT_NE(out.find(tmp.str("run/checkpoint.safetensors")), std::string::npos) << out;
}

TEST(TfTraining, InitFromAMissingFileIsNamed) {
  TempDir tmp;
  std::string out;
  EXPECT_NE(test::run_cli("train --data " + tf_data("train") + " --out " + tmp.str("run") + " --steps 1 --batch 2" +
                              " --init-from " + tmp.str("nothing.safetensors"),
                          &out),
            0);
  EXPECT_NE(out.find(tmp.str("nothing.safetensors")), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(tmp.str("run/model.safetensors")));
}

TEST(TfTraining, RunDirNeedsATrainingCheckpoint) {
  TempDir tmp;
  std::string out;
  // A SavedModel has no optimiser state and no step.
  EXPECT_NE(test::run_cli("import --tf-checkpoint " + tf_data("saved_model") + " --out " + tmp.str("w.safetensors") +
                              " --run-dir " + tmp.str("run"),
                          &out),
            0);
  EXPECT_NE(out.find("no global_step"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(tmp.str("run/checkpoint.safetensors")));
}

}  // namespace
}  // namespace unetind
