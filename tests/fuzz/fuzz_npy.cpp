// NumPy .npy (src/io/npy.cpp): the header's dict literal and the data.
#include "fuzz_support.h"
#include "unetind/error.h"
#include "unetind/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace unetind;
  const std::string path = fuzz::input_file("input.npy", data, size);
  Tensor t;
  try {
    t = read_npy(path);
  } catch (const Error&) {
    return 0;
  }
  if (static_cast<int64_t>(t.data.size()) != shape_numel(t.shape))
    fuzz::finding(std::to_string(t.data.size()) + " values for shape " + shape_to_string(t.shape));
  // What we write, we read back the same. (A version 2.0 file's header may
  // be longer than the 1.0 header we write can hold: that one is refused.)
  const std::string copy = (fuzz::scratch_path() / "copy.npy").string();
  try {
    write_npy(copy, t);
  } catch (const Error&) {
    return 0;
  }
  const Tensor again = read_npy(copy);
  if (again.shape != t.shape || !fuzz::same_bits(again.data, t.data))
    fuzz::finding("the written copy differs");
  return 0;
}
