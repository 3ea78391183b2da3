#include <array>
#include <set>
#include <string_view>

#include "unetind/error.h"
#include "unetind/tf_checkpoint.h"

namespace unetind {

namespace {

constexpr std::string_view kModelScope = "UNet_v1/";

bool is_digits(std::string_view s) { return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos; }

// TF1 optimisers name a variable's slots "<variable>/<optimiser name>", made
// unique with "_1", "_2": the centered RMSProp NVIDIA trains with keeps three
// per variable, RMSProp, RMSProp_1 and RMSProp_2.
bool is_slot_name(std::string_view last) {
  static constexpr std::array<std::string_view, 8> kOptimisers = {
      "RMSProp", "Momentum", "Adam", "Adagrad", "Adadelta", "Ftrl", "LARSOptimizer", "ExponentialMovingAverage"};
  for (std::string_view opt : kOptimisers) {
    if (!last.starts_with(opt)) continue;
    std::string_view rest = last.substr(opt.size());
    if (rest.empty() || (rest.front() == '_' && is_digits(rest.substr(1)))) return true;
  }
  return false;
}

// Tensors a training run saves besides the model: optimiser slots, the step
// counter, Adam's beta powers, dynamic loss-scale state (AMP) and TF2's
// object graph.
bool is_training_state(std::string_view name) {
  static constexpr std::array<std::string_view, 7> kBookkeeping = {"global_step",
                                                                   "beta1_power",
                                                                   "beta2_power",
                                                                   "current_loss_scale",
                                                                   "good_steps",
                                                                   "loss_scale",
                                                                   "_CHECKPOINTABLE_OBJECT_GRAPH"};
  const size_t slash = name.rfind('/');
  const std::string_view last = slash == std::string_view::npos ? name : name.substr(slash + 1);
  if (slash != std::string_view::npos && is_slot_name(last)) return true;
  for (std::string_view b : kBookkeeping)
    if (last == b) return true;
  return false;
}

}  // namespace

TfImport import_tf_checkpoint(const std::string& path, const ModelConfig& config) {
  const TfCheckpoint checkpoint(path);
  const std::string source = checkpoint.index_path();
  TfImport result;
  result.checkpoint_prefix = checkpoint.prefix();

  // Whatever precedes "UNet_v1/" is where the model was placed (a module's
  // "module/", an outer name scope); it must be the same for every tensor.
  std::set<std::string> prefixes;
  for (const TfTensorInfo& t : checkpoint.tensors()) {
    const size_t at = t.name.find(kModelScope);
    if (at != std::string::npos && !is_training_state(t.name)) prefixes.insert(t.name.substr(0, at));
  }
  if (prefixes.size() > 1) {
    std::string list;
    for (const std::string& p : prefixes) list += (list.empty() ? "'" : ", '") + p + "'";
    throw_file_error(source, "model tensors under several prefixes (" + list + "); expected one model");
  }
  if (!prefixes.empty()) result.name_prefix = *prefixes.begin();

  std::vector<NamedTensor> tensors;
  std::string not_float;  // no model tensor has another dtype
  for (const TfTensorInfo& t : checkpoint.tensors()) {
    if (is_training_state(t.name)) {
      result.skipped.push_back(t.name);
    } else if (t.dtype != TfDtype::Float) {
      not_float += (not_float.empty() ? "" : ", ") + t.name + " (" + to_string(t.dtype) + ")";
    } else {
      std::string name = t.name;
      if (name.starts_with(result.name_prefix)) name.erase(0, result.name_prefix.size());
      tensors.push_back({std::move(name), checkpoint.read_float(t.name)});
    }
  }
  result.parameters.config = config;
  result.parameters.tensors = match_parameters(config, tensors, source);
  if (!not_float.empty()) throw_file_error(source, "unexpected tensor(s): " + not_float);
  return result;
}

}  // namespace unetind
