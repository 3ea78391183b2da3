// The operating threshold travels with the model: the image-level decision
// threshold that `evaluate --set-threshold` chose, with its evidence (the
// data, split, rule and what it achieved there), kept in the weights file's
// metadata. predict, serve, the Python module and the C API use it unless
// told another, and say where the threshold they use came from.
#pragma once
#include <map>
#include <optional>
#include <string>

#include "unetind/metrics.h"
#include "unetind/model.h"

namespace unetind {

// The threshold where neither the caller nor the model file gives one.
constexpr float kDefaultThreshold = 0.5f;

struct OperatingThreshold {
  float threshold = kDefaultThreshold;
  std::string rule;    // "best-f1", "dagm-cost", or "value" (a number given by hand)
  std::string metric;  // what the rule optimised: "f1", "dagm_cost"; "" for a given value
  double value = 0;    // that metric's value at the threshold
  // The evidence: what it was chosen on, and how it splits those images.
  std::string data;
  int class_id = 0;
  std::string split;
  OperatingPoint point;  // TP, FP, TN, FN at the threshold
  double f1 = 0;
  int64_t dagm_cost = 0;
};

// The threshold that `rule` picks from an evaluation: "best-f1" (the best
// F1 over the images), "dagm-cost" (the lowest DAGM 2007 cost), or a number
// in [0, 1]. Throws Error for another rule, or for best-f1 without a
// defective image. data, class_id and split are left for the caller.
OperatingThreshold choose_operating_threshold(const EvalReport& report, const std::string& rule);
// Throws that Error for a rule that is none of these, before any evaluation.
void check_threshold_rule(const std::string& rule);

// The metadata keys it is stored under: the threshold (its shortest
// decimal) and the evidence (JSON).
inline constexpr const char* kThresholdKey = "operating_threshold";
inline constexpr const char* kThresholdEvidenceKey = "operating_threshold_evidence";

// The threshold a weights file's metadata holds, if any. A malformed one is
// an Error naming `path`: a damaged decision rule must not pass unnoticed.
std::optional<OperatingThreshold> operating_threshold_from(const std::map<std::string, std::string>& metadata,
                                                           const std::string& path);

// Writes `threshold` into the weights file at `path`, atomically, its
// tensors kept byte for byte. `evaluated` are the weights it was chosen for:
// a file that no longer holds them (retrained meanwhile) is refused.
void store_operating_threshold(const std::string& path, const OperatingThreshold& threshold,
                               const Parameters& evaluated);

// What `evaluate --set-threshold RULE` does once the evaluation is done:
// the threshold `rule` picks from `report`, an evaluation of `split` of
// class `class_id` of `data`, stored with that evidence in the weights file
// at `path` (store_operating_threshold). Returns what was stored.
OperatingThreshold set_operating_threshold(const std::string& path, const EvalReport& report, const std::string& rule,
                                           const std::string& data, int class_id, const std::string& split,
                                           const Parameters& evaluated);

// "0.4321 (best-f1 on the Test split of data/ class 1: F1 0.952; 70 TP, 2 FP, 78 TN, 0 FN)"
std::string describe(const OperatingThreshold& threshold);

// The weights and the threshold stored with them, from one read of the file.
struct LoadedModel {
  Parameters parameters;
  std::optional<OperatingThreshold> threshold;
};
LoadedModel load_model(const std::string& path);

// The threshold a program uses and where it came from: `given` (the
// caller's, `given_by` names it: "--threshold"), else the model file's,
// else kDefaultThreshold. Checks the value is in [0, 1].
struct ThresholdInUse {
  float value = kDefaultThreshold;
  std::string source;  // "--threshold", "the model file: <describe>", "the default (the model file has none)"
};
ThresholdInUse threshold_in_use(std::optional<float> given, const std::string& given_by,
                                const std::optional<OperatingThreshold>& from_model);

}  // namespace unetind
