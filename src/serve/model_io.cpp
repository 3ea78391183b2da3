#include "serve/model_io.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "unetind/inspection.h"
#include "unetind/model.h"
#include "unetind/png.h"

namespace unetind::serve {

using nlohmann::json;

const char* const kOutputNames[4] = {"probabilities", "mask", "defect_score", "is_defective"};

namespace {

template <typename T>
std::string raw_bytes(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

}  // namespace

ImageBatch images_from_request(const InferRequest& request, int size, int max_batch) {
  if (request.inputs.size() != 1 || request.inputs[0].name != kInputName) {
    std::string names;
    for (const InputTensor& t : request.inputs) names += (names.empty() ? "'" : ", '") + t.name + "'";
    throw RequestError(std::string("the model takes one input, '") + kInputName + "'; the request has " + names);
  }
  const InputTensor& t = request.inputs[0];
  const std::string named = std::string("input '") + kInputName + "'";
  if (t.datatype != "FP32" && t.datatype != "UINT8")
    throw RequestError(named + ": datatype must be FP32 (scaled to [-1, 1]) or UINT8 (raw pixels), not " + t.datatype);
  if (t.shape.size() != 4 || t.shape[3] != 1 || t.shape[0] < 1 || t.shape[1] < 1 || t.shape[2] < 1)
    throw RequestError(named + ": shape must be [N, H, W, 1] with N, H, W >= 1, not " + shape_to_string(t.shape));
  if (t.shape[0] > max_batch)
    throw RequestError(named + ": a batch of " + std::to_string(t.shape[0]) + " images is more than the model's " +
                       "max batch size " + std::to_string(max_batch));
  const int64_t h = t.shape[1], w = t.shape[2];
  if (h * w > max_image_pixels())
    throw RequestError(named + ": " + std::to_string(w) + "x" + std::to_string(h) + " images are larger than " +
                       std::to_string(max_image_pixels()) + " pixels, the server's --max-image-pixels");

  std::vector<float> values = input_values(t);
  const bool raw = t.datatype == "UINT8";
  ImageBatch b;
  b.count = static_cast<int>(t.shape[0]);
  const size_t per_image = static_cast<size_t>(h * w);
  b.inputs.reserve(b.count * static_cast<size_t>(size) * size);
  for (int i = 0; i < b.count; ++i) {
    // A lone image (the usual request) is the values themselves.
    std::vector<float> image = b.count == 1 ? std::move(values)
                                            : std::vector<float>(values.begin() + i * per_image,
                                                                 values.begin() + (i + 1) * per_image);
    if (raw) {
      image = prepare_input(image, static_cast<int>(w), static_cast<int>(h), size);
    } else {
      for (size_t k = 0; k < image.size(); ++k)
        if (!std::isfinite(image[k]))
          throw RequestError(named + ": image " + std::to_string(i) + " holds a value that is not finite, at " +
                             "element " + std::to_string(k));
      image = crop_or_pad(image, static_cast<int>(w), static_cast<int>(h), size, size);
    }
    b.inputs.insert(b.inputs.end(), image.begin(), image.end());
    b.widths.push_back(static_cast<int>(w));
    b.heights.push_back(static_cast<int>(h));
  }
  return b;
}

float request_threshold(const InferRequest& request, float fallback) {
  auto it = request.parameters.find("threshold");
  if (it == request.parameters.end()) return fallback;
  const float t = it->is_number() ? it->get<float>() : -1.0f;
  if (!(t >= 0.0f && t <= 1.0f)) throw RequestError("parameter \"threshold\" must be a number from 0 to 1, not " + it->dump());
  return t;
}

std::vector<OutputTensor> outputs_for(const InferRequest& request, const ImageBatch& images,
                                      const std::vector<float>& probs, int size, float threshold) {
  std::vector<RequestedOutput> wanted = request.outputs;
  if (wanted.empty())
    for (const char* name : kOutputNames) wanted.push_back({name, std::nullopt});

  // The per-image answer (score, decision, mask) only when one is asked for:
  // it costs two crop-or-pads of the image.
  const bool summarise = std::any_of(wanted.begin(), wanted.end(), [](const RequestedOutput& w) {
    return w.name != "probabilities";
  });
  const size_t model_pixels = static_cast<size_t>(size) * size;
  std::vector<uint8_t> mask, decisions;
  std::vector<float> scores;
  for (int i = 0; summarise && i < images.count; ++i) {
    const Inspection r = inspect(probs.data() + i * model_pixels, size, images.widths[i], images.heights[i], threshold);
    for (float p : probabilities_in_model_view(r, size)) mask.push_back(p > threshold ? 255 : 0);
    scores.push_back(r.defect_score);
    decisions.push_back(r.is_defective ? 1 : 0);
  }

  const int64_t n = images.count;
  std::vector<OutputTensor> out;
  for (const RequestedOutput& w : wanted) {
    OutputTensor t;
    t.name = w.name;
    t.binary = w.binary.value_or(request.binary_outputs);
    if (w.name == "probabilities") {
      t.datatype = "FP32";
      t.shape = {n, size, size, 1};
      t.bytes = raw_bytes(probs);
    } else if (w.name == "mask") {
      t.datatype = "UINT8";
      t.shape = {n, size, size, 1};
      t.bytes = raw_bytes(mask);
    } else if (w.name == "defect_score") {
      t.datatype = "FP32";
      t.shape = {n};
      t.bytes = raw_bytes(scores);
    } else if (w.name == "is_defective") {
      t.datatype = "BOOL";
      t.shape = {n};
      t.bytes = raw_bytes(decisions);
    } else {
      throw RequestError("unknown output '" + w.name +
                         "' (the model has probabilities, mask, defect_score and is_defective)");
    }
    out.push_back(std::move(t));
  }
  return out;
}

json model_metadata(const std::string& name, const std::string& version, int size) {
  auto tensor = [](const char* n, const char* type, json shape) {
    return json{{"name", n}, {"datatype", type}, {"shape", std::move(shape)}};
  };
  return {{"name", name},
          {"versions", {version}},
          {"platform", "unet_industrial"},
          {"inputs", {tensor(kInputName, "FP32", {-1, -1, -1, 1})}},
          {"outputs",
           {tensor("probabilities", "FP32", {-1, size, size, 1}), tensor("mask", "UINT8", {-1, size, size, 1}),
            tensor("defect_score", "FP32", {-1}), tensor("is_defective", "BOOL", {-1})}}};
}

json model_config(const std::string& name, int size, int max_batch, int max_queue_delay_us, int max_queue) {
  auto tensor = [](const char* n, const char* type, json dims) {
    return json{{"name", n}, {"data_type", type}, {"dims", std::move(dims)}};
  };
  return {{"name", name},
          {"platform", "unet_industrial"},
          {"max_batch_size", max_batch},
          {"input", {tensor(kInputName, "TYPE_FP32", {-1, -1, 1})}},
          {"output",
           {tensor("probabilities", "TYPE_FP32", {size, size, 1}), tensor("mask", "TYPE_UINT8", {size, size, 1}),
            tensor("defect_score", "TYPE_FP32", json::array()), tensor("is_defective", "TYPE_BOOL", json::array())}},
          {"dynamic_batching",
           {{"max_queue_delay_microseconds", max_queue_delay_us},
            {"default_queue_policy", {{"max_queue_size", max_queue}}}}}};
}

}  // namespace unetind::serve
