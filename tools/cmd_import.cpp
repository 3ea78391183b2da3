// `unet-industrial import`: a TensorFlow checkpoint of NVIDIA's UNet-Industrial
// (training checkpoint, SavedModel or TF-Hub module) to our weights file.
#include <cstdio>

#include "commands.h"
#include "unetind/model.h"
#include "unetind/tf_checkpoint.h"

namespace unetind::cli {

void register_import(CLI::App& app) {
  struct Options {
    std::string checkpoint;
    std::string out;
    std::string variant = "tinyUNet";
    std::string activation = "relu";
  };
  auto opt = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("import", "Convert a TensorFlow checkpoint of UNet-Industrial to safetensors");
  cmd->add_option("--tf-checkpoint", opt->checkpoint,
                  "Checkpoint prefix (.../model.ckpt-2500, .../variables/variables), SavedModel or TF-Hub module "
                  "directory, or training directory with a `checkpoint` file")
      ->required();
  cmd->add_option("--out", opt->out, "Output weights file (.safetensors)")->required();
  cmd->add_option("--variant", opt->variant, "Model variant the checkpoint holds")
      ->check(CLI::IsMember({"tinyUNet", "original"}))
      ->capture_default_str();
  cmd->add_option("--activation", opt->activation,
                  "Activation the model was trained with (checkpoints do not record it)")
      ->check(CLI::IsMember({"relu", "leaky_relu"}))
      ->capture_default_str();
  cmd->callback([opt] {
    const ModelConfig config{parse_variant(opt->variant), parse_activation(opt->activation)};
    const TfImport imported = import_tf_checkpoint(opt->checkpoint, config);
    save_parameters(opt->out, imported.parameters, {{"source", "tf-checkpoint " + imported.checkpoint_prefix}});
    std::printf("read %s\n", imported.checkpoint_prefix.c_str());
    if (!imported.name_prefix.empty()) std::printf("stripped name prefix '%s'\n", imported.name_prefix.c_str());
    if (!imported.skipped.empty())
      std::printf("skipped %zu training-only tensor(s) (optimiser slots, step counter, ...)\n",
                  imported.skipped.size());
    std::printf("wrote %s: %s, %s, %zu tensors, %lld parameters\n", opt->out.c_str(), opt->variant.c_str(),
                opt->activation.c_str(), imported.parameters.tensors.size(),
                static_cast<long long>(parameter_count(build_graph(config))));
  });
}

}  // namespace unetind::cli
