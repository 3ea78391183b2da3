// `unet-industrial predict`: probabilities, masks, overlays and a CSV for a
// set of images (the library's predict_files). The threshold is --threshold,
// else the one the model file carries, else 0.5, and the summary says which.
// A bad file is reported by name and skipped; the exit code is non-zero at
// the end if any was.
#include <cstdio>

#include "commands.h"
#include "device_option.h"
#include "progress.h"
#include "unetind/error.h"
#include "unetind/operating_threshold.h"
#include "unetind/predict.h"

namespace unetind::cli {

namespace {

struct PredictCliOptions {
  std::string model;
  PredictFilesOptions files;
  bool threshold_given = false;  // --threshold, over the model file's
  int threads = 0;
  int image_size = 512;
  std::string device = "cpu";
  std::string precision = "fp32";
  std::string conv = "auto";
  std::vector<std::string> inputs;
};

void run_predict(const PredictCliOptions& opt) {
  check_image_size(opt.image_size);
  if (opt.files.batch < 1) throw Error("--batch must be at least 1");
  LoadedModel model = load_model(opt.model);
  const ThresholdInUse threshold = threshold_in_use(
      opt.threshold_given ? std::optional<float>(opt.files.threshold) : std::nullopt, "--threshold", model.threshold);
  const std::vector<std::string> files = collect_image_files(opt.inputs);
  Predictor predictor(std::move(model.parameters), make_backend(opt.device, opt.threads), opt.image_size,
                      inference_precision(opt.precision, opt.device), parse_conv_algorithm(opt.conv));
  PredictFilesOptions options = opt.files;
  options.threshold = threshold.value;
  predict_and_report(predictor, files, options, threshold.source);
}

}  // namespace

void predict_and_report(Predictor& predictor, const std::vector<std::string>& files,
                        const PredictFilesOptions& options, const std::string& threshold_source) {
  Progress progress("predict", static_cast<long>(files.size()));
  PredictHooks hooks;
  hooks.on_progress = [&](size_t done, size_t) { progress.update(static_cast<long>(done)); };
  hooks.on_failure = [&](const FileFailure& f) {
    std::fprintf(stderr, "%serror: %s (skipped)\n", progress.active() ? "\n" : "", f.message.c_str());
  };
  const PredictFilesResult result = predict_files(predictor, files, options, hooks);
  long defective = 0;
  for (const PredictedFile& p : result.predicted) defective += p.is_defective;
  std::printf("predicted %zu image(s), %ld defective at threshold %g (from %s); outputs in %s\n",
              result.predicted.size(), defective, options.threshold, threshold_source.c_str(),
              options.out_dir.c_str());
  if (!result.failed.empty()) {
    std::fprintf(stderr, "error: %zu input(s) could not be processed:\n", result.failed.size());
    for (const FileFailure& f : result.failed) std::fprintf(stderr, "  %s\n", f.file.c_str());
    exit_code() = 1;
  }
}

void register_predict(CLI::App& app) {
  auto opt = std::make_shared<PredictCliOptions>();
  CLI::App* cmd = app.add_subcommand("predict", "Segment defects in images");
  cmd->add_option("--model", opt->model, "Weights file (.safetensors)")->required();
  cmd->add_option("--out", opt->files.out_dir, "Output directory")->required();
  CLI::Option* threshold = cmd->add_option(
      "--threshold", opt->files.threshold,
      "Probability threshold for masks and decisions (default: the model file's, from evaluate --set-threshold, "
      "else 0.5)");
  cmd->add_option("--batch", opt->files.batch, "Images per forward pass")->capture_default_str();
  add_threads_option(cmd, opt->threads);
  add_image_limit_option(cmd);
  cmd->add_option("--image-size", opt->image_size, "Crop or pad every image to this size (multiple of 16)")
      ->capture_default_str();
  add_device_option(cmd, opt->device);
  add_precision_option(cmd, opt->precision);
  add_conv_option(cmd, opt->conv);
  cmd->add_option("inputs", opt->inputs, "Image files (PNG, JPEG, TIFF, BMP, PGM) or directories of them")
      ->required();
  cmd->callback([opt, threshold] {
    opt->threshold_given = threshold->count() > 0;
    run_predict(*opt);
  });
}

}  // namespace unetind::cli
