// A model ready to answer for images in the caller's memory, of any size:
// its weights, its Predictor and the threshold in use (the model file's, or
// the caller's). What the Python module and the C API hold. Safe to use from
// several threads: one forward pass runs at a time.
#pragma once
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "unetind/inspection.h"
#include "unetind/operating_threshold.h"
#include "unetind/predictor.h"

namespace unetind {

struct InspectorOptions {
  std::string device = "cpu";
  std::string precision = "fp32";
  std::string conv = "auto";
  int image_size = kModelImageSize;
  int threads = 0;                 // CPU threads, 0: every core
  int batch = 8;                   // images per forward pass at most
  std::optional<float> threshold;  // over the model file's
  std::string threshold_given_by = "the caller";  // names `threshold` in threshold().source
};

// How the caller's pixels are given.
enum class PixelFormat {
  U8,         // gray levels 0..255
  F32,        // gray levels as float, 0..255 (what read_image_gray gives)
  F32Scaled,  // already scaled to [-1, 1] (x / 127.5 - 1): the TF-Hub module's input
};

// One image in the caller's memory: `height` rows of `width` pixels,
// `row_stride` bytes from one row to the next (0: rows packed).
struct PixelView {
  const void* data = nullptr;
  PixelFormat format = PixelFormat::U8;
  int width = 0;
  int height = 0;
  size_t row_stride = 0;
};

// The size x size model input for one image: prepare_input's scaling (none
// for F32Scaled), then crop_or_pad. Throws Error for a null buffer, a size
// outside 1..kMaxImagePixels, a stride shorter than a row or a value that
// is not finite.
std::vector<float> prepare_pixels(const PixelView& pixels, int size);

class Inspector {
 public:
  // Throws Error naming the file, or the bad option.
  Inspector(const std::string& weights_path, const InspectorOptions& options);

  int image_size() const { return predictor_.image_size(); }
  ThresholdInUse threshold() const;
  // Checks `value` is in [0, 1]; `source` says where it came from.
  void set_threshold(float value, const std::string& source);

  // `count` model inputs (count x size x size, prepared) to probabilities of
  // the same layout, in forward passes of at most options.batch images.
  void run(const float* inputs, int64_t count, float* probs);

  // One image's answer in its own geometry, at the threshold in use.
  Inspection inspect(const PixelView& pixels);

 private:
  int batch_;
  mutable std::mutex mutex_;  // the Predictor and the threshold
  ThresholdInUse threshold_;
  Predictor predictor_;
};

}  // namespace unetind
