// Evaluation metrics, SPEC.md section 4, plus image-level ranking metrics.
//
// NVIDIA's "IoU" is a per-image Dice score: at each threshold t, mask and
// prediction are binarised with `> t` (strict) and the image scores
// (2|A and B| + 1e-5) / (|A| + |B| + 1e-5), so an image where both are empty
// scores 1. The image-level decision is `max pixel probability > t` against
// the image's defective label.
//
// Beyond NVIDIA: Dice over the defective images only, AUROC and average
// precision of the max-probability score, the threshold with the best F1 and
// the one with the lowest DAGM 2007 competition cost (a missed defect costs
// 20, a false alarm 1).
//
// Undefined values (a rate whose denominator is zero, AUROC without both
// classes, ...) are empty optionals: null in JSON, "n/a" in the table.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace unetind {

inline constexpr std::array<float, 8> kThresholds{0.05f, 0.125f, 0.25f, 0.5f, 0.75f, 0.85f, 0.95f, 0.99f};
inline constexpr std::size_t kThresholdCount = kThresholds.size();
// Index of 0.5 in kThresholds: the threshold of the per-image CSV.
inline constexpr std::size_t kHalfThresholdIndex = 3;

inline constexpr int64_t kDagmMissCost = 20;
inline constexpr int64_t kDagmFalseAlarmCost = 1;

struct ImageResult {
  std::string file;
  bool is_defective = false;
  float score = 0.0f;  // max pixel probability
  bool has_mask = false;
  std::array<double, kThresholdCount> dice{};  // meaningful only with has_mask
};

struct ThresholdResult {
  float threshold = 0.0f;
  std::optional<double> dice_all;        // mean over all images (needs masks)
  std::optional<double> dice_defective;  // mean over the defective images
  int64_t tp = 0, tn = 0, fp = 0, fn = 0;
  std::optional<double> tpr;  // tp / (tp + fn)
  std::optional<double> tnr;  // tn / (tn + fp)
};

// One way of splitting the images by score: those with score > threshold are
// called defective. The threshold lies halfway between the lowest score called
// defective and the highest called clean (0 and 1 stand in at the ends), moved
// down to just below the lowest called defective where float rounding needs it.
struct OperatingPoint {
  float threshold = 0.0f;
  int64_t tp = 0, fp = 0, tn = 0, fn = 0;
};

struct BestF1 {
  OperatingPoint point;
  double f1 = 0.0, precision = 0.0, recall = 0.0;
};

struct BestCost {
  OperatingPoint point;
  int64_t cost = 0;  // kDagmMissCost * fn + kDagmFalseAlarmCost * fp
};

struct EvalReport {
  std::vector<ImageResult> images;  // in the order they were added
  int64_t n_defective = 0, n_clean = 0;
  std::array<ThresholdResult, kThresholdCount> thresholds{};
  std::optional<double> auroc;              // ties count one half
  std::optional<double> average_precision;  // step-wise, as sklearn's average_precision_score
  std::optional<BestF1> best_f1;            // needs a defective image
  BestCost best_cost;
};

// Collects per-image results; memory is O(images), probability maps are not
// kept.
class MetricsAccumulator {
 public:
  // prob and mask hold n_pixels values in [0, 1]. mask may be null for data
  // without pixel labels: that image counts at image level only. Mixing
  // images with and without masks, a NaN probability or n_pixels <= 0 throws
  // Error naming the file.
  void add(const std::string& file, const float* prob, const float* mask, int64_t n_pixels, bool is_defective);

  // Throws Error when no image was added.
  EvalReport finish() const;

 private:
  std::vector<ImageResult> images_;
};

// Every distinct split of the images by score, from "none defective" (first)
// to "all defective" (last). Empty when there are no images.
std::vector<OperatingPoint> operating_points(const std::vector<ImageResult>& images);
// The split at a given threshold (score > threshold is called defective).
OperatingPoint operating_point_at(const std::vector<ImageResult>& images, float threshold);
double f1_score(const OperatingPoint& point);   // 0 where nothing is defective or called so
int64_t dagm_cost(const OperatingPoint& point);  // kDagmMissCost * fn + kDagmFalseAlarmCost * fp

nlohmann::json to_json(const EvalReport& report);
std::string format_table(const EvalReport& report);  // fixed-width text, ends with '\n'
std::string per_image_csv(const EvalReport& report);  // header file,label,score,dice_0.5

}  // namespace unetind
