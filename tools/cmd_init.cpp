// `unet-industrial init`: a freshly initialised model, written as safetensors.
#include <cstdio>

#include "commands.h"
#include "unetind/model.h"

namespace unetind::cli {

void register_init(CLI::App& app) {
  struct Options {
    std::string out;
    uint64_t seed = 0;
    std::string init = "he_normal";
    std::string variant = "tinyUNet";
    std::string activation = "relu";
  };
  auto opt = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("init", "Write a freshly initialised model (safetensors)");
  cmd->add_option("--out", opt->out, "Output weights file (.safetensors)")->required();
  cmd->add_option("--seed", opt->seed, "Random seed")->capture_default_str();
  cmd->add_option("--init", opt->init, "Kernel initialiser")
      ->check(CLI::IsMember({"he_normal", "he_uniform", "glorot_normal", "glorot_uniform", "orthogonal"}))
      ->capture_default_str();
  cmd->add_option("--variant", opt->variant, "Model variant")
      ->check(CLI::IsMember({"tinyUNet", "original"}))
      ->capture_default_str();
  cmd->add_option("--activation", opt->activation, "Activation")
      ->check(CLI::IsMember({"relu", "leaky_relu"}))
      ->capture_default_str();
  cmd->callback([opt] {
    ModelConfig config{parse_variant(opt->variant), parse_activation(opt->activation)};
    Parameters params = init_parameters(config, parse_initializer(opt->init), opt->seed);
    save_parameters(opt->out, params, {{"initializer", opt->init}, {"seed", std::to_string(opt->seed)}});
    std::printf("wrote %s: %s, %s, %s init, seed %llu, %lld parameters\n", opt->out.c_str(),
                opt->variant.c_str(), opt->activation.c_str(), opt->init.c_str(),
                static_cast<unsigned long long>(opt->seed),
                static_cast<long long>(parameter_count(build_graph(config))));
  });
}

}  // namespace unetind::cli
