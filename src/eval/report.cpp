#include "unetind/report.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <utility>

#include "eval/base64.h"
#include "eval/text_format.h"
#include "unetind/atomic_file.h"
#include "unetind/error.h"

namespace unetind {

namespace {

// ---------------------------------------------------------------- loss log

std::string line_error(const std::string& path, int line, const std::string& what) {
  return path + ":" + std::to_string(line) + ": " + what;
}

// ---------------------------------------------------------------- HTML text

std::string escape_html(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// ---------------------------------------------------------------- SVG plots

struct Axis {
  std::string label;
  double lo = 0.0, hi = 1.0;
  bool log = false;
};

struct Series {
  std::vector<std::pair<double, double>> points;
  std::string colour;
  bool dashed = false;
};

struct Marker {
  double x = 0.0, y = 0.0;
  std::string colour, label;
};

constexpr double kPlotWidth = 440, kPlotHeight = 330;
constexpr double kLeft = 62, kRight = 16, kTop = 14, kBottom = 48;

double to_unit(const Axis& axis, double v) {
  if (axis.log) return (std::log10(v) - std::log10(axis.lo)) / (std::log10(axis.hi) - std::log10(axis.lo));
  return (v - axis.lo) / (axis.hi - axis.lo);
}
double px(const Axis& x, double v) { return kLeft + to_unit(x, v) * (kPlotWidth - kLeft - kRight); }
double py(const Axis& y, double v) { return kPlotHeight - kBottom - to_unit(y, v) * (kPlotHeight - kTop - kBottom); }

// About five round values (1, 2 or 5 times a power of ten apart) in [lo, hi].
std::vector<double> linear_ticks(double lo, double hi) {
  double raw = (hi - lo) / 5.0;
  double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {2.0, 5.0, 10.0}) {
    if (step >= raw) break;
    step = m * magnitude;
  }
  std::vector<double> ticks;
  for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  return ticks;
}

// Powers of ten, with 2x and 5x between them when the range spans less than
// two decades.
std::vector<double> log_ticks(double lo, double hi) {
  std::vector<double> ticks;
  bool fine = std::log10(hi / lo) < 2.0;
  for (int e = static_cast<int>(std::floor(std::log10(lo))); e <= static_cast<int>(std::ceil(std::log10(hi))); ++e) {
    for (double m : {1.0, 2.0, 5.0}) {
      if (m != 1.0 && !fine) continue;
      double v = m * std::pow(10.0, e);
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) ticks.push_back(v);
    }
  }
  return ticks;
}

std::string svg_plot(const std::string& title, const Axis& x, const Axis& y, const std::vector<Series>& series,
                     const std::vector<Marker>& markers) {
  std::string svg = printf_string(
      "<svg class=\"plot\" role=\"img\" aria-label=\"%s\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\">\n",
      escape_html(title).c_str(), kPlotWidth, kPlotHeight, kPlotWidth, kPlotHeight);
  double x0 = kLeft, x1 = kPlotWidth - kRight, y0 = kPlotHeight - kBottom, y1 = kTop;
  svg += printf_string("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fff\" stroke=\"#444\"/>\n", x0,
                       y1, x1 - x0, y0 - y1);
  for (double t : x.log ? log_ticks(x.lo, x.hi) : linear_ticks(x.lo, x.hi)) {
    double p = px(x, t);
    svg += printf_string("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>", p, y1, p, y0);
    svg += printf_string("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" class=\"tick\">%g</text>\n", p, y0 + 16, t);
  }
  for (double t : y.log ? log_ticks(y.lo, y.hi) : linear_ticks(y.lo, y.hi)) {
    double p = py(y, t);
    svg += printf_string("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>", x0, p, x1, p);
    svg += printf_string("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" class=\"tick\">%g</text>\n", x0 - 5, p + 4, t);
  }
  svg += printf_string("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" class=\"axis\">%s</text>\n", (x0 + x1) / 2,
                       kPlotHeight - 10, escape_html(x.label).c_str());
  svg += printf_string(
      "<text x=\"14\" y=\"%.1f\" text-anchor=\"middle\" class=\"axis\" transform=\"rotate(-90 14 %.1f)\">%s</text>\n",
      (y0 + y1) / 2, (y0 + y1) / 2, escape_html(y.label).c_str());
  for (const auto& s : series) {
    if (s.points.empty()) continue;
    std::string coords;
    for (const auto& [vx, vy] : s.points) coords += printf_string("%.1f,%.1f ", px(x, vx), py(y, vy));
    coords.pop_back();
    svg += "<polyline fill=\"none\" stroke=\"" + s.colour + "\" stroke-width=\"" + (s.dashed ? "1" : "1.8") + "\"" +
           (s.dashed ? " stroke-dasharray=\"4 3\"" : "") + " points=\"" + coords + "\"/>\n";
  }
  for (const auto& m : markers) {
    double mx = px(x, m.x), my = py(y, m.y);
    svg += printf_string("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>", mx, my, m.colour.c_str());
    // Labels go on the side with more room, so they stay inside the frame.
    bool left = mx > (x0 + x1) / 2;
    svg += printf_string("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" class=\"tick\">%s</text>\n",
                         left ? mx - 7 : mx + 7, my + (my < y1 + 20 ? 14 : -7), left ? "end" : "start",
                         escape_html(m.label).c_str());
  }
  return svg + "</svg>\n";
}

std::string loss_section(const std::vector<TrainPoint>& curve) {
  std::string html = "<section id=\"loss\">\n<h2>Training loss</h2>\n";
  std::vector<std::pair<double, double>> points;
  for (const auto& p : curve) {
    if (std::isfinite(p.loss)) points.emplace_back(static_cast<double>(p.step), p.loss);
  }
  if (points.empty()) return html + "<p>No training log was given.</p>\n</section>\n";

  bool log_y = std::all_of(points.begin(), points.end(), [](const auto& p) { return p.second > 0.0; });
  auto [xmin, xmax] = std::minmax_element(points.begin(), points.end());
  auto [ymin, ymax] = std::minmax_element(points.begin(), points.end(),
                                          [](const auto& a, const auto& b) { return a.second < b.second; });
  Axis x{"step", xmin->first, xmax->first, false};
  if (x.hi <= x.lo) x.hi = x.lo + 1;
  Axis y{log_y ? "loss (log scale)" : "loss", ymin->second, ymax->second, log_y};
  if (log_y) {
    y.lo = std::pow(10.0, std::floor(std::log10(y.lo)));
    y.hi = std::pow(10.0, std::ceil(std::log10(y.hi)));
    if (y.hi <= y.lo) y.hi = y.lo * 10;
  } else if (y.hi <= y.lo) {
    y.lo -= 0.5;
    y.hi += 0.5;
  }
  html += svg_plot("training loss by step", x, y, {Series{points, "#1f5fbf", false}}, {});
  std::size_t skipped = curve.size() - points.size();
  html += printf_string("<p class=\"note\">%zu points, steps %g to %g", points.size(), xmin->first, xmax->first);
  if (skipped > 0) html += printf_string("; %zu step(s) with a non-finite loss left out", skipped);
  return html + ".</p>\n</section>\n";
}

std::string curves_section(const EvalReport& eval) {
  std::string html = "<section id=\"curves\">\n<h2>ROC and precision-recall curves</h2>\n";
  html += "<p class=\"note\">Image-level, from the maximum pixel probability of each image.</p>\n";
  if (!eval.auroc) {
    return html + "<p>n/a: the curves need both defective and clean images.</p>\n</section>\n";
  }
  std::vector<OperatingPoint> points = operating_points(eval.images);
  auto pos = static_cast<double>(eval.n_defective), neg = static_cast<double>(eval.n_clean);

  Series roc{{}, "#1f5fbf", false};
  for (const auto& p : points) roc.points.emplace_back(static_cast<double>(p.fp) / neg, static_cast<double>(p.tp) / pos);
  // Precision-recall as the steps that average precision sums.
  Series pr{{}, "#1f5fbf", false};
  for (std::size_t j = 1; j < points.size(); ++j) {
    double precision = static_cast<double>(points[j].tp) / static_cast<double>(points[j].tp + points[j].fp);
    pr.points.emplace_back(static_cast<double>(points[j - 1].tp) / pos, precision);
    pr.points.emplace_back(static_cast<double>(points[j].tp) / pos, precision);
  }
  std::vector<Marker> roc_markers, pr_markers;
  // operating_points()'s thresholds are not the fixed ones, so the markers
  // come from the per-threshold counts.
  const ThresholdResult& half = eval.thresholds[kHalfThresholdIndex];
  std::string half_label = printf_string("score > %g", static_cast<double>(half.threshold));
  roc_markers.push_back({static_cast<double>(half.fp) / neg, static_cast<double>(half.tp) / pos, "#c0392b", half_label});
  if (half.tp + half.fp > 0) {
    pr_markers.push_back({static_cast<double>(half.tp) / pos,
                          static_cast<double>(half.tp) / static_cast<double>(half.tp + half.fp), "#c0392b", half_label});
  }
  const BestF1& best = *eval.best_f1;
  pr_markers.push_back({best.recall, best.precision, "#27803b", printf_string("best F1 %.3f", best.f1)});

  Series chance{{{0.0, 0.0}, {1.0, 1.0}}, "#999", true};
  html += "<div class=\"plots\">\n<figure>";
  html += svg_plot("ROC curve", Axis{"false positive rate", 0, 1, false}, Axis{"true positive rate", 0, 1, false},
                   {chance, roc}, roc_markers);
  html += "<figcaption>ROC, AUROC " + format_optional(eval.auroc) + "</figcaption></figure>\n<figure>";
  Series baseline{{{0.0, pos / (pos + neg)}, {1.0, pos / (pos + neg)}}, "#999", true};
  html += svg_plot("precision-recall curve", Axis{"recall", 0, 1, false}, Axis{"precision", 0, 1, false},
                   {baseline, pr}, pr_markers);
  html += "<figcaption>Precision-recall, average precision " + format_optional(eval.average_precision) +
          "</figcaption></figure>\n</div>\n";
  return html + "</section>\n";
}

// ---------------------------------------------------------------- tables

std::string metrics_section(const EvalReport& eval) {
  std::string html = "<section id=\"metrics\">\n<h2>Metrics</h2>\n<ul class=\"summary\">\n";
  html += "<li>Images: " + std::to_string(eval.images.size()) + " (" + std::to_string(eval.n_defective) + " defective, " +
          std::to_string(eval.n_clean) + " clean)</li>\n";
  html += "<li>AUROC: " + format_optional(eval.auroc) + "</li>\n";
  html += "<li>Average precision: " + format_optional(eval.average_precision) + "</li>\n";
  if (eval.best_f1) {
    const auto& b = *eval.best_f1;
    html += printf_string(
        "<li>Best F1: %.4f at score &gt; %.6g (precision %.4f, recall %.4f; TP %lld, FP %lld, FN %lld, TN %lld)</li>\n",
        b.f1, static_cast<double>(b.point.threshold), b.precision, b.recall, static_cast<long long>(b.point.tp),
        static_cast<long long>(b.point.fp), static_cast<long long>(b.point.fn), static_cast<long long>(b.point.tn));
  } else {
    html += "<li>Best F1: n/a (no defective image)</li>\n";
  }
  const auto& c = eval.best_cost;
  html += printf_string("<li>Lowest DAGM cost (%lld&times;FN + %lld&times;FP): %lld at score &gt; %.6g (FN %lld, FP %lld)</li>\n",
                        static_cast<long long>(kDagmMissCost), static_cast<long long>(kDagmFalseAlarmCost),
                        static_cast<long long>(c.cost), static_cast<double>(c.point.threshold),
                        static_cast<long long>(c.point.fn), static_cast<long long>(c.point.fp));
  html += "</ul>\n";

  html += "<table class=\"metrics\">\n<thead><tr><th>threshold</th><th>Dice (all)</th><th>Dice (defective)</th>"
          "<th>TP</th><th>TN</th><th>FP</th><th>FN</th><th>TPR</th><th>TNR</th></tr></thead>\n<tbody>\n";
  for (const auto& row : eval.thresholds) {
    html += printf_string("<tr><td>%g</td>", static_cast<double>(row.threshold));
    html += "<td>" + format_optional(row.dice_all) + "</td><td>" + format_optional(row.dice_defective) + "</td>";
    for (int64_t n : {row.tp, row.tn, row.fp, row.fn}) html += "<td>" + std::to_string(n) + "</td>";
    html += "<td>" + format_optional(row.tpr) + "</td><td>" + format_optional(row.tnr) + "</td></tr>\n";
  }
  html += "</tbody>\n</table>\n";
  html += "<p class=\"note\">Dice per image: (2|A&cap;B| + 1e-5) / (|A| + |B| + 1e-5) with mask and prediction "
          "binarised by value &gt; threshold (NVIDIA's \"IoU\"); an image is called defective when its maximum pixel "
          "probability &gt; threshold.</p>\n";
  return html + "</section>\n";
}

std::string run_info_section(const nlohmann::json& info) {
  if (info.is_null() || info.empty()) return "";
  std::string html = "<section id=\"run\">\n<h2>Run</h2>\n";
  if (!info.is_object()) return html + "<pre>" + escape_html(info.dump(2)) + "</pre>\n</section>\n";
  html += "<table class=\"run\">\n";
  for (const auto& [key, value] : info.items()) {
    html += "<tr><th>" + escape_html(key) + "</th><td>" +
            escape_html(value.is_string() ? value.get<std::string>() : value.dump()) + "</td></tr>\n";
  }
  return html + "</table>\n</section>\n";
}

// ---------------------------------------------------------------- gallery

std::string gallery_heading(GalleryCategory category) {
  switch (category) {
    case GalleryCategory::TruePositive: return "True positives (highest scores)";
    case GalleryCategory::FalsePositive: return "False positives (highest scores)";
    case GalleryCategory::FalseNegative: return "Misses (lowest scores)";
  }
  return "";
}

std::string gallery_section(const std::vector<GalleryItem>& gallery, float threshold) {
  std::string html = "<section id=\"gallery\">\n<h2>Gallery</h2>\n";
  html += printf_string(
      "<p class=\"note\">At threshold %g. Red tint and outline: predicted region (probability &gt; %g); "
      "green outline: labelled region.</p>\n",
      static_cast<double>(threshold), static_cast<double>(threshold));
  for (auto category : {GalleryCategory::TruePositive, GalleryCategory::FalsePositive, GalleryCategory::FalseNegative}) {
    html += "<h3 id=\"gallery-" + to_string(category) + "\">" + gallery_heading(category) + "</h3>\n<div class=\"gallery\">\n";
    bool any = false;
    for (const auto& item : gallery) {
      if (item.category != category) continue;
      any = true;
      html += "<figure><img alt=\"" + escape_html(item.file) + "\" src=\"data:image/png;base64," +
              base64_encode(item.png) + "\"><figcaption>" + escape_html(item.file) + "<br>" +
              (item.is_defective ? "defective" : "clean") +
              printf_string(", score %.4f", static_cast<double>(item.score)) + "</figcaption></figure>\n";
    }
    if (!any) html += "<p>none</p>\n";
    html += "</div>\n";
  }
  return html + "</section>\n";
}

constexpr const char* kStyle = R"(body{font-family:sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:.25em .6em}
table.metrics td{text-align:right;font-variant-numeric:tabular-nums}table.run th{text-align:left;background:#f4f4f4}
.note{color:#555;font-size:.9em}.plots{display:flex;flex-wrap:wrap;gap:1em}
svg.plot text{font-family:sans-serif}svg.plot .tick{font-size:11px;fill:#333}svg.plot .axis{font-size:13px;fill:#111}
.gallery{display:flex;flex-wrap:wrap;gap:.8em}figure{margin:0}
.gallery figure{width:256px}.gallery img{width:256px;height:auto;display:block;border:1px solid #999}
figcaption{font-size:.85em;word-break:break-all}
)";

}  // namespace

std::vector<TrainPoint> read_loss_curve(const std::string& metrics_jsonl_path) {
  std::istringstream in(read_file(metrics_jsonl_path));
  std::vector<TrainPoint> curve;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json entry;
    try {
      entry = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      throw Error(line_error(metrics_jsonl_path, number, std::string("malformed JSON: ") + e.what()));
    }
    if (!entry.is_object()) throw Error(line_error(metrics_jsonl_path, number, "expected a JSON object"));
    auto loss = entry.find("loss");
    if (loss == entry.end()) continue;
    TrainPoint point;
    if (loss->is_null()) {
      point.loss = std::numeric_limits<double>::quiet_NaN();
    } else if (loss->is_number()) {
      point.loss = loss->get<double>();
    } else {
      throw Error(line_error(metrics_jsonl_path, number, "\"loss\" is neither a number nor null"));
    }
    auto step = entry.find("step");
    if (step == entry.end() || !step->is_number_integer()) {
      throw Error(line_error(metrics_jsonl_path, number, "a line with \"loss\" needs an integer \"step\""));
    }
    point.step = step->get<int64_t>();
    curve.push_back(point);
  }
  return curve;
}

std::string to_string(GalleryCategory category) {
  switch (category) {
    case GalleryCategory::TruePositive: return "TP";
    case GalleryCategory::FalsePositive: return "FP";
    case GalleryCategory::FalseNegative: return "FN";
  }
  throw Error("unknown gallery category " + std::to_string(static_cast<int>(category)));
}

std::vector<GalleryPick> select_gallery(const EvalReport& report, float threshold, int per_category) {
  if (per_category < 0) throw Error("gallery: per_category must be >= 0, got " + std::to_string(per_category));
  std::vector<std::size_t> tp, fp, fn;
  for (std::size_t i = 0; i < report.images.size(); ++i) {
    const auto& image = report.images[i];
    bool called = image.score > threshold;
    if (called) (image.is_defective ? tp : fp).push_back(i);
    if (!called && image.is_defective) fn.push_back(i);
  }
  auto score = [&](std::size_t i) { return report.images[i].score; };
  auto by_score_down = [&](std::size_t a, std::size_t b) { return score(a) > score(b); };
  auto by_score_up = [&](std::size_t a, std::size_t b) { return score(a) < score(b); };
  std::stable_sort(tp.begin(), tp.end(), by_score_down);
  std::stable_sort(fp.begin(), fp.end(), by_score_down);
  std::stable_sort(fn.begin(), fn.end(), by_score_up);

  std::vector<GalleryPick> picks;
  for (auto [indices, category] : {std::pair{&tp, GalleryCategory::TruePositive},
                                   std::pair{&fp, GalleryCategory::FalsePositive},
                                   std::pair{&fn, GalleryCategory::FalseNegative}}) {
    std::size_t n = std::min(indices->size(), static_cast<std::size_t>(per_category));
    for (std::size_t k = 0; k < n; ++k) picks.push_back({(*indices)[k], category});
  }
  return picks;
}

std::string render_html_report(const ReportInputs& inputs) {
  std::string html = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  html += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  html += "<title>" + escape_html(inputs.title) + "</title>\n<style>\n" + kStyle + "</style>\n</head>\n<body>\n";
  html += "<h1>" + escape_html(inputs.title) + "</h1>\n";
  html += run_info_section(inputs.run_info);
  html += metrics_section(inputs.eval);
  html += loss_section(inputs.loss_curve);
  html += curves_section(inputs.eval);
  html += gallery_section(inputs.gallery, inputs.gallery_threshold);
  return html + "</body>\n</html>\n";
}

}  // namespace unetind
