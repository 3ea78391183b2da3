// The operating threshold travels with the model: chosen from an evaluation,
// stored in the weights file's metadata (atomically, tensors untouched,
// refused for weights that changed), read back, and used by predict unless
// --threshold overrides it; inspect shows it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <regex>
#include <sstream>

#include "test_util.h"
#include "unetind/atomic_file.h"
#include "unetind/error.h"
#include "unetind/operating_threshold.h"
#include "unetind/safetensors.h"
#include "unetind/synth.h"

namespace unetind {
namespace {

namespace fs = std::filesystem;

// Five images with known scores: defective at 0.9, 0.6 and 0.3, clean at
// 0.5 and 0.1.
EvalReport small_report() {
  MetricsAccumulator acc;
  const std::vector<std::pair<float, bool>> images = {{0.9f, true}, {0.6f, true}, {0.3f, true}, {0.5f, false},
                                                      {0.1f, false}};
  for (size_t i = 0; i < images.size(); ++i) {
    const float p = images[i].first;
    acc.add("img" + std::to_string(i), &p, nullptr, 1, images[i].second);
  }
  return acc.finish();
}

TEST(OperatingThreshold, RulesPickFromTheEvaluation) {
  const EvalReport report = small_report();
  const OperatingThreshold f1 = choose_operating_threshold(report, "best-f1");
  // All three defective called, one false alarm: F1 6/7 at a threshold
  // between 0.1 and 0.3.
  EXPECT_EQ(f1.rule, "best-f1");
  EXPECT_EQ(f1.metric, "f1");
  EXPECT_GT(f1.threshold, 0.1f);
  EXPECT_LT(f1.threshold, 0.3f);
  EXPECT_DOUBLE_EQ(f1.value, 6.0 / 7.0);
  EXPECT_EQ(f1.point.tp, 3);
  EXPECT_EQ(f1.point.fp, 1);

  const OperatingThreshold cost = choose_operating_threshold(report, "dagm-cost");
  EXPECT_EQ(cost.metric, "dagm_cost");
  EXPECT_EQ(cost.value, 1.0);  // one false alarm (1), no miss (20 each)
  EXPECT_EQ(cost.dagm_cost, 1);

  const OperatingThreshold given = choose_operating_threshold(report, "0.55");
  EXPECT_EQ(given.rule, "value");
  EXPECT_EQ(given.threshold, 0.55f);
  EXPECT_EQ(given.point.tp, 2);  // 0.9 and 0.6
  EXPECT_EQ(given.point.fn, 1);
  EXPECT_EQ(given.point.tn, 2);
  EXPECT_EQ(given.dagm_cost, 20);

  for (const char* bad : {"best", "1.5", "-0.1", "nan", "0.5x", ""})
    EXPECT_THROW(choose_operating_threshold(report, bad), Error) << bad;
}

class StoredThreshold : public ::testing::Test {
 protected:
  void SetUp() override {
    params_ = init_parameters(ModelConfig{}, Initializer::HeNormal, 7);
    save_parameters(path(), params_);
  }
  std::string path() const { return dir_.str("w.safetensors"); }

