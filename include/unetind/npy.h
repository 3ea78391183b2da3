// NumPy .npy files (format version 1.0), float32 little-endian, C order.
#pragma once
#include <string>

#include "unetind/tensor.h"

namespace unetind {

void write_npy(const std::string& path, const Tensor& tensor);  // atomic
Tensor read_npy(const std::string& path);  // float32 ('<f4') C-order only; Error otherwise

}  // namespace unetind
