// safetensors (src/io/safetensors.cpp) and, behind it, the weights-file
// checks of load_parameters (metadata, names, shapes, values).
#include "fuzz_support.h"
#include "unetind/error.h"
#include "unetind/model.h"
#include "unetind/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace unetind;
  const std::string path = fuzz::input_file("input.safetensors", data, size);
  SafetensorsFile file;
  try {
    file = read_safetensors(path);
  } catch (const Error&) {
    return 0;
  }
  // Each tensor holds what its shape says, stored in a dtype the reader
  // knows; a written copy reads back the same.
  for (const NamedTensor& t : file.tensors) {
    if (static_cast<int64_t>(t.tensor.data.size()) != shape_numel(t.tensor.shape))
      fuzz::finding("tensor '" + t.name + "' holds " + std::to_string(t.tensor.data.size()) + " values for shape " +
                    shape_to_string(t.tensor.shape));
    const auto dtype = file.stored_dtypes.find(t.name);
    if (dtype == file.stored_dtypes.end() ||
        (dtype->second != "F32" && dtype->second != "BF16" && dtype->second != "F16"))
      fuzz::finding("tensor '" + t.name + "' has no stored dtype");
  }
  const std::string copy = (fuzz::scratch_path() / "copy.safetensors").string();
  write_safetensors(copy, file.tensors, file.metadata);
  const SafetensorsFile again = read_safetensors(copy);
  if (again.tensors.size() != file.tensors.size() || again.metadata != file.metadata)
    fuzz::finding("the written copy differs");
  for (size_t i = 0; i < file.tensors.size(); ++i)
    if (!fuzz::same_bits(file.tensors[i].tensor.data, again.tensors[i].tensor.data))
      fuzz::finding("tensor '" + file.tensors[i].name + "' changed in the written copy");
  try {
    load_parameters(path);
  } catch (const Error&) {
  }
  return 0;
}
