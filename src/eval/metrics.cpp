#include "unetind/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include "eval/text_format.h"
#include "unetind/error.h"

namespace unetind {

namespace {

constexpr double kDiceSmooth = 1e-5;

// In double; NVIDIA's float32 gives the same value to about 1e-7.
double dice_score(int64_t intersection, int64_t predicted, int64_t labelled) {
  return (2.0 * static_cast<double>(intersection) + kDiceSmooth) /
         (static_cast<double>(predicted + labelled) + kDiceSmooth);
}

std::optional<double> ratio(int64_t num, int64_t den) {
  if (den == 0) return std::nullopt;
  return static_cast<double>(num) / static_cast<double>(den);
}

// A float as the shortest decimal that reads back to it, so that 0.05f shows
// as 0.05 in JSON and not as 0.05000000074505806.
double shortest_decimal(float value) {
  char buf[32];
  auto res = std::to_chars(buf, buf + sizeof(buf), value);
  *res.ptr = '\0';
  return std::strtod(buf, nullptr);
}

nlohmann::json optional_json(const std::optional<double>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

nlohmann::json point_json(const OperatingPoint& p) {
  return {{"threshold", shortest_decimal(p.threshold)}, {"tp", p.tp}, {"fp", p.fp}, {"tn", p.tn}, {"fn", p.fn}};
}

}  // namespace

void MetricsAccumulator::add(const std::string& file, const float* prob, const float* mask, int64_t n_pixels,
                             bool is_defective) {
  if (n_pixels <= 0) throw Error(file + ": evaluation needs at least one pixel, got " + std::to_string(n_pixels));
  if (prob == nullptr) throw Error(file + ": no probability map given for evaluation");
  bool has_mask = mask != nullptr;
  if (!images_.empty() && images_.front().has_mask != has_mask) {
    throw Error(file + ": " + (has_mask ? "has" : "lacks") + " a mask while " + images_.front().file + " " +
                (has_mask ? "lacks" : "has") + " one; pixel metrics need masks for all images or none");
  }

  std::array<int64_t, kThresholdCount> predicted{}, labelled{}, both{};
  float score = prob[0];
  for (int64_t i = 0; i < n_pixels; ++i) {
    float p = prob[i];
    if (std::isnan(p)) throw Error(file + ": probability is NaN at pixel " + std::to_string(i));
    score = std::max(score, p);
    if (!has_mask) continue;
    float m = mask[i];
    for (std::size_t k = 0; k < kThresholdCount; ++k) {
      bool a = p > kThresholds[k];
      bool b = m > kThresholds[k];
      predicted[k] += a;
      labelled[k] += b;
      both[k] += a && b;
    }
  }

  ImageResult result;
  result.file = file;
  result.is_defective = is_defective;
  result.score = score;
  result.has_mask = has_mask;
  if (has_mask) {
    for (std::size_t k = 0; k < kThresholdCount; ++k) result.dice[k] = dice_score(both[k], predicted[k], labelled[k]);
  }
  images_.push_back(std::move(result));
}

std::vector<OperatingPoint> operating_points(const std::vector<ImageResult>& images) {
  if (images.empty()) return {};
  std::vector<const ImageResult*> by_score;
  by_score.reserve(images.size());
  int64_t positives = 0;
  for (const auto& image : images) {
    by_score.push_back(&image);
    positives += image.is_defective;
  }
  int64_t negatives = static_cast<int64_t>(images.size()) - positives;
  std::sort(by_score.begin(), by_score.end(), [](const auto* a, const auto* b) { return a->score > b->score; });

  // cut(lowest_in, highest_out): a float t with lowest_in > t >= highest_out.
  auto cut = [](float lowest_in, float highest_out) {
    auto t = static_cast<float>((static_cast<double>(lowest_in) + static_cast<double>(highest_out)) / 2.0);
    if (!(lowest_in > t)) t = std::nextafter(lowest_in, -INFINITY);
    return t;
  };

  std::vector<OperatingPoint> points;
  OperatingPoint none;
  none.threshold = std::max(1.0f, by_score.front()->score);
  none.tn = negatives;
  none.fn = positives;
  points.push_back(none);

  OperatingPoint current = none;
  for (std::size_t i = 0; i < by_score.size();) {
    float group_score = by_score[i]->score;
    for (; i < by_score.size() && by_score[i]->score == group_score; ++i) {
      if (by_score[i]->is_defective) {
        ++current.tp;
        --current.fn;
      } else {
        ++current.fp;
        --current.tn;
      }
    }
    float next_score = i < by_score.size() ? by_score[i]->score : std::min(0.0f, group_score);
    current.threshold = cut(group_score, next_score);
    points.push_back(current);
  }
  return points;
}

double f1_score(const OperatingPoint& p) {
  int64_t den = 2 * p.tp + p.fp + p.fn;
  return den == 0 ? 0.0 : 2.0 * static_cast<double>(p.tp) / static_cast<double>(den);
}

int64_t dagm_cost(const OperatingPoint& p) { return kDagmMissCost * p.fn + kDagmFalseAlarmCost * p.fp; }

OperatingPoint operating_point_at(const std::vector<ImageResult>& images, float threshold) {
  OperatingPoint p;
  p.threshold = threshold;
  for (const ImageResult& image : images) {
    const bool called = image.score > threshold;
    if (image.is_defective)
      (called ? p.tp : p.fn) += 1;
    else
      (called ? p.fp : p.tn) += 1;
  }
  return p;
}

EvalReport MetricsAccumulator::finish() const {
  if (images_.empty()) throw Error("evaluation: no images were added");
  EvalReport report;
  report.images = images_;
  for (const auto& image : images_) (image.is_defective ? report.n_defective : report.n_clean) += 1;
  bool has_masks = images_.front().has_mask;

  for (std::size_t k = 0; k < kThresholdCount; ++k) {
    ThresholdResult& row = report.thresholds[k];
    row.threshold = kThresholds[k];
    double dice_sum = 0.0, dice_defective_sum = 0.0;
    const OperatingPoint point = operating_point_at(images_, kThresholds[k]);
    row.tp = point.tp;
    row.fn = point.fn;
    row.fp = point.fp;
    row.tn = point.tn;
    for (const auto& image : images_) {
      if (image.is_defective) dice_defective_sum += image.dice[k];
      dice_sum += image.dice[k];
    }
    if (has_masks) {
      row.dice_all = dice_sum / static_cast<double>(images_.size());
      if (report.n_defective > 0) row.dice_defective = dice_defective_sum / static_cast<double>(report.n_defective);
    }
    row.tpr = ratio(row.tp, row.tp + row.fn);
    row.tnr = ratio(row.tn, row.tn + row.fp);
  }

  std::vector<OperatingPoint> points = operating_points(images_);
  int64_t pos = report.n_defective, neg = report.n_clean;
  if (pos > 0 && neg > 0) {
    // The trapezoid under the ROC steps: a tie between a defective and a
    // clean image is a diagonal segment and counts one half.
    double area = 0.0;
    for (std::size_t j = 1; j < points.size(); ++j) {
      area += static_cast<double>(points[j].fp - points[j - 1].fp) *
              static_cast<double>(points[j].tp + points[j - 1].tp) / 2.0;
    }
    report.auroc = area / (static_cast<double>(pos) * static_cast<double>(neg));
  }
  if (pos > 0) {
    double ap = 0.0;
    for (std::size_t j = 1; j < points.size(); ++j) {
      const auto& p = points[j];
      double precision = static_cast<double>(p.tp) / static_cast<double>(p.tp + p.fp);
      ap += static_cast<double>(p.tp - points[j - 1].tp) / static_cast<double>(pos) * precision;
    }
    report.average_precision = ap;

    // Ties go to the higher threshold (the first point): fewer images flagged.
    auto best = std::max_element(points.begin(), points.end(),
                                 [](const auto& a, const auto& b) { return f1_score(a) < f1_score(b); });
    BestF1 f1;
    f1.point = *best;
    f1.f1 = f1_score(*best);
    f1.precision = best->tp + best->fp == 0 ? 0.0 : static_cast<double>(best->tp) / static_cast<double>(best->tp + best->fp);
    f1.recall = static_cast<double>(best->tp) / static_cast<double>(pos);
    report.best_f1 = f1;
  }
  auto cheapest = std::min_element(points.begin(), points.end(),
                                   [](const auto& a, const auto& b) { return dagm_cost(a) < dagm_cost(b); });
  report.best_cost.point = *cheapest;
  report.best_cost.cost = dagm_cost(*cheapest);
  return report;
}

nlohmann::json to_json(const EvalReport& report) {
  nlohmann::json j;
  j["n_images"] = report.images.size();
  j["n_defective"] = report.n_defective;
  j["n_clean"] = report.n_clean;
  j["thresholds"] = nlohmann::json::array();
  for (const auto& row : report.thresholds) {
    j["thresholds"].push_back({{"threshold", shortest_decimal(row.threshold)},
                               {"dice_all", optional_json(row.dice_all)},
                               {"dice_defective", optional_json(row.dice_defective)},
                               {"tp", row.tp},
                               {"tn", row.tn},
                               {"fp", row.fp},
                               {"fn", row.fn},
                               {"tpr", optional_json(row.tpr)},
                               {"tnr", optional_json(row.tnr)}});
  }
  j["auroc"] = optional_json(report.auroc);
  j["average_precision"] = optional_json(report.average_precision);
  if (report.best_f1) {
    const auto& b = *report.best_f1;
    j["best_f1"] = point_json(b.point);
    j["best_f1"]["f1"] = b.f1;
    j["best_f1"]["precision"] = b.precision;
    j["best_f1"]["recall"] = b.recall;
  } else {
    j["best_f1"] = nullptr;
  }
  j["best_dagm_cost"] = point_json(report.best_cost.point);
  j["best_dagm_cost"]["cost"] = report.best_cost.cost;
  j["best_dagm_cost"]["miss_cost"] = kDagmMissCost;
  j["best_dagm_cost"]["false_alarm_cost"] = kDagmFalseAlarmCost;
  j["images"] = nlohmann::json::array();
  for (const auto& image : report.images) {
    nlohmann::json dice = nullptr;
    if (image.has_mask) dice = nlohmann::json(std::vector<double>(image.dice.begin(), image.dice.end()));
    j["images"].push_back(
        {{"file", image.file}, {"defective", image.is_defective}, {"score", shortest_decimal(image.score)}, {"dice", dice}});
  }
  return j;
}

std::string format_table(const EvalReport& report) {
  std::string out = printf_string("images: %zu (%lld defective, %lld clean)\n", report.images.size(),
                                  static_cast<long long>(report.n_defective), static_cast<long long>(report.n_clean));
  out += printf_string("%9s %9s %15s %7s %7s %7s %7s %7s %7s\n", "threshold", "Dice(all)", "Dice(defective)", "TP",
                       "TN", "FP", "FN", "TPR", "TNR");
  for (const auto& row : report.thresholds) {
    out += printf_string("%9g ", static_cast<double>(row.threshold));
    out += format_optional(row.dice_all, 9) + " " + format_optional(row.dice_defective, 15);
    out += printf_string(" %7lld %7lld %7lld %7lld ", static_cast<long long>(row.tp), static_cast<long long>(row.tn),
                         static_cast<long long>(row.fp), static_cast<long long>(row.fn));
    out += format_optional(row.tpr, 7) + " " + format_optional(row.tnr, 7) + "\n";
  }
  out += "AUROC: " + format_optional(report.auroc, 0) + "   average precision: " +
         format_optional(report.average_precision, 0) + "\n";
  if (report.best_f1) {
    const auto& b = *report.best_f1;
    out += printf_string("best F1: %.4f at score > %.6g (precision %.4f, recall %.4f; TP %lld, FP %lld, FN %lld, TN %lld)\n",
                         b.f1, static_cast<double>(b.point.threshold), b.precision, b.recall,
                         static_cast<long long>(b.point.tp), static_cast<long long>(b.point.fp),
                         static_cast<long long>(b.point.fn), static_cast<long long>(b.point.tn));
  } else {
    out += "best F1: n/a (no defective image)\n";
  }
  const auto& c = report.best_cost;
  out += printf_string("lowest DAGM cost (%lld*FN + %lld*FP): %lld at score > %.6g (FN %lld, FP %lld)\n",
                       static_cast<long long>(kDagmMissCost), static_cast<long long>(kDagmFalseAlarmCost),
                       static_cast<long long>(c.cost), static_cast<double>(c.point.threshold),
                       static_cast<long long>(c.point.fn), static_cast<long long>(c.point.fp));
  return out;
}

std::string per_image_csv(const EvalReport& report) {
  std::string out = "file,label,score,dice_0.5\n";
  for (const auto& image : report.images) {
    out += csv_field(image.file) + (image.is_defective ? ",1," : ",0,");
    // Nine significant digits: a float score reads back exactly, so that
    // scores such as 0.99999994 stay on the right side of a threshold.
    out += printf_string("%.9g,", static_cast<double>(image.score));
    if (image.has_mask) out += printf_string("%.6f", image.dice[kHalfThresholdIndex]);
    out += "\n";
  }
  return out;
}

}  // namespace unetind
