// The reference's input pipeline: x/127.5 - 1, then TF's
// resize_image_with_crop_or_pad. For an odd size difference the extra padded
// row/column goes after (bottom, right); a crop starts at (in - out) / 2
// rounded down.
#include <algorithm>

#include "unetind/error.h"
#include "unetind/model.h"

namespace unetind {

namespace {
// Source index = destination index + offset (positive: crop, negative: pad).
int crop_pad_offset(int in, int out) { return in >= out ? (in - out) / 2 : -((out - in) / 2); }
}  // namespace

std::vector<float> crop_or_pad(const std::vector<float>& values, int in_width, int in_height, int out_width,
                               int out_height) {
  if (static_cast<int64_t>(values.size()) != static_cast<int64_t>(in_width) * in_height)
    throw Error("crop_or_pad: value count does not match " + std::to_string(in_width) + "x" +
                std::to_string(in_height));
  std::vector<float> out(static_cast<size_t>(out_width) * out_height, 0.0f);
  const int off_y = crop_pad_offset(in_height, out_height);
  const int off_x = crop_pad_offset(in_width, out_width);
  // Each output row takes one run of its source row: [x0, x1) in the output.
  const int x0 = std::max(0, -off_x), x1 = std::min(out_width, in_width - off_x);
  for (int y = 0; y < out_height; ++y) {
    const int sy = y + off_y;
    if (sy < 0 || sy >= in_height || x0 >= x1) continue;
    const float* from = values.data() + static_cast<size_t>(sy) * in_width + (x0 + off_x);
    std::copy(from, from + (x1 - x0), out.begin() + static_cast<ptrdiff_t>(y) * out_width + x0);
  }
  return out;
}

std::vector<float> prepare_input(const std::vector<float>& pixels, int width, int height, int size) {
  std::vector<float> scaled(pixels.size());
  for (size_t i = 0; i < pixels.size(); ++i) scaled[i] = pixels[i] / 127.5f - 1.0f;
  return crop_or_pad(scaled, width, height, size, size);
}

}  // namespace unetind
