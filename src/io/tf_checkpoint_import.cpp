#include <array>
#include <filesystem>
#include <set>
#include <string_view>

#include "unetind/error.h"
#include "unetind/tf_checkpoint.h"

namespace unetind {

namespace {

constexpr std::string_view kModelScope = "UNet_v1/";

bool is_digits(std::string_view s) { return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos; }

std::string_view last_component(std::string_view name) {
  const size_t slash = name.rfind('/');
  return slash == std::string_view::npos ? name : name.substr(slash + 1);
}

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

// Tensors a training run saves besides the model: optimiser slots (TF2 keys
// them under .OPTIMIZER_SLOT), the step counter, Adam's beta powers, dynamic
// loss-scale state (AMP), and TF2's object graph and save counter.
bool is_training_state(std::string_view name) {
  if (name.find("/.OPTIMIZER_SLOT/") != std::string_view::npos) return true;
  static constexpr std::array<std::string_view, 8> kBookkeeping = {"global_step",
                                                                   "beta1_power",
                                                                   "beta2_power",
                                                                   "current_loss_scale",
                                                                   "good_steps",
                                                                   "loss_scale",
                                                                   "save_counter",
                                                                   "_CHECKPOINTABLE_OBJECT_GRAPH"};
  const std::string_view last = last_component(name);
  if (last.size() < name.size() && is_slot_name(last)) return true;
  for (std::string_view b : kBookkeeping)
    if (last == b) return true;
  return false;
}

// RMSProp's slots (RMSProp, RMSProp_1, ...) of a model variable, wherever the
// optimiser's scope put them: the name from the model scope on, or "".
std::string rmsprop_slot_name(std::string_view name) {
  const std::string_view last = last_component(name);
  const size_t at = name.find(kModelScope);
  if (at == std::string_view::npos || !last.starts_with("RMSProp") || !is_slot_name(last)) return "";
  return std::string(name.substr(at));
}

}  // namespace

bool is_tf_checkpoint_path(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  return fs::is_directory(path, ec) || fs::path(path).filename() == "checkpoint" || path.ends_with(".index") ||
         fs::exists(path + ".index", ec);
}

TfImport import_tf_checkpoint(const std::string& path, const ModelConfig& config, bool with_optimizer_state) {
  const TfCheckpoint checkpoint(path);
  const std::string source = checkpoint.index_path();
  const std::map<std::string, std::string> tf2_names = tf2_variable_names(checkpoint);
  auto name_of = [&](const TfTensorInfo& t) {
    auto it = tf2_names.find(t.name);
    return it == tf2_names.end() ? t.name : it->second;
  };
  auto is_training = [&](const TfTensorInfo& t) { return is_training_state(t.name) || is_training_state(name_of(t)); };
  TfImport result;
  result.checkpoint_prefix = checkpoint.prefix();

  // Whatever precedes "UNet_v1/" is where the model was placed (a module's
  // "module/", an outer name scope); it must be the same for every tensor.
  std::set<std::string> prefixes;
  for (const TfTensorInfo& t : checkpoint.tensors()) {
    const std::string name = name_of(t);
    const size_t at = name.find(kModelScope);
    if (at != std::string::npos && !is_training(t)) prefixes.insert(name.substr(0, at));
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
    const std::string name = name_of(t);
    if (is_training(t)) {
      result.skipped.push_back(t.name);
      if (!with_optimizer_state) continue;
      const std::string slot = rmsprop_slot_name(name);
      if (!slot.empty() && t.dtype == TfDtype::Float) result.optimizer_slots.push_back({slot, checkpoint.read_float(t.name)});
      if (last_component(name) == "global_step" && t.dtype == TfDtype::Int64 && t.shape.empty())
        result.global_step = checkpoint.read_int64(t.name).front();
    } else if (t.dtype != TfDtype::Float) {
      not_float += (not_float.empty() ? "" : ", ") + name + " (" + to_string(t.dtype) + ")";
    } else {
      std::string model_name = name;
      if (model_name.starts_with(result.name_prefix)) model_name.erase(0, result.name_prefix.size());
      tensors.push_back({std::move(model_name), checkpoint.read_float(t.name)});
    }
  }
  result.parameters.config = config;
  result.parameters.tensors = match_parameters(config, tensors, source);
  if (!not_float.empty()) throw_file_error(source, "unexpected tensor(s): " + not_float);
  return result;
}

Parameters load_weights(const std::string& path, const ModelConfig& config) {
  if (is_tf_checkpoint_path(path)) return import_tf_checkpoint(path, config).parameters;
  Parameters params = load_parameters(path);
  if (params.config.variant != config.variant || params.config.activation != config.activation)
    throw_file_error(path, "holds a " + to_string(params.config.variant) + " " + to_string(params.config.activation) +
                               " model, not " + to_string(config.variant) + " " + to_string(config.activation));
  return params;
}

}  // namespace unetind
