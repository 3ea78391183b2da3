// safetensors: an 8-byte little-endian header length, a JSON header
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the raw little-endian tensor bytes. We write F32; we read F32, BF16 and
// F16 (converted to float32). Every malformed file gives an Error naming the
// file and, where it applies, the tensor.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "unetind/tensor.h"

namespace unetind {

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

struct SafetensorsFile {
  std::vector<NamedTensor> tensors;                // in file order
  std::map<std::string, std::string> metadata;     // "__metadata__" (string values)
  std::map<std::string, std::string> stored_dtypes;  // tensor name -> "F32" | "BF16" | "F16", as in the file

  const Tensor* find(const std::string& name) const;
};

SafetensorsFile read_safetensors(const std::string& path);

// Written atomically, F32, tensors in the given order.
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata);

// Changes the metadata of the file at `path` and nothing else: every
// tensor's bytes stay as they are (BF16 stays BF16). `edit` gets the file as
// read, to check it (it may throw, and then nothing is written), and the
// metadata to change. Written atomically.
void update_safetensors_metadata(
    const std::string& path,
    const std::function<void(const SafetensorsFile& file, std::map<std::string, std::string>& metadata)>& edit);

}  // namespace unetind
