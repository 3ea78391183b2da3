// INT8 calibration: the range of every activation of a model on real images,
// stored in the weights file's metadata ("int8_calibration") so that one file
// carries everything `--precision int8` needs. The ranges are tied to the
// weights they were measured with (a CRC-32C of the tensors): a file whose
// weights changed afterwards is refused for int8, not run with stale scales.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "unetind/model.h"
#include "unetind/safetensors.h"

namespace unetind {

struct Int8Calibration {
  // Per graph node, per channel: the largest |value| of its fp32 output.
  std::vector<std::vector<float>> ranges;
  int images = 0;             // how many images it was measured on
  std::string source;         // where they came from, e.g. "DAGM class 1 Train (/data)"
  uint32_t weights_crc = 0;   // CRC-32C of the parameters' float bytes, in parameter order
};

// What a model file carries under "int8_calibration", or nullopt. Errors
// name `path` where the entry is malformed.
std::optional<Int8Calibration> read_int8_calibration(const SafetensorsFile& file, const std::string& path);

// The channel ranges of `params`' activations on `images` (count x size x size,
// prepared as for the model), measured in fp32 on the CPU.
Int8Calibration calibrate_int8(const Parameters& params, const std::vector<float>& images, int count, int size,
                               std::string source);

// CRC-32C of the parameters' float bytes in parameter order.
uint32_t weights_crc(const Parameters& params);

// `model_path` with the calibration added to its metadata (tensors and the
// rest of the metadata kept as they are), written atomically to `out_path`
// (which may be `model_path`).
void write_calibrated_model(const std::string& model_path, const std::string& out_path,
                            const Int8Calibration& calibration);

// The ranges an int8 executor for `params` takes; throws an Error naming the
// model file when it has no calibration or one made for other weights.
const std::vector<std::vector<float>>& int8_ranges_of(const Parameters& params);

}  // namespace unetind
