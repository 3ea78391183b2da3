#include "unetind/calibration.h"

#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_executor.h"
#include "io/crc32c.h"
#include "unetind/error.h"

namespace unetind {

namespace {
const char* kMetaCalibration = "int8_calibration";
}  // namespace

std::optional<Int8Calibration> read_int8_calibration(const SafetensorsFile& file, const std::string& path) {
  auto it = file.metadata.find(kMetaCalibration);
  if (it == file.metadata.end()) return std::nullopt;
  try {
    const nlohmann::json j = nlohmann::json::parse(it->second);
    Int8Calibration c;
    const nlohmann::json& ranges = j.at("ranges");
    if (!ranges.empty() && ranges.front().is_number())
      throw_file_error(path, "its int8 calibration has one range per activation, from an earlier version of this "
                             "program, which now keeps one per channel; calibrate it again");
    c.ranges = ranges.get<std::vector<std::vector<float>>>();
    c.images = j.at("images").get<int>();
    c.source = j.at("source").get<std::string>();
    c.weights_crc = j.at("weights_crc32c").get<uint32_t>();
    return c;
  } catch (const nlohmann::json::exception& e) {
    throw_file_error(path, std::string("malformed metadata '") + kMetaCalibration + "': " + e.what());
  }
}

uint32_t weights_crc(const Parameters& params) {
  uint32_t crc = 0;
  for (const NamedTensor& t : params.tensors)
    crc = crc32c::extend(crc, t.tensor.data.data(), t.tensor.data.size() * sizeof(float));
  return crc;
}

Int8Calibration calibrate_int8(const Parameters& params, const std::vector<float>& images, int count, int size,
                               std::string source) {
  if (count < 1) throw Error("int8 calibration needs at least one image");
  if (images.size() != size_t(count) * size * size)
    throw Error("int8 calibration: " + std::to_string(images.size()) + " values for " + std::to_string(count) +
                " image(s) of " + std::to_string(size) + "x" + std::to_string(size));
  Int8Calibration c;
  c.ranges = cpu::node_max_abs(build_graph(params.config), params.tensors, images.data(), count, size, size);
  c.images = count;
  c.source = std::move(source);
  c.weights_crc = weights_crc(params);
  return c;
}

void write_calibrated_model(const std::string& model_path, const std::string& out_path,
                            const Int8Calibration& calibration) {
  SafetensorsFile file = read_safetensors(model_path);
  nlohmann::json j;
  j["ranges"] = calibration.ranges;
  j["images"] = calibration.images;
  j["source"] = calibration.source;
  j["weights_crc32c"] = calibration.weights_crc;
  j["method"] = "max |value| of each channel of each activation in fp32";
  file.metadata[kMetaCalibration] = j.dump();
  write_safetensors(out_path, file.tensors, file.metadata);
}

const std::vector<std::vector<float>>& int8_ranges_of(const Parameters& params) {
  const std::string file = params.source.empty() ? "the model" : params.source;
  if (!params.int8_calibration)
    throw Error(file + ": no int8 calibration; make one with `unet-industrial calibrate --model " + file +
                " --data DIR --class N --out CALIBRATED.safetensors`");
  if (params.int8_calibration->weights_crc != weights_crc(params))
    throw Error(file + ": its int8 calibration was made for other weights (they changed after `calibrate`); "
                       "calibrate it again");
  return params.int8_calibration->ranges;
}

}  // namespace unetind
