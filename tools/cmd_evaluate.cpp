// `unet-industrial evaluate`: NVIDIA's metrics (and more) on a Test split,
// as a table, JSON, a per-image CSV and an HTML report; with
// --set-threshold, the operating threshold it finds goes into the model file.
#include <cstdio>

#include "commands.h"
#include "device_option.h"
#include "progress.h"
#include "unetind/atomic_file.h"
#include "unetind/evaluation.h"
#include "unetind/operating_threshold.h"
#include "unetind/trainer.h"

namespace unetind::cli {

void register_evaluate(CLI::App& app) {
  struct Options {
    std::string data, model, json, csv, report, split = "Test", device = "cpu", precision = "fp32",
                conv = "auto", set_threshold;
    int class_id = 1, batch = 8, image_size = kModelImageSize, threads = 0;
  };
  auto opt = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("evaluate", "Measure a model on a data set split (NVIDIA's metrics and more)");
  cmd->add_option("--data", opt->data, "DAGM 2007 root (holding ClassN/) or a folder data set")->required();
  cmd->add_option("--class", opt->class_id, "DAGM class (1-10)")->capture_default_str();
  cmd->add_option("--model", opt->model, "Weights file (.safetensors)")->required();
  cmd->add_option("--split", opt->split, "Train or Test")->check(CLI::IsMember({"Train", "Test"}))->capture_default_str();
  cmd->add_option("--json", opt->json, "Write every metric and per-image row as JSON");
  cmd->add_option("--csv", opt->csv, "Write the per-image CSV (file, label, score, Dice at 0.5)");
  cmd->add_option("--report", opt->report, "Write a self-contained HTML report");
  cmd->add_option("--batch", opt->batch, "Images per forward pass")->capture_default_str();
  cmd->add_option("--image-size", opt->image_size, "Crop/pad images to this size (multiple of 16)")->capture_default_str();
  add_threads_option(cmd, opt->threads);
  add_image_limit_option(cmd);
  add_device_option(cmd, opt->device);
  add_precision_option(cmd, opt->precision);
  cmd->add_option("--set-threshold", opt->set_threshold,
                  "Store an operating threshold in the model file, with its evidence: best-f1 (the best F1 over "
                  "the images), dagm-cost (the lowest DAGM cost) or a number from 0 to 1; predict, serve, the "
                  "Python module and the C API then use it by default");
  add_conv_option(cmd, opt->conv);
  cmd->callback([opt] {
    for (const std::string* out : {&opt->json, &opt->csv, &opt->report})
      if (!out->empty()) check_output_is_not_input(*out, {opt->model});
    const Split split = opt->split == "Train" ? Split::Train : Split::Test;
    // A bad rule is refused before minutes of evaluation.
    if (!opt->set_threshold.empty()) check_threshold_rule(opt->set_threshold);
    const std::vector<Sample> samples = open_split(opt->data, opt->class_id, split);
    const std::string warning = check_samples(samples);
    if (!warning.empty()) std::fprintf(stderr, "%s\n", warning.c_str());
    Predictor predictor(load_parameters(opt->model), make_backend(opt->device, opt->threads), opt->image_size,
                        inference_precision(opt->precision, opt->device), parse_conv_algorithm(opt->conv));
    Progress progress("evaluate", static_cast<long>(samples.size()));
    EvaluationOptions eo;
    eo.batch = opt->batch;
    eo.on_progress = [&](size_t done, size_t) { progress.update(static_cast<long>(done)); };
    const EvalReport report = evaluate_samples(predictor, samples, eo);
    std::printf("%s", format_table(report).c_str());
    if (!opt->json.empty()) {
      nlohmann::json j = to_json(report);
      j["model"] = opt->model;
      j["data"] = opt->data;
      j["class"] = opt->class_id;
      j["split"] = opt->split;
      write_file_atomic(opt->json, j.dump(2) + "\n");
    }
    if (!opt->csv.empty()) write_file_atomic(opt->csv, per_image_csv(report));
    if (!opt->set_threshold.empty()) {
      const OperatingThreshold t = set_operating_threshold(opt->model, report, opt->set_threshold, opt->data,
                                                           opt->class_id, opt->split, predictor.parameters());
      std::printf("operating threshold %s stored in %s\n", describe(t).c_str(), opt->model.c_str());
    }
    if (!opt->report.empty()) {
      ReportInputs in = build_report(predictor, samples, report,
                                     "Class " + std::to_string(opt->class_id) + " " + opt->split + ": " + opt->model);
      in.run_info = {{"model", opt->model}, {"data", opt->data}, {"class", opt->class_id}, {"split", opt->split}};
      write_file_atomic(opt->report, render_html_report(in));
      std::printf("report: %s\n", opt->report.c_str());
    }
  });
}

}  // namespace unetind::cli
