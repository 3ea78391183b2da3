// The PyTorch golden fixture (tests/data/golden_tinyunet.safetensors, made by
// scripts/make_golden.py, whose docstring gives the full layout): TinyUNet at
// 32x32, batch 2, with its logits, losses, every gradient and one RMSProp
// step. Large tensors' gradients and updates are kept as a sample at the flat
// indices idx/<param>; values() hides the difference.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "unetind/safetensors.h"

namespace unetind::test {

std::string golden_path();  // UNETIND_TEST_DATA_DIR "/golden_tinyunet.safetensors"

// Flat indices into a parameter and the golden values there.
struct GoldenValues {
  std::vector<int64_t> index;
  std::vector<float> value;
};

class Golden {
 public:
  explicit Golden(const std::string& path = golden_path());

  // Throws Error naming the file and the tensor when it is missing.
  const Tensor& get(const std::string& name) const;
  float scalar(const std::string& name) const;  // a [1] tensor

  // The 46 parameters, checked by name and shape, in parameter order.
  const std::vector<NamedTensor>& parameters() const { return params_; }

  // `key` (e.g. "grad/adaptive_loss/" + param, "step1/" + param) in full or
  // at the sampled indices of `param`.
  GoldenValues values(const std::string& key, const std::string& param) const;

  const SafetensorsFile& file() const { return file_; }

 private:
  std::string path_;
  SafetensorsFile file_;
  std::vector<NamedTensor> params_;
};

}  // namespace unetind::test