  test::TempDir dir_;
  Parameters params_;
};

TEST_F(StoredThreshold, RoundTripsWithItsEvidenceAndTheTensorsUntouched) {
  OperatingThreshold t = choose_operating_threshold(small_report(), "best-f1");
  t.data = "data/";
  t.class_id = 3;
  t.split = "Test";
  const std::string before = read_file(path());
  EXPECT_FALSE(load_model(path()).threshold);
  store_operating_threshold(path(), t, params_);

  const LoadedModel loaded = load_model(path());
  ASSERT_TRUE(loaded.threshold);
  EXPECT_EQ(loaded.threshold->threshold, t.threshold);  // exactly: stored as its shortest decimal
  EXPECT_EQ(loaded.threshold->rule, "best-f1");
  EXPECT_EQ(loaded.threshold->split, "Test");
  EXPECT_EQ(loaded.threshold->data, "data/");
  EXPECT_EQ(loaded.threshold->class_id, 3);
  EXPECT_EQ(loaded.threshold->point.tp, 3);
  EXPECT_DOUBLE_EQ(loaded.threshold->value, 6.0 / 7.0);
  EXPECT_EQ(describe(*loaded.threshold), describe(t));
  ASSERT_EQ(loaded.parameters.tensors.size(), params_.tensors.size());
  for (size_t i = 0; i < params_.tensors.size(); ++i)
    EXPECT_EQ(loaded.parameters.tensors[i].tensor.data, params_.tensors[i].tensor.data);
  // The data section is the same bytes: only the header changed.
  const std::string after = read_file(path());
  uint64_t before_header, after_header;
  std::memcpy(&before_header, before.data(), 8);
  std::memcpy(&after_header, after.data(), 8);
  EXPECT_EQ(before.substr(8 + before_header), after.substr(8 + after_header));
  // The other metadata stays.
  EXPECT_EQ(read_safetensors(path()).metadata.at("variant"), "tinyUNet");

  // Storing again replaces it.
  store_operating_threshold(path(), choose_operating_threshold(small_report(), "0.7"), params_);
  EXPECT_EQ(load_model(path()).threshold->threshold, 0.7f);
}

TEST_F(StoredThreshold, KeepsOtherDtypesByteForByte) {
  // A file of F32, BF16 and F16 tensors (scripts/make_safetensors_fixture.py).
  const std::string copy = dir_.str("mixed.safetensors");
  fs::copy_file(UNETIND_TEST_DATA_DIR "/mixed_dtypes.safetensors", copy);
  const SafetensorsFile before = read_safetensors(copy);
  update_safetensors_metadata(copy, [](const SafetensorsFile&, std::map<std::string, std::string>& m) {
    m["note"] = "kept";
  });
  const SafetensorsFile after = read_safetensors(copy);
  EXPECT_EQ(after.metadata.at("note"), "kept");
  ASSERT_EQ(after.tensors.size(), before.tensors.size());
  for (size_t i = 0; i < before.tensors.size(); ++i) {
    const std::vector<float>& a = after.tensors[i].tensor.data;
    const std::vector<float>& b = before.tensors[i].tensor.data;
    // Bit for bit (NaN included, which == would not call equal).
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << after.tensors[i].name;
  }
  const std::string original = read_file(UNETIND_TEST_DATA_DIR "/mixed_dtypes.safetensors");
  const std::string rewritten = read_file(copy);
  uint64_t a, b;
  std::memcpy(&a, original.data(), 8);
  std::memcpy(&b, rewritten.data(), 8);
  EXPECT_EQ(original.substr(8 + a), rewritten.substr(8 + b));  // BF16 stayed BF16
  EXPECT_EQ(b % 8, 0u);  // the data section stays 8-byte aligned
}

TEST_F(StoredThreshold, RefusesWeightsThatChangedSinceTheEvaluation) {
  const std::string before = read_file(path());
  const Parameters other = init_parameters(ModelConfig{}, Initializer::HeNormal, 8);
  try {
    store_operating_threshold(path(), choose_operating_threshold(small_report(), "0.5"), other);
    ADD_FAILURE() << "stored a threshold for other weights";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("changed"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_file(path()), before);  // nothing written
}

TEST_F(StoredThreshold, MalformedMetadataIsAnErrorNamingTheFile) {
  for (const auto& [value, evidence] : std::vector<std::pair<std::string, std::string>>{
           {"1.5", "{}"}, {"abc", "{}"}, {"0.4", "not json"}, {"0.4", "{\"rule\": 3}"}}) {
    save_parameters(path(), params_, {{kThresholdKey, value}, {kThresholdEvidenceKey, evidence}});
    try {
      load_model(path());
      ADD_FAILURE() << value << " " << evidence;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path()), std::string::npos) << e.what();
    }
  }
}

TEST(OperatingThreshold, TheCallersThenTheFilesThenTheDefault) {
  OperatingThreshold carried;
  carried.threshold = 0.3f;
  carried.rule = "dagm-cost";
  carried.split = "Test";
  carried.data = "d";
  EXPECT_EQ(threshold_in_use(0.7f, "--threshold", carried).value, 0.7f);
  EXPECT_EQ(threshold_in_use(0.7f, "--threshold", carried).source, "--threshold");
  EXPECT_EQ(threshold_in_use(std::nullopt, "--threshold", carried).value, 0.3f);
  EXPECT_EQ(threshold_in_use(std::nullopt, "--threshold", carried).source.rfind("the model file: 0.3 (dagm-cost", 0),
            0u);
  EXPECT_EQ(threshold_in_use(std::nullopt, "--threshold", std::nullopt).value, kDefaultThreshold);
  EXPECT_THROW(threshold_in_use(2.0f, "--threshold", std::nullopt), Error);
}

// The acceptance path through the CLI: evaluate --set-threshold best-f1,
// then predict without --threshold uses that value and says so; inspect
// shows it; --threshold still overrides.
TEST(OperatingThresholdCli, EvaluateSetsItPredictUsesIt) {
  test::TempDir dir;
  SynthConfig c;
  c.size = 64;
  c.train_defective = 1;
  c.train_ok = 1;
  c.test_defective = 5;
  c.test_ok = 5;
  c.seed = 4;
  write_synthetic_class(dir.str("data"), c);
  const std::string model = dir.str("w.safetensors");
  std::string out;
  ASSERT_EQ(test::run_cli("init --out " + model + " --seed 2", &out), 0) << out;

  ASSERT_EQ(test::run_cli("evaluate --data " + dir.str("data") + " --class 1 --model " + model +
                              " --image-size 64 --json " + dir.str("m.json") + " --set-threshold best-f1",
                          &out),
            0)
      << out;
  EXPECT_NE(out.find("operating threshold"), std::string::npos) << out;
  const nlohmann::json metrics = nlohmann::json::parse(read_file(dir.str("m.json")));
  const float best = metrics.at("best_f1").at("threshold").get<float>();
  const LoadedModel loaded = load_model(model);
  ASSERT_TRUE(loaded.threshold);
  EXPECT_FLOAT_EQ(loaded.threshold->threshold, best);

  const std::string test_images = dir.str("data/Class1/Test");
  ASSERT_EQ(test::run_cli("predict --model " + model + " --image-size 64 --out " + dir.str("p") + " " + test_images,
                          &out),
            0)
      << out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex("at threshold ([0-9.e-]+) \\(from the model file: [^)]*best-f1")))
      << out;
  EXPECT_NEAR(std::stof(m[1]), best, 1e-5 * best);  // printed with 6 digits
  // Every decision in predictions.csv is score > that threshold (where the
  // CSV's 6 decimals can tell).
  std::istringstream csv(read_file(dir.str("p/predictions.csv")));
  std::string line;
  std::getline(csv, line);
  int rows = 0;
  while (std::getline(csv, line)) {
    const size_t c1 = line.rfind(',', line.rfind(',', line.rfind(',') - 1) - 1);
    const float score = std::stof(line.substr(c1 + 1));
    const bool defective = line.back() == '1';
    if (std::abs(score - loaded.threshold->threshold) > 1e-6f) {
      EXPECT_EQ(defective, score > loaded.threshold->threshold) << line;
    }
    ++rows;
  }
  EXPECT_EQ(rows, 10);

  ASSERT_EQ(test::run_cli("predict --model " + model + " --image-size 64 --threshold 0.99 --out " + dir.str("q") +
                              " " + test_images,
                          &out),
            0)
      << out;
  EXPECT_NE(out.find("at threshold 0.99 (from --threshold)"), std::string::npos) << out;

  ASSERT_EQ(test::run_cli("inspect " + model, &out), 0) << out;
  EXPECT_NE(out.find("operating threshold " + describe(*loaded.threshold)), std::string::npos) << out;

  EXPECT_NE(test::run_cli("evaluate --data " + dir.str("data") + " --model " + model + " --set-threshold best", &out),
            0);
  EXPECT_NE(out.find("--set-threshold"), std::string::npos) << out;
}

}  // namespace
}  // namespace unetind
