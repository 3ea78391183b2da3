#include "unetind/evaluation.h"

#include <filesystem>

#include "unetind/error.h"
#include "unetind/loader.h"
#include "unetind/overlay.h"
#include "unetind/image_io.h"
#include "unetind/png.h"

namespace unetind {

namespace {

bool has_pixel_labels(const std::vector<Sample>& samples) {
  for (const Sample& s : samples)
    if (s.defective && s.mask_path.empty()) return false;
  return true;
}

// Box-filter shrink by an integer factor, so a gallery of 512x512 overlays
// stays a few hundred kB.
RgbImage shrink(const RgbImage& img, int max_side) {
  const int factor = std::max(1, (std::max(img.width, img.height) + max_side - 1) / max_side);
  if (factor == 1) return img;
  RgbImage out;
  out.width = img.width / factor;
  out.height = img.height / factor;
  out.pixels.resize(static_cast<size_t>(out.width) * out.height * 3);
  for (int y = 0; y < out.height; ++y)
    for (int x = 0; x < out.width; ++x)
      for (int c = 0; c < 3; ++c) {
        int sum = 0;
        for (int dy = 0; dy < factor; ++dy)
          for (int dx = 0; dx < factor; ++dx)
            sum += img.pixels[(static_cast<size_t>(y * factor + dy) * img.width + (x * factor + dx)) * 3 + c];
        out.pixels[(static_cast<size_t>(y) * out.width + x) * 3 + c] = static_cast<uint8_t>(sum / (factor * factor));
      }
  return out;
}

}  // namespace

EvalReport evaluate_samples(Predictor& predictor, const std::vector<Sample>& samples,
                            const EvaluationOptions& options) {
  if (samples.empty()) throw Error("no images to evaluate");
  const int size = predictor.image_size();
  const size_t pixels = static_cast<size_t>(size) * size;
  const bool pixel_labels = has_pixel_labels(samples);
  Loader loader(samples, LoaderConfig{options.batch, size, false, false, false, 0, options.loader_threads, 2});
  MetricsAccumulator metrics;
  std::vector<float> probs;
  size_t done = 0;
  for (Batch b = loader.next(); b.count > 0; b = loader.next()) {
    probs.resize(b.count * pixels);
    predictor.run(b.images.data(), b.count, probs.data());
    for (int i = 0; i < b.count; ++i) {
      const Sample& s = samples[b.sample_indices[i]];
      metrics.add(s.image_path, probs.data() + i * pixels, pixel_labels ? b.masks.data() + i * pixels : nullptr,
                  static_cast<int64_t>(pixels), s.defective);
    }
    done += b.count;
    if (options.on_progress) options.on_progress(done, samples.size());
  }
  return metrics.finish();
}

ReportInputs build_report(Predictor& predictor, const std::vector<Sample>& samples, const EvalReport& eval,
                          const std::string& title, int per_category, float threshold) {
  ReportInputs in;
  in.title = title;
  in.eval = eval;
  in.gallery_threshold = threshold;
  const int size = predictor.image_size();
  std::vector<float> prob(static_cast<size_t>(size) * size);
  for (const GalleryPick& pick : select_gallery(eval, threshold, per_category)) {
    const ImageResult& r = eval.images.at(pick.image_index);
    // Metrics rows are in sample order (evaluate_samples adds them so).
    const Sample& s = samples.at(pick.image_index);
    PreparedImage p = load_prepared_image(s.image_path, size);
    predictor.run(p.input.data(), 1, prob.data());
    const GrayImage& img = p.image;
    std::vector<float> back = crop_or_pad(prob, size, size, img.width, img.height);
    std::vector<float> mask;
    if (!s.mask_path.empty()) {
      GrayImage m = read_image_gray(s.mask_path);
      if (m.width != img.width || m.height != img.height)
        throw_file_error(s.mask_path, "mask size differs from its image " + s.image_path);
      mask.resize(m.pixels.size());
      for (size_t i = 0; i < mask.size(); ++i) mask[i] = m.pixels[i] / 255.0f;
    }
    RgbImage overlay = shrink(make_overlay(img, back.data(), threshold, mask.empty() ? nullptr : mask.data()), 256);
    in.gallery.push_back({std::filesystem::path(r.file).filename().string(), r.is_defective, r.score, pick.category,
                          encode_png_rgb8(overlay)});
  }
  return in;
}

}  // namespace unetind
