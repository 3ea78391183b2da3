// The HTML report of an evaluation: one self-contained file (inline CSS, SVG
// plots and base64-embedded PNGs, no network) with the metrics tables, the
// training loss curve, ROC and precision-recall curves and a gallery of
// overlays (overlay.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "unetind/metrics.h"

namespace unetind {

struct TrainPoint {
  int64_t step = 0;
  double loss = 0.0;  // NaN where the log holds null (a diverged step)
};

// Training's metrics log, one JSON object a line: every line with a "loss"
// gives a point and needs an integer "step"; other lines and blank lines are
// skipped. Throws Error naming path:line for a line that is not a JSON object
// or whose "loss" is neither a number nor null.
std::vector<TrainPoint> read_loss_curve(const std::string& metrics_jsonl_path);

// Image-level outcomes at a threshold (score > threshold called defective).
enum class GalleryCategory { TruePositive, FalsePositive, FalseNegative };
std::string to_string(GalleryCategory category);  // "TP" | "FP" | "FN"

struct GalleryPick {
  std::size_t image_index = 0;  // into EvalReport::images
  GalleryCategory category = GalleryCategory::TruePositive;
};

// Up to per_category images of each kind: the highest-scoring true positives,
// the highest-scoring false positives and the lowest-scoring misses (the most
// confident mistakes and successes), in that order; equal scores keep image
// order. Throws Error for a negative per_category.
std::vector<GalleryPick> select_gallery(const EvalReport& report, float threshold, int per_category);

struct GalleryItem {
  std::string file;
  bool is_defective = false;
  float score = 0.0f;
  GalleryCategory category = GalleryCategory::TruePositive;
  std::string png;  // PNG bytes of the overlay
};

struct ReportInputs {
  std::string title;
  EvalReport eval;
  std::vector<TrainPoint> loss_curve;  // empty: the report says there is no training log
  float gallery_threshold = 0.5f;      // the threshold the gallery and its overlays use
  std::vector<GalleryItem> gallery;
  nlohmann::json run_info = nlohmann::json::object();  // shown as a key/value table
};

std::string render_html_report(const ReportInputs& inputs);

}  // namespace unetind
