// SPEC.md section 4 metrics and the image-level extras on hand-made cases
// whose answers are worked out in the comments.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "unetind/error.h"
#include "unetind/metrics.h"

namespace unetind {
namespace {

// The SPEC formula, written out independently of the library.
double dice(double intersection, double a, double b) { return (2.0 * intersection + 1e-5) / (a + b + 1e-5); }

std::size_t threshold_index(float t) {
  for (std::size_t k = 0; k < kThresholds.size(); ++k) {
    if (kThresholds[k] == t) return k;
  }
  ADD_FAILURE() << "no threshold " << t;
  return 0;
}

// One-pixel images: the score is the pixel, the mask empty. (Names put the
// number first: GCC 12 warns falsely on "literal" + std::to_string.)
EvalReport image_level_report(const std::vector<float>& defective_scores, const std::vector<float>& clean_scores) {
  MetricsAccumulator acc;
  float zero = 0.0f;
  for (std::size_t i = 0; i < defective_scores.size(); ++i) {
    acc.add(std::to_string(i) + "d", &defective_scores[i], &zero, 1, true);
  }
  for (std::size_t i = 0; i < clean_scores.size(); ++i) acc.add(std::to_string(i) + "c", &clean_scores[i], &zero, 1, false);
  return acc.finish();
}

TEST(Metrics, ThresholdsAreNvidias) {
  const float expected[] = {0.05f, 0.125f, 0.25f, 0.5f, 0.75f, 0.85f, 0.95f, 0.99f};
  ASSERT_EQ(kThresholds.size(), 8u);
  for (std::size_t k = 0; k < 8; ++k) EXPECT_EQ(kThresholds[k], expected[k]);
  EXPECT_EQ(kThresholds[kHalfThresholdIndex], 0.5f);
}

TEST(Metrics, BothEmptyScoresOne) {
  std::vector<float> prob(16, 0.01f), mask(16, 0.0f);
  MetricsAccumulator acc;
  acc.add("empty.png", prob.data(), mask.data(), 16, false);
  EvalReport r = acc.finish();
  ASSERT_EQ(r.images.size(), 1u);
  for (std::size_t k = 0; k < kThresholds.size(); ++k) {
    EXPECT_DOUBLE_EQ(r.images[0].dice[k], 1.0) << "threshold " << kThresholds[k];
    ASSERT_TRUE(r.thresholds[k].dice_all.has_value());
    EXPECT_DOUBLE_EQ(*r.thresholds[k].dice_all, 1.0);
  }
}

TEST(Metrics, HalfOverlapFollowsTheFormula) {
  // Mask on pixels 0..3, prediction 0.9 on pixels 2..5: |A| = |B| = 4 and
  // |A and B| = 2 while t < 0.9; above 0.9 the prediction is empty.
  std::vector<float> mask = {1, 1, 1, 1, 0, 0, 0, 0};
  std::vector<float> prob = {0, 0, 0.9f, 0.9f, 0.9f, 0.9f, 0, 0};
  MetricsAccumulator acc;
  acc.add("half.png", prob.data(), mask.data(), 8, true);
  EvalReport r = acc.finish();
  for (std::size_t k = 0; k < kThresholds.size(); ++k) {
    double expected = kThresholds[k] < 0.9f ? dice(2, 4, 4) : dice(0, 0, 4);
    EXPECT_DOUBLE_EQ(r.images[0].dice[k], expected) << "threshold " << kThresholds[k];
    EXPECT_DOUBLE_EQ(*r.thresholds[k].dice_all, expected);
    EXPECT_DOUBLE_EQ(*r.thresholds[k].dice_defective, expected);
  }
  EXPECT_NEAR(r.images[0].dice[kHalfThresholdIndex], 0.5, 1e-5);
}

TEST(Metrics, SoftMaskIsBinarisedWithTheSameThreshold) {
  // A mask value of 0.6 is labelled at t <= 0.5 and not at t >= 0.75.
  std::vector<float> mask = {0.6f, 0.6f, 0, 0};
  std::vector<float> prob = {0.7f, 0, 0, 0};
  MetricsAccumulator acc;
  acc.add("soft.png", prob.data(), mask.data(), 4, true);
  EvalReport r = acc.finish();
  EXPECT_DOUBLE_EQ(r.images[0].dice[threshold_index(0.5f)], dice(1, 1, 2));
  EXPECT_DOUBLE_EQ(r.images[0].dice[threshold_index(0.75f)], dice(0, 0, 0));
}

TEST(Metrics, ThresholdsAreStrict) {
  // A probability exactly at t is not predicted; a mask value exactly at t is
  // not labelled; an image whose max is exactly t is not called defective.
  std::vector<float> prob = {0.5f, 0.0f};
  std::vector<float> mask = {1.0f, 0.0f};
  MetricsAccumulator acc;
  acc.add("at_half.png", prob.data(), mask.data(), 2, true);
  std::vector<float> prob2 = {0.0f, 0.0f};
  std::vector<float> mask2 = {0.75f, 0.0f};
  acc.add("mask_at_075.png", prob2.data(), mask2.data(), 2, false);
  EvalReport r = acc.finish();

  std::size_t half = threshold_index(0.5f), quarter = threshold_index(0.25f), k075 = threshold_index(0.75f);
  EXPECT_DOUBLE_EQ(r.images[0].dice[half], dice(0, 0, 1));
  EXPECT_DOUBLE_EQ(r.images[0].dice[quarter], dice(1, 1, 1));
  EXPECT_EQ(r.thresholds[half].tp, 0);
  EXPECT_EQ(r.thresholds[half].fn, 1);
  EXPECT_EQ(r.thresholds[quarter].tp, 1);
  EXPECT_DOUBLE_EQ(r.images[1].dice[k075], 1.0);  // mask 0.75 is not > 0.75: both empty
  EXPECT_DOUBLE_EQ(r.images[1].dice[half], dice(0, 0, 1));
}

TEST(Metrics, ImageLevelCountsAtEveryThreshold) {
  EvalReport r = image_level_report({0.9f, 0.5f, 0.1f, 0.995f}, {0.3f, 0.96f, 0.05f, 0.0f});
  EXPECT_EQ(r.n_defective, 4);
  EXPECT_EQ(r.n_clean, 4);
  struct Row {
    float t;
    int64_t tp, tn, fp, fn;
  };
  // Worked out by hand from the scores above with `score > t`.
  const Row rows[] = {{0.05f, 4, 2, 2, 0}, {0.125f, 3, 2, 2, 1}, {0.25f, 3, 2, 2, 1}, {0.5f, 2, 3, 1, 2},
                      {0.75f, 2, 3, 1, 2}, {0.85f, 2, 3, 1, 2},  {0.95f, 1, 3, 1, 3}, {0.99f, 1, 4, 0, 3}};
  for (const Row& row : rows) {
    const ThresholdResult& got = r.thresholds[threshold_index(row.t)];
    SCOPED_TRACE("threshold " + std::to_string(row.t));
    EXPECT_EQ(got.threshold, row.t);
    EXPECT_EQ(got.tp, row.tp);
    EXPECT_EQ(got.tn, row.tn);
    EXPECT_EQ(got.fp, row.fp);
    EXPECT_EQ(got.fn, row.fn);
    EXPECT_DOUBLE_EQ(*got.tpr, row.tp / 4.0);
    EXPECT_DOUBLE_EQ(*got.tnr, row.tn / 4.0);
  }
}

TEST(Metrics, DiceOverAllAndOverDefectiveImages) {
  // A defective image with a half overlap and a clean image whose prediction
  // is one false pixel (Dice ~0) at t < 0.3, and empty (Dice 1) above.
  std::vector<float> mask = {1, 1, 1, 1, 0, 0, 0, 0}, prob = {0, 0, 0.9f, 0.9f, 0.9f, 0.9f, 0, 0};
  std::vector<float> clean_mask(8, 0.0f), clean_prob = {0.3f, 0, 0, 0, 0, 0, 0, 0};
  MetricsAccumulator acc;
  acc.add("defective.png", prob.data(), mask.data(), 8, true);
  acc.add("clean.png", clean_prob.data(), clean_mask.data(), 8, false);
  EvalReport r = acc.finish();
  std::size_t k025 = threshold_index(0.25f), k05 = threshold_index(0.5f);
  EXPECT_DOUBLE_EQ(*r.thresholds[k025].dice_all, (dice(2, 4, 4) + dice(0, 1, 0)) / 2);
  EXPECT_DOUBLE_EQ(*r.thresholds[k05].dice_all, (dice(2, 4, 4) + 1.0) / 2);
  EXPECT_DOUBLE_EQ(*r.thresholds[k05].dice_defective, dice(2, 4, 4));
}

TEST(Metrics, AurocCountsTiesAsOneHalf) {
  // Pairs (defective, clean): (0.8,0.6)=1 (0.8,0.2)=1 (0.6,0.6)=1/2
  // (0.6,0.2)=1 (0.4,0.6)=0 (0.4,0.2)=1 -> 4.5 / 6.
  EvalReport r = image_level_report({0.8f, 0.6f, 0.4f}, {0.6f, 0.2f});
  ASSERT_TRUE(r.auroc.has_value());
  EXPECT_DOUBLE_EQ(*r.auroc, 0.75);
}

TEST(Metrics, AurocMatchesPairCountingOnManyTies) {
  std::vector<float> pos, neg;
  for (int i = 0; i < 40; ++i) pos.push_back(static_cast<float>((i * 7) % 11) / 10.0f);
  for (int i = 0; i < 55; ++i) neg.push_back(static_cast<float>((i * 5) % 9) / 10.0f);
  double wins = 0;
  for (float p : pos) {
    for (float n : neg) wins += p > n ? 1.0 : (p == n ? 0.5 : 0.0);
  }
  EvalReport r = image_level_report(pos, neg);
  EXPECT_NEAR(*r.auroc, wins / (pos.size() * neg.size()), 1e-12);
}

TEST(Metrics, AveragePrecisionIsStepwise) {
  // Descending: 0.9 D, 0.8 C, 0.7 D, 0.3 C. AP = sum (R_n - R_n-1) P_n
  // = 0.5 * 1 + 0 * 1/2 + 0.5 * 2/3 + 0 = 5/6.
  EvalReport r = image_level_report({0.9f, 0.7f}, {0.8f, 0.3f});
  EXPECT_DOUBLE_EQ(*r.average_precision, 5.0 / 6.0);
  // With ties: 0.9 C; then {0.5 D, 0.5 D, 0.5 C} as one step (R 2/3, P 1/2);
  // then 0.2 D (R 1, P 3/5). AP = 2/3 * 1/2 + 1/3 * 3/5 = 1/3 + 1/5.
  EvalReport tied = image_level_report({0.5f, 0.5f, 0.2f}, {0.5f, 0.9f});
  EXPECT_DOUBLE_EQ(*tied.average_precision, 1.0 / 3.0 + 1.0 / 5.0);
  // Pairs: (0.5,0.5) twice = 1, all else 0 -> 1/6.
  EXPECT_DOUBLE_EQ(*tied.auroc, 1.0 / 6.0);
}

TEST(Metrics, BestF1AndDagmCostPickTheirOwnThresholds) {
  // Descending: 0.9 D, 0.8 D, 0.7 C, 0.6 C, 0.5 C, 0.2 D, 0.1 C.
  // F1 = 2TP / (2TP + FP + FN): cut below 0.8 gives 4/5, the best; below 0.2
  // gives 6/9. Cost 20 FN + FP: below 0.8 costs 20, below 0.2 costs 3 (best),
  // below 0.1 costs 4.
  EvalReport r = image_level_report({0.9f, 0.8f, 0.2f}, {0.7f, 0.6f, 0.5f, 0.1f});
  ASSERT_TRUE(r.best_f1.has_value());
  const BestF1& f1 = *r.best_f1;
  EXPECT_DOUBLE_EQ(f1.f1, 0.8);
  EXPECT_DOUBLE_EQ(f1.precision, 1.0);
  EXPECT_DOUBLE_EQ(f1.recall, 2.0 / 3.0);
  EXPECT_EQ(f1.point.tp, 2);
  EXPECT_EQ(f1.point.fp, 0);
  EXPECT_EQ(f1.point.fn, 1);
  EXPECT_EQ(f1.point.tn, 4);
  EXPECT_LT(f1.point.threshold, 0.8f);
  EXPECT_GE(f1.point.threshold, 0.7f);

  EXPECT_EQ(r.best_cost.cost, 3);
  EXPECT_EQ(r.best_cost.point.fn, 0);
  EXPECT_EQ(r.best_cost.point.fp, 3);
  EXPECT_LT(r.best_cost.point.threshold, 0.2f);
  EXPECT_GE(r.best_cost.point.threshold, 0.1f);
}

TEST(Metrics, OperatingPointThresholdsReproduceTheirCounts) {
  // Edge scores: exactly 0 and 1, adjacent floats, ties across classes.
  float just_below_one = std::nextafter(1.0f, 0.0f);
  float tiny = std::numeric_limits<float>::denorm_min();
  std::vector<float> pos = {1.0f, 1.0f, just_below_one, 0.5f, 0.0f, tiny};
  std::vector<float> neg = {1.0f, 0.5f, std::nextafter(0.5f, 0.0f), 0.0f, 0.25f};
  EvalReport r = image_level_report(pos, neg);
  std::vector<OperatingPoint> points = operating_points(r.images);
  // Distinct scores: 1, just_below_one, 0.5, below 0.5, 0.25, tiny, 0 -> 7
  // splits plus "none".
  ASSERT_EQ(points.size(), 8u);
  EXPECT_EQ(points.front().tp + points.front().fp, 0);
  EXPECT_EQ(points.back().tp + points.back().fp, static_cast<int64_t>(pos.size() + neg.size()));
  for (const auto& p : points) {
    int64_t tp = 0, fp = 0;
    for (float s : pos) tp += s > p.threshold;
    for (float s : neg) fp += s > p.threshold;
    EXPECT_EQ(p.tp, tp) << "threshold " << p.threshold;
    EXPECT_EQ(p.fp, fp) << "threshold " << p.threshold;
    EXPECT_EQ(p.tp + p.fn, 6);
    EXPECT_EQ(p.fp + p.tn, 5);
  }
}

TEST(Metrics, NoDefectiveImagesGivesUndefinedNotNaN) {
  EvalReport r = image_level_report({}, {0.2f, 0.7f});
  EXPECT_FALSE(r.auroc.has_value());
  EXPECT_FALSE(r.average_precision.has_value());
  EXPECT_FALSE(r.best_f1.has_value());
  EXPECT_FALSE(r.thresholds[0].tpr.has_value());
  EXPECT_FALSE(r.thresholds[0].dice_defective.has_value());
  EXPECT_DOUBLE_EQ(*r.thresholds[0].tnr, 0.0);
  // With nothing to miss, flagging nothing costs nothing.
  EXPECT_EQ(r.best_cost.cost, 0);
  EXPECT_EQ(r.best_cost.point.fp, 0);

  nlohmann::json j = to_json(r);
  EXPECT_TRUE(j["auroc"].is_null());
  EXPECT_TRUE(j["average_precision"].is_null());
  EXPECT_TRUE(j["best_f1"].is_null());
  EXPECT_TRUE(j["thresholds"][0]["tpr"].is_null());
  std::string table = format_table(r);
  EXPECT_NE(table.find("n/a"), std::string::npos);
  EXPECT_EQ(table.find("nan"), std::string::npos);
}

TEST(Metrics, ImagesWithoutMasksCountAtImageLevelOnly) {
  std::vector<float> prob = {0.7f, 0.1f};
  MetricsAccumulator acc;
  acc.add("a.png", prob.data(), nullptr, 2, true);
  acc.add("b.png", prob.data(), nullptr, 2, false);
  EvalReport r = acc.finish();
  EXPECT_FALSE(r.thresholds[kHalfThresholdIndex].dice_all.has_value());
  EXPECT_EQ(r.thresholds[kHalfThresholdIndex].tp, 1);
  EXPECT_EQ(r.thresholds[kHalfThresholdIndex].fp, 1);
  EXPECT_TRUE(to_json(r)["images"][0]["dice"].is_null());

  std::vector<float> mask = {0.0f, 0.0f};
  try {
    acc.add("c.png", prob.data(), mask.data(), 2, false);
    FAIL() << "mixing masked and unmasked images must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("c.png"), std::string::npos) << e.what();
  }
}

TEST(Metrics, BadInputThrowsNamingTheFile) {
  MetricsAccumulator acc;
  EXPECT_THROW(acc.finish(), Error);
  std::vector<float> prob = {0.1f, std::nanf(""), 0.2f}, mask(3, 0.0f);
  try {
    acc.add("broken.png", prob.data(), mask.data(), 3, false);
    FAIL() << "NaN must throw";
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("broken.png"), std::string::npos) << what;
    EXPECT_NE(what.find("pixel 1"), std::string::npos) << what;
  }
  EXPECT_THROW(acc.add("zero.png", prob.data(), mask.data(), 0, false), Error);
}

TEST(Metrics, JsonHoldsEverything) {
  std::vector<float> mask = {1, 1, 1, 1, 0, 0, 0, 0}, prob = {0, 0, 0.9f, 0.9f, 0.9f, 0.9f, 0, 0};
  std::vector<float> clean_mask(8, 0.0f), clean_prob(8, 0.2f);
  MetricsAccumulator acc;
  acc.add("defective.png", prob.data(), mask.data(), 8, true);
  acc.add("clean.png", clean_prob.data(), clean_mask.data(), 8, false);
  EvalReport r = acc.finish();
  nlohmann::json j = to_json(r);
  EXPECT_EQ(j["n_images"], 2);
  EXPECT_EQ(j["n_defective"], 1);
  ASSERT_EQ(j["thresholds"].size(), 8u);
  EXPECT_EQ(j["thresholds"][0]["threshold"].get<double>(), 0.05);  // shortest decimal, not 0.0500000007
  EXPECT_EQ(j["thresholds"][1]["threshold"].get<double>(), 0.125);
  const auto& half = j["thresholds"][kHalfThresholdIndex];
  EXPECT_DOUBLE_EQ(half["dice_all"].get<double>(), (dice(2, 4, 4) + 1.0) / 2);
  EXPECT_DOUBLE_EQ(half["dice_defective"].get<double>(), dice(2, 4, 4));
  EXPECT_EQ(half["tp"], 1);
  EXPECT_EQ(half["tn"], 1);
  EXPECT_EQ(half["fp"], 0);
  EXPECT_EQ(half["fn"], 0);
  EXPECT_DOUBLE_EQ(j["auroc"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(j["average_precision"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(j["best_f1"]["f1"].get<double>(), 1.0);
  EXPECT_EQ(j["best_dagm_cost"]["cost"], 0);
  ASSERT_EQ(j["images"].size(), 2u);
  EXPECT_EQ(j["images"][0]["file"], "defective.png");
  EXPECT_EQ(j["images"][0]["score"].get<double>(), 0.9);
  EXPECT_EQ(j["images"][1]["defective"], false);
  EXPECT_EQ(j["images"][1]["dice"].size(), 8u);
}

TEST(Metrics, PerImageCsv) {
  std::vector<float> mask = {1, 1, 1, 1, 0, 0, 0, 0}, prob = {0, 0, 0.9f, 0.9f, 0.9f, 0.9f, 0, 0};
  std::vector<float> clean_mask(8, 0.0f), clean_prob(8, 0.0f);
  clean_prob[0] = std::nextafter(1.0f, 0.0f);
  MetricsAccumulator acc;
  acc.add("dir/0001.PNG", prob.data(), mask.data(), 8, true);
  acc.add("odd,\"name\".PNG", clean_prob.data(), clean_mask.data(), 8, false);
  std::string csv = per_image_csv(acc.finish());
  // Dice at 0.5 of the second image: one false pixel against an empty mask.
  std::string expected = "file,label,score,dice_0.5\n"
                         "dir/0001.PNG,1,0.899999976,0.500001\n"
                         "\"odd,\"\"name\"\".PNG\",0,0.99999994,0.000010\n";
  EXPECT_EQ(csv, expected);
}

TEST(Metrics, TableIsReadable) {
  EvalReport r = image_level_report({0.9f, 0.5f, 0.1f, 0.995f}, {0.3f, 0.96f, 0.05f, 0.0f});
  std::string table = format_table(r);
  EXPECT_NE(table.find("images: 8 (4 defective, 4 clean)"), std::string::npos) << table;
  EXPECT_NE(table.find("threshold"), std::string::npos);
  EXPECT_NE(table.find("AUROC"), std::string::npos);
  EXPECT_NE(table.find("best F1"), std::string::npos);
  EXPECT_NE(table.find("DAGM cost"), std::string::npos);
  // One line a threshold, all of the same width.
  std::size_t first = table.find("\n", table.find("threshold")) + 1;
  std::size_t width = table.find('\n', first) - first;
  std::size_t pos = first;
  for (float t : kThresholds) {
    std::size_t end = table.find('\n', pos);
    std::string line = table.substr(pos, end - pos);
    EXPECT_EQ(line.size(), width) << line;
    EXPECT_EQ(std::stof(line.substr(0, 9)), t) << line;
    pos = end + 1;
  }
  EXPECT_EQ(table.back(), '\n');
}

}  // namespace
}  // namespace unetind
