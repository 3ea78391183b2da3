#include "unetind/operating_threshold.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "unetind/error.h"
#include "unetind/inspection.h"
#include "unetind/safetensors.h"

namespace unetind {

namespace {

using nlohmann::json;

// The shortest decimal that reads back to exactly this float.
std::string float_text(float value) {
  char buf[32];
  const auto res = std::to_chars(buf, buf + sizeof buf, value);
  return std::string(buf, res.ptr);
}

std::optional<float> parse_threshold(const std::string& text) {
  float value = 0;
  const auto res = std::from_chars(text.data(), text.data() + text.size(), value);
  if (res.ec != std::errc() || res.ptr != text.data() + text.size() || !(value >= 0.0f && value <= 1.0f))
    return std::nullopt;
  return value;
}

json evidence_json(const OperatingThreshold& t) {
  return {{"rule", t.rule},
          {"metric", t.metric},
          {"value", t.value},
          {"data", t.data},
          {"class", t.class_id},
          {"split", t.split},
          {"tp", t.point.tp},
          {"fp", t.point.fp},
          {"tn", t.point.tn},
          {"fn", t.point.fn},
          {"f1", t.f1},
          {"dagm_cost", t.dagm_cost}};
}

}  // namespace

void check_threshold_rule(const std::string& rule) {
  if (rule != "best-f1" && rule != "dagm-cost" && !parse_threshold(rule))
    throw Error("--set-threshold must be best-f1, dagm-cost or a number from 0 to 1, not '" + rule + "'");
}

OperatingThreshold choose_operating_threshold(const EvalReport& report, const std::string& rule) {
  check_threshold_rule(rule);
  OperatingThreshold t;
  t.rule = rule;
  if (rule == "best-f1") {
    if (!report.best_f1) throw Error("--set-threshold best-f1: the evaluated images hold no defective one");
    t.point = report.best_f1->point;
    t.metric = "f1";
    t.value = report.best_f1->f1;
  } else if (rule == "dagm-cost") {
    t.point = report.best_cost.point;
    t.metric = "dagm_cost";
    t.value = static_cast<double>(report.best_cost.cost);
  } else {
    t.rule = "value";
    t.point = operating_point_at(report.images, *parse_threshold(rule));
  }
  // operating_points() may put "none defective" just above 1 when a score is 1.
  t.threshold = std::min(t.point.threshold, 1.0f);
  t.point.threshold = t.threshold;
  t.f1 = f1_score(t.point);
  t.dagm_cost = dagm_cost(t.point);
  if (t.rule == "value") t.value = 0;
  return t;
}

std::optional<OperatingThreshold> operating_threshold_from(const std::map<std::string, std::string>& metadata,
                                                           const std::string& path) {
  const auto value = metadata.find(kThresholdKey);
  if (value == metadata.end()) return std::nullopt;
  auto bad = [&](const std::string& what) -> std::optional<OperatingThreshold> {
    throw_file_error(path, std::string("bad metadata '") + kThresholdKey + "': " + what);
  };
  OperatingThreshold t;
  const std::optional<float> threshold = parse_threshold(value->second);
  if (!threshold) return bad("'" + value->second + "' is not a number from 0 to 1");
  t.threshold = *threshold;
  t.point.threshold = *threshold;
  const auto evidence = metadata.find(kThresholdEvidenceKey);
  if (evidence == metadata.end()) return bad(std::string("no '") + kThresholdEvidenceKey + "' beside it");
  try {
    const json j = json::parse(evidence->second);
    t.rule = j.at("rule").get<std::string>();
    t.metric = j.at("metric").get<std::string>();
    t.value = j.at("value").get<double>();
    t.data = j.at("data").get<std::string>();
    t.class_id = j.at("class").get<int>();
    t.split = j.at("split").get<std::string>();
    t.point.tp = j.at("tp").get<int64_t>();
    t.point.fp = j.at("fp").get<int64_t>();
    t.point.tn = j.at("tn").get<int64_t>();
    t.point.fn = j.at("fn").get<int64_t>();
    t.f1 = j.at("f1").get<double>();
    t.dagm_cost = j.at("dagm_cost").get<int64_t>();
  } catch (const json::exception& e) {
    return bad(std::string("its evidence is not what evaluate writes: ") + e.what());
  }
  return t;
}

void store_operating_threshold(const std::string& path, const OperatingThreshold& threshold,
                               const Parameters& evaluated) {
  check_threshold(threshold.threshold, "the operating threshold");
  update_safetensors_metadata(path, [&](const SafetensorsFile& file, std::map<std::string, std::string>& metadata) {
    const Parameters now = parameters_from(file, path);
    bool same = now.tensors.size() == evaluated.tensors.size();
    for (size_t i = 0; same && i < now.tensors.size(); ++i)
      same = now.tensors[i].name == evaluated.tensors[i].name &&
             now.tensors[i].tensor.data == evaluated.tensors[i].tensor.data;
    if (!same)
      throw_file_error(path, "its weights changed since they were evaluated; the threshold was not stored "
                             "(evaluate again)");
    metadata[kThresholdKey] = float_text(threshold.threshold);
    metadata[kThresholdEvidenceKey] = evidence_json(threshold).dump();
  });
}

OperatingThreshold set_operating_threshold(const std::string& path, const EvalReport& report, const std::string& rule,
                                           const std::string& data, int class_id, const std::string& split,
                                           const Parameters& evaluated) {
  OperatingThreshold t = choose_operating_threshold(report, rule);
  t.data = data;
  t.class_id = class_id;
  t.split = split;
  store_operating_threshold(path, t, evaluated);
  return t;
}

std::string describe(const OperatingThreshold& t) {
  std::string text = float_text(t.threshold) + " (";
  text += t.rule == "value" ? "set by hand" : t.rule;
  text += " on the " + t.split + " split of " + t.data;
  if (t.class_id > 0) text += " class " + std::to_string(t.class_id);
  char figures[160];
  std::snprintf(figures, sizeof figures, ": F1 %.4g, DAGM cost %lld; %lld TP, %lld FP, %lld TN, %lld FN)", t.f1,
                static_cast<long long>(t.dagm_cost), static_cast<long long>(t.point.tp),
                static_cast<long long>(t.point.fp), static_cast<long long>(t.point.tn),
                static_cast<long long>(t.point.fn));
  return text + figures;
}

LoadedModel load_model(const std::string& path) {
  const SafetensorsFile file = read_safetensors(path);
  return LoadedModel{parameters_from(file, path), operating_threshold_from(file.metadata, path)};
}

ThresholdInUse threshold_in_use(std::optional<float> given, const std::string& given_by,
                                const std::optional<OperatingThreshold>& from_model) {
  ThresholdInUse t;
  if (given) {
    check_threshold(*given, given_by.c_str());
    t.value = *given;
    t.source = given_by;
  } else if (from_model) {
    t.value = from_model->threshold;
    t.source = "the model file: " + describe(*from_model);
  } else {
    t.source = "the default (the model file has none)";
  }
  return t;
}

}  // namespace unetind
