// `unet-industrial train`: NVIDIA's recipe on one DAGM class (or a folder
// data set). Ctrl-C / SIGTERM finish the step, checkpoint and exit 130 / 143.
// Under `mpirun -np N` it is one rank of a data-parallel run.
#include <algorithm>
#include <csignal>
#include <cstdio>

#include "commands.h"
#include "device_option.h"
#include "progress.h"
#include "unetind/data_parallel.h"
#include "unetind/evaluation.h"
#include "unetind/trainer.h"

namespace unetind::cli {

namespace {

std::atomic<int> g_stop_signal{0};
// The first signal asks the run to stop after its step and checkpoint; a
// second one, for a run that does not get there soon enough, ends the
// process at once, as the signal would by default (every file is written
// atomically, so nothing is left half-written).
extern "C" void on_stop_signal(int sig) {
  if (g_stop_signal.exchange(sig) != 0) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}

}  // namespace

void register_train(CLI::App& app) {
  struct Options {
    TrainOptions train;
    std::string loss = "adaptive_loss", variant = "tinyUNet", activation = "relu", init = "he_normal";
    std::string precision = "fp32", conv = "auto";
    bool no_augment = false;
    float lr = 1e-4f;
  };
  auto opt = std::make_shared<Options>();
  TrainOptions& t = opt->train;
  CLI::App* cmd = app.add_subcommand("train", "Train a model on one DAGM class (NVIDIA's recipe)");
  cmd->add_option("--data", t.data_dir, "DAGM 2007 root (holding ClassN/) or a folder data set (images/, masks/)")
      ->required();
  cmd->add_option("--class", t.class_id, "DAGM class (1-10)")->capture_default_str();
  cmd->add_option("--out", t.out_dir, "Run directory")->required();
  cmd->add_option("--steps", t.steps, "Training steps")->capture_default_str();
  cmd->add_option("--batch", t.batch, "Batch size")->capture_default_str();
  cmd->add_option("--image-size", t.image_size, "Crop/pad images to this size (multiple of 16)")->capture_default_str();
  cmd->add_option("--lr", opt->lr, "Base learning rate")->capture_default_str();
  cmd->add_option("--lr-decay-steps", t.lr.decay_steps, "Staircase decay interval")->capture_default_str();
  cmd->add_option("--lr-decay-factor", t.lr.factor, "Staircase decay factor")->capture_default_str();
  cmd->add_option("--rmsprop-decay", t.rmsprop.decay, "RMSProp rho")->capture_default_str();
  cmd->add_option("--rmsprop-momentum", t.rmsprop.momentum, "RMSProp momentum")->capture_default_str();
  cmd->add_option("--weight-decay", t.weight_decay, "L2 weight decay coefficient")->capture_default_str();
  cmd->add_option("--loss", opt->loss, "Loss")
      ->check(CLI::IsMember({"adaptive_loss", "x-entropy", "dice_sorensen", "dice_jaccard", "l2_loss"}))
      ->capture_default_str();
  cmd->add_flag("--no-augment", opt->no_augment, "Disable flip/rot90 augmentation");
  cmd->add_flag("--all-images", t.all_images, "Train on defect-free images too (NVIDIA: defective only)");
  cmd->add_option("--seed", t.seed, "Seed for initialisation, shuffling and augmentation")->capture_default_str();
  cmd->add_option("--variant", opt->variant, "Model variant")->check(CLI::IsMember({"tinyUNet", "original"}))->capture_default_str();
  cmd->add_option("--activation", opt->activation, "Activation")->check(CLI::IsMember({"relu", "leaky_relu"}))->capture_default_str();
  cmd->add_option("--init", opt->init, "Kernel initialiser")
      ->check(CLI::IsMember({"he_normal", "he_uniform", "glorot_normal", "glorot_uniform", "orthogonal"}))
      ->capture_default_str();
  cmd->add_option("--init-from", t.init_from,
                  "Start from these weights instead of --init: a .safetensors file or any TensorFlow checkpoint "
                  "`import` reads (NVIDIA's published model, to fine-tune)");
  add_device_option(cmd, t.device);
  add_threads_option(cmd, t.threads);
  add_image_limit_option(cmd);
  cmd->add_option("--loader-threads", t.loader_threads, "PNG decoding threads")
      ->check(CLI::Range(1, available_cpus()))
      ->capture_default_str();
  cmd->add_option("--precision", opt->precision, "fp32 or bf16")->capture_default_str();
  add_conv_option(cmd, opt->conv);
  cmd->add_option("--checkpoint-every", t.checkpoint_every, "Steps between checkpoints")->capture_default_str();
  cmd->add_option("--display-every", t.display_every, "Steps between log lines")->capture_default_str();
  CLI::Option* resume = cmd->add_flag("--resume", t.resume, "Continue the run in --out from its checkpoint");
  cmd->add_flag("--overwrite", t.overwrite, "Replace the run in --out (without it, or --resume, that is refused)")
      ->excludes(resume);
  cmd->add_option("--eval-every", t.eval_every, "Evaluate on the Test split every K steps (0: never)")
      ->capture_default_str();

  cmd->callback([opt] {
    TrainOptions t = opt->train;
    t.lr.base = opt->lr;
    t.loss = parse_loss_kind(opt->loss);
    t.model = {parse_variant(opt->variant), parse_activation(opt->activation)};
    t.init = parse_initializer(opt->init);
    t.precision = parse_precision(opt->precision);
    t.conv_algorithm = parse_conv_algorithm(opt->conv);
    t.augment = !opt->no_augment;

    // Under mpirun: this process is one rank of a data-parallel run.
    ProcessGroup group = join_process_group(t.device);
    t.device = group.device;
    if (t.threads == 0 && group.local_size > 1) t.threads = std::max(1, cpu_threads() / group.local_size);
    const bool lead = !group.communicator || group.communicator->rank() == 0;

    std::signal(SIGINT, on_stop_signal);
    std::signal(SIGTERM, on_stop_signal);
    Progress progress("train", t.steps);
    std::string last_loss;
    TrainHooks hooks;
    hooks.on_message = [&](const std::string& m) { std::fprintf(stderr, "%s\n", m.c_str()); };
    hooks.on_progress = [&](int64_t step, int64_t) { progress.update(static_cast<long>(step), last_loss); };
    hooks.on_log = [&](const StepLog& log) {
      char line[160];
      std::snprintf(line, sizeof line, "loss %.5f (%s %.5f + l2 %.5f)  lr %.3g  %.2f img/s", log.result.loss,
                    to_string(log.result.branch).c_str(), log.result.reconstruction, log.result.l2, log.lr,
                    log.images_per_second);
      last_loss = line;
      if (!progress.active()) std::printf("step %lld/%d  %s\n", static_cast<long long>(log.step), t.steps, line);
      std::fflush(stdout);
    };
    std::vector<Sample> test_samples;
    if (t.eval_every > 0) {
      test_samples = open_split(t.data_dir, t.class_id, Split::Test);
      // Checked before the run starts, as train() checks the Train split.
      const std::string warning = check_samples(test_samples);
      if (!warning.empty()) std::fprintf(stderr, "%s\n", warning.c_str());
      // NVIDIA's train_and_evaluate: the metrics of the current weights on
      // the Test split, logged to metrics.jsonl without the per-image rows.
      hooks.evaluate = [&](const Parameters& params, int64_t step) {
        Predictor predictor(params, make_backend(t.device, t.threads), t.image_size, t.precision,
                            t.conv_algorithm);
        const EvalReport report = evaluate_samples(predictor, test_samples, {});
        const ThresholdResult& half = report.thresholds[kHalfThresholdIndex];
        if (!progress.active())
          std::printf("step %lld  eval: Dice@0.5 %.4f (defective %.4f), AUROC %s\n", static_cast<long long>(step),
                      half.dice_all.value_or(0), half.dice_defective.value_or(0),
                      report.auroc ? std::to_string(*report.auroc).c_str() : "n/a");
        nlohmann::json j = to_json(report);
        j.erase("images");
        return j;
      };
    }
    TrainResult r;
    try {
      r = train(t, hooks, &g_stop_signal, group.communicator.get());
    } catch (const std::exception& e) {
      if (!group.communicator) throw;
      // The other ranks would wait for this one: say which failed, end them all.
      std::fprintf(stderr, "error: rank %d of %d: %s\n", group.communicator->rank(), group.communicator->size(),
                   e.what());
      group.communicator->abort_group(1);
      throw;
    }
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
    if (r.interrupted) {
      if (lead)
        std::fprintf(stderr, "\nstopped by signal %d at step %lld; checkpoint written, continue with --resume\n",
                     r.signal, static_cast<long long>(r.step));
      exit_code() = 128 + r.signal;
      return;
    }
    if (lead)
      std::printf("trained %lld steps; weights in %s/model.safetensors\n", static_cast<long long>(r.step),
                  t.out_dir.c_str());
  });
}

}  // namespace unetind::cli
