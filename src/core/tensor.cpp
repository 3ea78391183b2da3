#include "unetind/tensor.h"

#include "unetind/error.h"

namespace unetind {

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw Error("negative dimension in shape " + shape_to_string(shape));
    if (__builtin_mul_overflow(n, d, &n))
      throw Error("shape " + shape_to_string(shape) + " has more elements than a 64-bit count holds");
  }
  return n;
}

std::string shape_to_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

void throw_file_error(const std::string& path, const std::string& what) { throw Error(path + ": " + what); }

}  // namespace unetind
