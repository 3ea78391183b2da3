#include <algorithm>
#include <filesystem>
#include <set>

#include "eval/text_format.h"
#include "unetind/atomic_file.h"
#include "unetind/error.h"
#include "unetind/image_io.h"
#include "unetind/npy.h"
#include "unetind/overlay.h"
#include "unetind/png.h"
#include "unetind/predict.h"

namespace unetind {

namespace fs = std::filesystem;

namespace {

// Writes one image's outputs and returns its row.
PredictedFile write_outputs(const PredictFilesOptions& opt, int size, const std::string& file, const GrayImage& image,
                            const float* model_probs) {
  const std::string stem = (fs::path(opt.out_dir) / fs::path(file).stem()).string();
  Tensor t({size, size});
  std::copy(model_probs, model_probs + static_cast<size_t>(size) * size, t.data.begin());
  write_npy(stem + "_prob.npy", t);

  const Inspection r = inspect(model_probs, size, image.width, image.height, opt.threshold);
  write_png_gray8(stem + "_mask.png", image.width, image.height, defect_mask(r));
  write_png_rgb8(stem + "_overlay.png", make_overlay(image, r.probabilities.data(), opt.threshold, nullptr));
  return PredictedFile{file, r.defect_score, r.defect_pixels, r.is_defective};
}

std::string predictions_csv(const std::vector<PredictedFile>& rows) {
  std::string csv = "file,defect_score,defect_pixels,is_defective\n";
  for (const PredictedFile& r : rows)
    csv += csv_field(r.file) + printf_string(",%.6f,%lld,%d\n", r.defect_score, static_cast<long long>(r.defect_pixels),
                                             r.is_defective ? 1 : 0);
  return csv;
}

}  // namespace

std::vector<std::string> collect_image_files(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const std::string& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      std::vector<std::string> found;
      // An entry whose type cannot be known (a symlink loop, a dangling
      // link) is kept: reading it then reports it by name, and the others
      // go on.
      for (const auto& e : fs::directory_iterator(in))
        if (has_image_extension(e.path().string()) && (e.is_regular_file(ec) || ec)) found.push_back(e.path().string());
      if (found.empty()) throw_file_error(in, std::string("directory holds no images (") + kImageFormatsText + ")");
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else {
      files.push_back(in);  // a missing or bad file is reported when read
    }
  }
  std::set<std::string> stems;
  for (const std::string& f : files)
    if (!stems.insert(fs::path(f).stem().string()).second)
      throw_file_error(f, "another input has the same name stem; outputs would overwrite each other");
  return files;
}

PredictFilesResult predict_files(Predictor& predictor, const std::vector<std::string>& files,
                                 const PredictFilesOptions& opt, const PredictHooks& hooks) {
  check_threshold(opt.threshold, "the threshold");
  if (opt.batch < 1) throw Error("the batch size must be at least 1, not " + std::to_string(opt.batch));
  predictor.check_memory(opt.batch);
  fs::create_directories(opt.out_dir);
  const int size = predictor.image_size();
  const size_t pixels = static_cast<size_t>(size) * size;
  PredictFilesResult result;
  auto fail = [&](const std::string& file, const std::string& message) {
    result.failed.push_back({file, message});
    if (hooks.on_failure) hooks.on_failure(result.failed.back());
  };

  for (size_t start = 0; start < files.size(); start += opt.batch) {
    const size_t end = std::min(files.size(), start + opt.batch);
    std::vector<std::string> names;
    std::vector<PreparedImage> images;
    for (size_t i = start; i < end; ++i) {
      try {
        images.push_back(load_prepared_image(files[i], size));
        names.push_back(files[i]);
      } catch (const Error& e) {
        fail(files[i], e.what());
      } catch (const std::bad_alloc&) {
        fail(files[i], files[i] + ": not enough memory to read it");
      }
    }
    if (!images.empty()) {
      std::vector<float> input(images.size() * pixels), probs(images.size() * pixels);
      for (size_t i = 0; i < images.size(); ++i)
        std::copy(images[i].input.begin(), images[i].input.end(), input.begin() + i * pixels);
      predictor.run(input.data(), static_cast<int>(images.size()), probs.data());
      for (size_t i = 0; i < images.size(); ++i) {
        try {
          result.predicted.push_back(write_outputs(opt, size, names[i], images[i].image, probs.data() + i * pixels));
        } catch (const Error& e) {
          fail(names[i], e.what());
        }
      }
    }
    if (hooks.on_progress) hooks.on_progress(end, files.size());
  }
  write_file_atomic((fs::path(opt.out_dir) / "predictions.csv").string(), predictions_csv(result.predicted));
  return result;
}

}  // namespace unetind
