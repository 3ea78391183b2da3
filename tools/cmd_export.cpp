// `unet-industrial export`: a weights file to an ONNX model.
#include <cstdio>

#include "commands.h"
#include "unetind/atomic_file.h"
#include "unetind/error.h"
#include "unetind/model.h"
#include "unetind/onnx_export.h"

namespace unetind::cli {

void register_export(CLI::App& app) {
  struct Options {
    std::string model;
    std::string format = "onnx";
    std::string out;
    std::string batch = "1";
    int opset = kOnnxMinOpset;
  };
  auto opt = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("export", "Export a model to ONNX (input images N x 512 x 512 x 1 in [-1, 1])");
  cmd->add_option("--model", opt->model, "Weights file (.safetensors)")->required();
  cmd->add_option("--format", opt->format, "Output format")->check(CLI::IsMember({"onnx"}))->capture_default_str();
  cmd->add_option("--out", opt->out, "Output file (.onnx)")->required();
  cmd->add_option("--batch", opt->batch, "Images per run, or `dynamic`")
      ->check(CLI::Validator(
          [](std::string& value) -> std::string {
            if (value == "dynamic") return "";
            size_t used = 0;
            try {
              if (std::stoi(value, &used) > 0 && used == value.size()) return "";
            } catch (const std::exception&) {
            }
            return "batch must be a positive integer or `dynamic`, not '" + value + "'";
          },
          "N|dynamic"))
      ->capture_default_str();
  cmd->add_option("--opset", opt->opset, "ONNX opset")
      ->check(CLI::Range(kOnnxMinOpset, kOnnxMaxOpset))
      ->capture_default_str();
  cmd->callback([opt] {
    if (!onnx_export_available())
      throw Error("this build has no ONNX export: install libonnx-dev and rebuild (cmake finds it by itself)");
    OnnxExportOptions options;
    options.batch = opt->batch == "dynamic" ? 0 : std::stoi(opt->batch);
    options.opset = opt->opset;
    check_output_is_not_input(opt->out, {opt->model});
    const Parameters params = load_parameters(opt->model);
    export_onnx(params, opt->out, options);
    std::printf("wrote %s: ONNX opset %d, batch %s, images [-1, 1] NHWC in, probabilities NHWC out\n", opt->out.c_str(),
                opt->opset, opt->batch.c_str());
  });
}

}  // namespace unetind::cli
