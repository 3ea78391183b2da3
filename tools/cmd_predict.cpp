// `unet-industrial predict`: probabilities, masks, overlays and a CSV for a
// set of PNGs (the library's predict_files). A bad file is reported by name
// and skipped; the exit code is non-zero at the end if any was.
#include <cstdio>

#include "commands.h"
#include "device_option.h"
#include "progress.h"
#include "unetind/error.h"
#include "unetind/predict.h"

namespace unetind::cli {

namespace {

struct PredictCliOptions {
  std::string model;
  PredictFilesOptions files;
  int threads = 0;
  int image_size = 512;
  std::string device = "cpu";
  std::string precision = "fp32";
  std::string conv = "auto";
  std::vector<std::string> inputs;
};

void run_predict(const PredictCliOptions& opt) {
  check_image_size(opt.image_size);
  check_threshold(opt.files.threshold, "--threshold");
  if (opt.files.batch < 1) throw Error("--batch must be at least 1");
  const std::vector<std::string> files = collect_image_files(opt.inputs);
  Predictor predictor(load_parameters(opt.model), make_backend(opt.device, opt.threads), opt.image_size,
                      parse_precision(opt.precision), parse_conv_algorithm(opt.conv));
  predict_and_report(predictor, files, opt.files);
}

}  // namespace

void predict_and_report(Predictor& predictor, const std::vector<std::string>& files,
                        const PredictFilesOptions& options) {
  Progress progress("predict", static_cast<long>(files.size()));
  PredictHooks hooks;
  hooks.on_progress = [&](size_t done, size_t) { progress.update(static_cast<long>(done)); };
  hooks.on_failure = [&](const FileFailure& f) {
    std::fprintf(stderr, "%serror: %s (skipped)\n", progress.active() ? "\n" : "", f.message.c_str());
  };
  const PredictFilesResult result = predict_files(predictor, files, options, hooks);
  long defective = 0;
  for (const PredictedFile& p : result.predicted) defective += p.is_defective;
  std::printf("predicted %zu image(s), %ld defective at threshold %g; outputs in %s\n", result.predicted.size(),
              defective, options.threshold, options.out_dir.c_str());
  if (!result.failed.empty()) {
    std::fprintf(stderr, "error: %zu input(s) could not be processed:\n", result.failed.size());
    for (const FileFailure& f : result.failed) std::fprintf(stderr, "  %s\n", f.file.c_str());
    exit_code() = 1;
  }
}

void register_predict(CLI::App& app) {
  auto opt = std::make_shared<PredictCliOptions>();
  CLI::App* cmd = app.add_subcommand("predict", "Segment defects in PNG images");
  cmd->add_option("--model", opt->model, "Weights file (.safetensors)")->required();
  cmd->add_option("--out", opt->files.out_dir, "Output directory")->required();
  cmd->add_option("--threshold", opt->files.threshold, "Probability threshold for masks and decisions")
      ->capture_default_str();
  cmd->add_option("--batch", opt->files.batch, "Images per forward pass")->capture_default_str();
  add_threads_option(cmd, opt->threads);
  add_image_limit_option(cmd);
  cmd->add_option("--image-size", opt->image_size, "Crop or pad every image to this size (multiple of 16)")
      ->capture_default_str();
  add_device_option(cmd, opt->device);
  cmd->add_option("--precision", opt->precision, "fp32 or bf16")->capture_default_str();
  add_conv_option(cmd, opt->conv);
  cmd->add_option("inputs", opt->inputs, "PNG files or directories of PNGs")->required();
  cmd->callback([opt] { run_predict(*opt); });
}

}  // namespace unetind::cli
