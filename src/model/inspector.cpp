#include "unetind/inspector.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "unetind/error.h"

namespace unetind {

namespace {

size_t bytes_per_pixel(PixelFormat format) { return format == PixelFormat::U8 ? 1 : sizeof(float); }

Predictor make_predictor(Parameters parameters, const InspectorOptions& o) {
  return Predictor(std::move(parameters), make_backend(o.device, o.threads), o.image_size, parse_precision(o.precision),
                   parse_conv_algorithm(o.conv));
}

}  // namespace

std::vector<float> prepare_pixels(const PixelView& p, int size) {
  if (!p.data) throw Error("no pixels given (a null buffer)");
  if (p.width < 1 || p.height < 1 || static_cast<int64_t>(p.width) > kMaxImagePixels / p.height)
    throw Error("an image of " + std::to_string(p.width) + "x" + std::to_string(p.height) +
                " pixels: each side must be at least 1 and the image at most " + std::to_string(kMaxImagePixels) +
                " pixels");
  const size_t row_bytes = static_cast<size_t>(p.width) * bytes_per_pixel(p.format);
  const size_t stride = p.row_stride == 0 ? row_bytes : p.row_stride;
  if (stride < row_bytes)
    throw Error("a row stride of " + std::to_string(stride) + " bytes is shorter than a row of " +
                std::to_string(p.width) + " pixels (" + std::to_string(row_bytes) + " bytes)");
  std::vector<float> values(static_cast<size_t>(p.width) * p.height);
  const auto* bytes = static_cast<const unsigned char*>(p.data);
  for (int y = 0; y < p.height; ++y) {
    const unsigned char* row = bytes + static_cast<size_t>(y) * stride;
    float* out = values.data() + static_cast<size_t>(y) * p.width;
    if (p.format == PixelFormat::U8) {
      for (int x = 0; x < p.width; ++x) out[x] = row[x];
    } else {
      std::memcpy(out, row, row_bytes);  // the caller's rows need not be float-aligned
      for (int x = 0; x < p.width; ++x)
        if (!std::isfinite(out[x]))
          throw Error("the pixel at x " + std::to_string(x) + ", y " + std::to_string(y) + " is not finite");
    }
  }
  if (p.format == PixelFormat::F32Scaled) return crop_or_pad(values, p.width, p.height, size, size);
  return prepare_input(values, p.width, p.height, size);
}

Inspector::Inspector(const std::string& weights_path, const InspectorOptions& options)
    : batch_(options.batch), predictor_([&] {
        if (options.batch < 1) throw Error("the batch size must be at least 1, not " + std::to_string(options.batch));
        LoadedModel model = load_model(weights_path);
        threshold_ = threshold_in_use(options.threshold, options.threshold_given_by, model.threshold);
        return make_predictor(std::move(model.parameters), options);
      }()) {}

ThresholdInUse Inspector::threshold() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return threshold_;
}

void Inspector::set_threshold(float value, const std::string& source) {
  check_threshold(value, "the threshold");
  std::lock_guard<std::mutex> lock(mutex_);
  threshold_ = ThresholdInUse{value, source};
}

void Inspector::run(const float* inputs, int64_t count, float* probs) {
  const size_t pixels = static_cast<size_t>(image_size()) * image_size();
  std::lock_guard<std::mutex> lock(mutex_);
  for (int64_t done = 0; done < count;) {
    const int chunk = static_cast<int>(std::min<int64_t>(batch_, count - done));
    predictor_.run(inputs + done * pixels, chunk, probs + done * pixels);
    done += chunk;
  }
}

Inspection Inspector::inspect(const PixelView& pixels) {
  const int size = image_size();
  const std::vector<float> input = prepare_pixels(pixels, size);
  std::vector<float> probs(input.size());
  run(input.data(), 1, probs.data());
  return unetind::inspect(probs.data(), size, pixels.width, pixels.height, threshold().value);
}

}  // namespace unetind
