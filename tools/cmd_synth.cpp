// `unet-industrial synth`: a synthetic DAGM-like class in DAGM's layout.
#include <chrono>
#include <cstdio>

#include "commands.h"
#include "unetind/synth.h"

namespace unetind::cli {

void register_synth(CLI::App& app) {
  auto opt = std::make_shared<SynthConfig>();
  auto out = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("synth", "Write a synthetic DAGM-like class (images, label masks, lists)");
  cmd->add_option("--out", *out, "Output folder (ClassN/ is created in it)")->required();
  cmd->add_option("--class", opt->class_id, "Texture class, 1..10")->check(CLI::Range(1, 10))->capture_default_str();
  cmd->add_option("--size", opt->size, "Image width and height")->check(CLI::Range(32, 8192))->capture_default_str();
  cmd->add_option("--train-defective", opt->train_defective, "Defective Train images")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--train-ok", opt->train_ok, "Defect-free Train images")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--test-defective", opt->test_defective, "Defective Test images")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--test-ok", opt->test_ok, "Defect-free Test images")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--seed", opt->seed, "Random seed")->capture_default_str();
  cmd->add_option("--threads", opt->threads, "Worker threads (0: all hardware threads)")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->callback([opt, out] {
    const auto start = std::chrono::steady_clock::now();
    write_synthetic_class(*out, *opt);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("wrote %s/Class%d: Train %d images (%d defective), Test %d images (%d defective), %dx%d, seed %llu, "
                "%.1f s\n",
                out->c_str(), opt->class_id, opt->train_ok + opt->train_defective, opt->train_defective,
                opt->test_ok + opt->test_defective, opt->test_defective, opt->size, opt->size,
                static_cast<unsigned long long>(opt->seed), seconds);
  });
}

}  // namespace unetind::cli
