// `unet-industrial predict`: probabilities, masks, overlays and a CSV for a
// set of PNGs. A bad file is reported by name and skipped; the exit code is
// non-zero at the end if any was.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>

#include "commands.h"
#include "device_option.h"
#include "progress.h"
#include "unetind/atomic_file.h"
#include "unetind/error.h"
#include "unetind/npy.h"
#include "unetind/overlay.h"
#include "unetind/png.h"
#include "unetind/predictor.h"

namespace unetind::cli {

namespace fs = std::filesystem;

namespace {

bool is_png(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  return ext == ".png";
}

// Files as given; directories contribute their PNGs (not recursive), sorted.
std::vector<std::string> collect_inputs(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const std::string& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      std::vector<std::string> found;
      for (const auto& e : fs::directory_iterator(in))
        if (e.is_regular_file() && is_png(e.path())) found.push_back(e.path().string());
      if (found.empty()) throw_file_error(in, "directory holds no PNG files");
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

struct Row {
  std::string file;
  float score;
  long defect_pixels;
};

void write_outputs(const PredictOptions& opt, const std::string& file, const PreparedImage& p, const float* prob, Row& row) {
  const int s = opt.image_size;
  const std::string stem = (fs::path(opt.out) / fs::path(file).stem()).string();
  Tensor t({s, s});
  std::copy(prob, prob + static_cast<size_t>(s) * s, t.data.begin());
  write_npy(stem + "_prob.npy", t);

  row.score = *std::max_element(t.data.begin(), t.data.end());
  row.defect_pixels = std::count_if(t.data.begin(), t.data.end(), [&](float v) { return v > opt.threshold; });

  // Mask and overlay are drawn in the image's own geometry: the model output
  // mapped back through the inverse crop/pad (outside the model's view: 0).
  const GrayImage& img = p.image;
  std::vector<float> back = crop_or_pad(t.data, s, s, img.width, img.height);
  std::vector<uint8_t> mask(back.size());
  for (size_t i = 0; i < back.size(); ++i) mask[i] = back[i] > opt.threshold ? 255 : 0;
  write_png_gray8(stem + "_mask.png", img.width, img.height, mask);
  write_png_rgb8(stem + "_overlay.png", make_overlay(img, back.data(), opt.threshold, nullptr));
}

}  // namespace

void run_predict(const PredictOptions& opt) {
  check_image_size(opt.image_size);
  if (opt.batch < 1) throw Error("--batch must be at least 1");
  const std::vector<std::string> files = collect_inputs(opt.inputs);
  fs::create_directories(opt.out);

  Predictor predictor(load_parameters(opt.model), make_backend(opt.device, opt.threads), opt.image_size,
                      parse_precision(opt.precision), parse_conv_algorithm(opt.conv));
  const size_t pixels = static_cast<size_t>(opt.image_size) * opt.image_size;
  std::vector<Row> rows;
  std::vector<std::string> failed;
  Progress progress("predict", static_cast<long>(files.size()));

  for (size_t start = 0; start < files.size(); start += opt.batch) {
    std::vector<std::string> names;
    std::vector<PreparedImage> images;
    for (size_t i = start; i < std::min(files.size(), start + opt.batch); ++i) {
      try {
        images.push_back(load_prepared_image(files[i], opt.image_size));
        names.push_back(files[i]);
      } catch (const Error& e) {
        std::fprintf(stderr, "%serror: %s (skipped)\n", progress.active() ? "\n" : "", e.what());
        failed.push_back(files[i]);
      }
    }
    if (!images.empty()) {
      std::vector<float> input(images.size() * pixels), probs(images.size() * pixels);
      for (size_t i = 0; i < images.size(); ++i)
        std::copy(images[i].input.begin(), images[i].input.end(), input.begin() + i * pixels);
      predictor.run(input.data(), static_cast<int>(images.size()), probs.data());
      for (size_t i = 0; i < images.size(); ++i) {
        Row row{names[i], 0, 0};
        write_outputs(opt, names[i], images[i], probs.data() + i * pixels, row);
        rows.push_back(row);
      }
    }
    progress.update(static_cast<long>(std::min(files.size(), start + opt.batch)));
  }

  std::string csv = "file,defect_score,defect_pixels,is_defective\n";
  for (const Row& r : rows) {
    char line[64];
    std::snprintf(line, sizeof line, ",%.6f,%ld,%d\n", r.score, r.defect_pixels, r.score > opt.threshold ? 1 : 0);
    csv += r.file + line;
  }
  write_file_atomic((fs::path(opt.out) / "predictions.csv").string(), csv);
  const long defective = std::count_if(rows.begin(), rows.end(), [&](const Row& r) { return r.score > opt.threshold; });
  std::printf("predicted %zu image(s), %ld defective at threshold %g; outputs in %s\n", rows.size(), defective,
              opt.threshold, opt.out.c_str());
  if (!failed.empty()) {
    std::fprintf(stderr, "error: %zu input(s) could not be processed:\n", failed.size());
    for (const std::string& f : failed) std::fprintf(stderr, "  %s\n", f.c_str());
    exit_code() = 1;
  }
}

void register_predict(CLI::App& app) {
  auto opt = std::make_shared<PredictOptions>();
  CLI::App* cmd = app.add_subcommand("predict", "Segment defects in PNG images");
  cmd->add_option("--model", opt->model, "Weights file (.safetensors)")->required();
  cmd->add_option("--out", opt->out, "Output directory")->required();
  cmd->add_option("--threshold", opt->threshold, "Probability threshold for masks and decisions")
      ->check(CLI::Range(0.0f, 1.0f))
      ->capture_default_str();
  cmd->add_option("--batch", opt->batch, "Images per forward pass")->capture_default_str();
  cmd->add_option("--threads", opt->threads, "CPU threads (0: all cores)")->capture_default_str();
  cmd->add_option("--image-size", opt->image_size, "Crop or pad every image to this size (multiple of 16)")
      ->capture_default_str();
  add_device_option(cmd, opt->device);
  cmd->add_option("--precision", opt->precision, "fp32 or bf16")->capture_default_str();
  add_conv_option(cmd, opt->conv);
  cmd->add_option("inputs", opt->inputs, "PNG files or directories of PNGs")->required();
  cmd->callback([opt] { run_predict(*opt); });
}

}  // namespace unetind::cli
