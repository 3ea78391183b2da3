// `unet-industrial import`: a TensorFlow checkpoint of NVIDIA's UNet-Industrial
// (TF1 training checkpoint, SavedModel or TF-Hub module, TF2 checkpoint) to our
// weights file; with --run-dir, a TF1 training checkpoint's optimiser state
// too, as a run that `train --resume` continues.
#include <cstdio>

#include "commands.h"
#include "unetind/atomic_file.h"
#include "unetind/error.h"
#include "unetind/model.h"
#include "unetind/tf_checkpoint.h"
#include "unetind/trainer.h"

namespace unetind::cli {

void register_import(CLI::App& app) {
  struct Options {
    std::string checkpoint;
    std::string out;
    std::string run_dir;
    std::string variant = "tinyUNet";
    std::string activation = "relu";
  };
  auto opt = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("import", "Convert a TensorFlow checkpoint of UNet-Industrial to safetensors");
  cmd->add_option("--tf-checkpoint", opt->checkpoint,
                  "Checkpoint prefix (.../model.ckpt-2500, .../variables/variables), SavedModel or TF-Hub module "
                  "directory, training or TF2 checkpoint directory, or its `checkpoint` file")
      ->required();
  cmd->add_option("--out", opt->out, "Output weights file (.safetensors)")->required();
  cmd->add_option("--run-dir", opt->run_dir,
                  "Also write the checkpoint's centred-RMSProp slots and global_step as a run here, which "
                  "`train --out DIR --resume` continues");
  cmd->add_option("--variant", opt->variant, "Model variant the checkpoint holds")
      ->check(CLI::IsMember({"tinyUNet", "original"}))
      ->capture_default_str();
  cmd->add_option("--activation", opt->activation,
                  "Activation the model was trained with (checkpoints do not record it)")
      ->check(CLI::IsMember({"relu", "leaky_relu"}))
      ->capture_default_str();
  cmd->callback([opt] {
    const ModelConfig config{parse_variant(opt->variant), parse_activation(opt->activation)};
    const bool with_state = !opt->run_dir.empty();
    const TfImport imported = import_tf_checkpoint(opt->checkpoint, config, with_state);
    const std::string index = imported.checkpoint_prefix + ".index";
    const TfCheckpoint checkpoint(index);
    std::vector<std::string> inputs{index};
    for (int32_t shard = 0; shard < checkpoint.num_shards(); ++shard) inputs.push_back(checkpoint.shard_path(shard));
    check_output_is_not_input(opt->out, inputs);
    if (with_state && !imported.global_step)
      throw_file_error(index, "no global_step: not a training checkpoint, so there is no run to continue");
    save_parameters(opt->out, imported.parameters, {{"source", "tf-checkpoint " + imported.checkpoint_prefix}});
    std::printf("read %s\n", imported.checkpoint_prefix.c_str());
    if (!imported.name_prefix.empty()) std::printf("stripped name prefix '%s'\n", imported.name_prefix.c_str());
    if (!imported.skipped.empty())
      std::printf("skipped %zu training-only tensor(s) (optimiser slots, step counter, ...)\n",
                  imported.skipped.size());
    std::printf("wrote %s: %s, %s, %zu tensors, %lld parameters\n", opt->out.c_str(), opt->variant.c_str(),
                opt->activation.c_str(), imported.parameters.tensors.size(),
                static_cast<long long>(parameter_count(build_graph(config))));
    if (with_state) {
      write_imported_checkpoint(opt->run_dir, imported.parameters, imported.optimizer_slots, *imported.global_step,
                                RmsPropConfig{}, index);
      std::printf("wrote %s: step %lld, %zu optimiser slots; continue with train --out %s --resume\n",
                  opt->run_dir.c_str(), static_cast<long long>(*imported.global_step),
                  imported.optimizer_slots.size(), opt->run_dir.c_str());
    }
  });
}

}  // namespace unetind::cli
