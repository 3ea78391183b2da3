#include "golden.h"

#include "unetind/error.h"
#include "unetind/model.h"

namespace unetind::test {

std::string golden_path() { return std::string(UNETIND_TEST_DATA_DIR) + "/golden_tinyunet.safetensors"; }

Golden::Golden(const std::string& path) : path_(path), file_(read_safetensors(path)) {
  std::vector<NamedTensor> params;
  for (const NamedTensor& t : file_.tensors)
    if (t.name.starts_with("UNet_v1/")) params.push_back(t);
  params_ = match_parameters(ModelConfig{}, params, path);
}

const Tensor& Golden::get(const std::string& name) const {
  const Tensor* t = file_.find(name);
  if (!t) throw_file_error(path_, "golden tensor '" + name + "' is missing");
  return *t;
}

float Golden::scalar(const std::string& name) const {
  const Tensor& t = get(name);
  if (t.numel() != 1) throw_file_error(path_, "golden tensor '" + name + "' is not a scalar");
  return t.data[0];
}

GoldenValues Golden::values(const std::string& key, const std::string& param) const {
  const Tensor& values = get(key);
  const Tensor& p = get(param);
  GoldenValues out;
  out.value = values.data;
  if (values.numel() == p.numel()) {
    for (int64_t i = 0; i < p.numel(); ++i) out.index.push_back(i);
    return out;
  }
  const Tensor& idx = get("idx/" + param);
  if (idx.numel() != values.numel())
    throw_file_error(path_, "golden tensor '" + key + "' has " + std::to_string(values.numel()) +
                                " values, neither the parameter's " + std::to_string(p.numel()) +
                                " nor the sample's " + std::to_string(idx.numel()));
  for (float f : idx.data) {
    const auto i = static_cast<int64_t>(f);
    if (static_cast<float>(i) != f || i < 0 || i >= p.numel())
      throw_file_error(path_, "golden tensor 'idx/" + param + "' holds a bad index " + std::to_string(f));
    out.index.push_back(i);
  }
  return out;
}

}  // namespace unetind::test
