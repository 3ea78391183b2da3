// Weights files: safetensors whose tensor names are NVIDIA's TF variable names
// and whose kernels are HWIO, with the variant and activation in the metadata.
#include <algorithm>
#include <cmath>
#include <map>

#include "unetind/calibration.h"
#include "unetind/error.h"
#include "unetind/model.h"

namespace unetind {

namespace {
const char* kMetaVariant = "variant";
const char* kMetaActivation = "activation";
const char* kMetaFormat = "format";

std::string meta_or(const std::map<std::string, std::string>& meta, const std::string& key, const std::string& dflt) {
  auto it = meta.find(key);
  return it == meta.end() ? dflt : it->second;
}
}  // namespace

std::vector<NamedTensor> match_parameters(const ModelConfig& config, const std::vector<NamedTensor>& tensors,
                                          const std::string& source) {
  std::map<std::string, const Tensor*> by_name;
  for (const NamedTensor& t : tensors) by_name[t.name] = &t.tensor;

  std::vector<NamedTensor> ordered;
  std::vector<std::string> missing;
  auto take = [&](const std::string& name, const Shape& shape) {
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      missing.push_back(name);
      return;
    }
    if (it->second->shape != shape)
      throw_file_error(source, "tensor '" + name + "' has shape " + shape_to_string(it->second->shape) +
                                   ", expected " + shape_to_string(shape) + " for a " + to_string(config.variant) +
                                   " model");
    const std::vector<float>& values = it->second->data;
    const auto bad = std::find_if(values.begin(), values.end(), [](float v) { return !std::isfinite(v); });
    if (bad != values.end())
      throw_file_error(source, "tensor '" + name + "' holds " + std::to_string(*bad) + " at element " +
                                   std::to_string(bad - values.begin()) +
                                   ": a model's weights must be finite (a training run that diverged?)");
    ordered.push_back({name, *it->second});
    by_name.erase(it);
  };
  for (const ConvSpec& c : build_graph(config).convs) {
    take(c.kernel_name(), {c.kernel, c.kernel, c.in_channels, c.out_channels});
    take(c.bias_name(), {c.out_channels});
  }
  if (!missing.empty()) {
    std::string list;
    for (size_t i = 0; i < missing.size() && i < 5; ++i) list += (i ? ", " : "") + missing[i];
    if (missing.size() > 5) list += ", ...";
    throw_file_error(source, std::to_string(missing.size()) + " model tensor(s) missing: " + list);
  }
  if (!by_name.empty()) {
    std::string list;
    for (const auto& [name, t] : by_name) list += (list.empty() ? "" : ", ") + name;
    throw_file_error(source, "unexpected tensor(s) for a " + to_string(config.variant) + " model: " + list);
  }
  return ordered;
}

Parameters load_parameters(const std::string& path) { return parameters_from(read_safetensors(path), path); }

Parameters parameters_from(const SafetensorsFile& file, const std::string& path) {
  Parameters p;
  try {
    p.config.variant = parse_variant(meta_or(file.metadata, kMetaVariant, "tinyUNet"));
    p.config.activation = parse_activation(meta_or(file.metadata, kMetaActivation, "relu"));
  } catch (const Error& e) {
    throw_file_error(path, std::string("bad metadata: ") + e.what());
  }
  p.tensors = match_parameters(p.config, file.tensors, path);
  p.source = path;
  if (auto calibration = read_int8_calibration(file, path))
    p.int8_calibration = std::make_shared<const Int8Calibration>(std::move(*calibration));
  return p;
}

void save_parameters(const std::string& path, const Parameters& params,
                     std::map<std::string, std::string> extra_metadata) {
  extra_metadata[kMetaVariant] = to_string(params.config.variant);
  extra_metadata[kMetaActivation] = to_string(params.config.activation);
  extra_metadata[kMetaFormat] = "unet-industrial";
  write_safetensors(path, params.tensors, extra_metadata);
}

}  // namespace unetind
