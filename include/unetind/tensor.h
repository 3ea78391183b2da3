// A dense, row-major float32 host tensor: the plain data that crosses every
// boundary of the library (files, backends, the CLI). Backends keep their own
// device or blocked layouts internally and convert at the edges.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace unetind {

using Shape = std::vector<int64_t>;

// Throws Error for a negative dimension, or a product past INT64_MAX (a
// corrupt file's shape must not wrap around to a plausible count).
int64_t shape_numel(const Shape& shape);
std::string shape_to_string(const Shape& shape);  // "[3, 3, 1, 32]"

struct Tensor {
  Shape shape;
  std::vector<float> data;

  Tensor() = default;
  explicit Tensor(Shape s, float fill = 0.0f) : shape(std::move(s)), data(shape_numel(shape), fill) {}

  int64_t numel() const { return static_cast<int64_t>(data.size()); }
};

}  // namespace unetind
