// `unet-industrial demo` (what `make demo` runs): the whole product on a
// generated DAGM-like class in about 2 minutes on 2 cores — data, training,
// evaluation, predictions and an HTML report in demo-output/.
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "commands.h"
#include "progress.h"
#include "unetind/atomic_file.h"
#include "unetind/evaluation.h"
#include "unetind/report.h"
#include "unetind/synth.h"
#include "unetind/trainer.h"

namespace unetind::cli {

namespace fs = std::filesystem;

namespace {

struct DemoOptions {
  std::string out = "demo-output";
  int class_id = 1;
  int steps = 500;
  int image_size = 128;
  int threads = 0;
  uint64_t seed = 7;
};

void run_demo(const DemoOptions& opt) {
  const auto start = std::chrono::steady_clock::now();
  check_image_size(opt.image_size);  // before anything is created
  const fs::path out = opt.out;
  const std::string data = (out / "data").string();
  const std::string run = (out / "run").string();
  fs::create_directories(out);

  std::printf("[1/4] generating a DAGM-like class %d (%dx%d) in %s\n", opt.class_id, opt.image_size, opt.image_size,
              data.c_str());
  SynthConfig synth;
  synth.class_id = opt.class_id;
  synth.size = opt.image_size;
  synth.train_defective = 80;
  synth.train_ok = 80;
  synth.test_defective = 40;
  synth.test_ok = 160;
  synth.seed = opt.seed;
  write_synthetic_class(data, synth);

  std::printf("[2/4] training TinyUNet for %d steps (NVIDIA's recipe at a small size: batch 8, lr 3e-4 x 0.8 every 200 steps)\n",
              opt.steps);
  TrainOptions t;
  t.data_dir = data;
  t.class_id = opt.class_id;
  t.out_dir = run;
  t.steps = opt.steps;
  t.batch = 8;
  t.image_size = opt.image_size;
  t.lr = {3e-4f, 0.8f, 200};
  t.seed = opt.seed;
  t.threads = opt.threads;
  t.display_every = 50;
  t.checkpoint_every = 200;
  Progress progress("train", t.steps);
  std::string last;
  TrainHooks hooks;
  hooks.on_progress = [&](int64_t step, int64_t) { progress.update(static_cast<long>(step), last); };
  hooks.on_log = [&](const StepLog& log) {
    char line[96];
    std::snprintf(line, sizeof line, "loss %.4f  %.1f img/s", log.result.loss, log.images_per_second);
    last = line;
    if (!progress.active()) std::printf("  step %lld  %s\n", static_cast<long long>(log.step), line);
    std::fflush(stdout);
  };
  train(t, hooks, nullptr);

  std::printf("[3/4] evaluating on the Test split\n");
  const std::string model = run + "/model.safetensors";
  Predictor predictor(load_parameters(model), make_backend("cpu", opt.threads), opt.image_size, Precision::F32);
  const std::vector<Sample> test = open_split(data, opt.class_id, Split::Test);
  const EvalReport report = evaluate_samples(predictor, test, {});
  std::printf("%s", format_table(report).c_str());
  write_file_atomic((out / "metrics.json").string(), to_json(report).dump(2) + "\n");

  std::printf("[4/4] predicting the Test images and writing the report\n");
  PredictFilesOptions p;
  p.out_dir = (out / "predictions").string();
  predict_and_report(predictor,
                     collect_image_files({(fs::path(data) / ("Class" + std::to_string(opt.class_id)) / "Test").string()}),
                     p, "the default");

  ReportInputs in = build_report(predictor, test, report, "unet-industrial demo: synthetic DAGM-like class " +
                                                              std::to_string(opt.class_id));
  in.loss_curve = read_loss_curve(run + "/metrics.jsonl");
  in.run_info = to_json(t);
  const std::string html = (out / "report.html").string();
  write_file_atomic(html, render_html_report(in));

  const double minutes = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / 60;
  std::printf("\ndone in %.1f min. Everything is in %s/:\n", minutes, opt.out.c_str());
  std::printf("  report.html        metrics, loss curve, ROC/PR curves and overlays (open it in a browser)\n");
  std::printf("  metrics.json       every metric, per image too\n");
  std::printf("  run/               model.safetensors, checkpoint.safetensors, config.json, metrics.jsonl\n");
  std::printf("  predictions/       <image>_prob.npy, _mask.png, _overlay.png and predictions.csv\n");
  std::printf("  data/              the generated data set (DAGM 2007 layout)\n");
}

}  // namespace

void register_demo(CLI::App& app) {
  auto opt = std::make_shared<DemoOptions>();
  CLI::App* cmd = app.add_subcommand("demo", "Generate data, train, evaluate, predict and write an HTML report");
  cmd->add_option("--out", opt->out, "Output directory")->capture_default_str();
  cmd->add_option("--class", opt->class_id, "Synthetic class (1-10)")->check(CLI::Range(1, 10))->capture_default_str();
  cmd->add_option("--steps", opt->steps, "Training steps")->check(at_least(1))->capture_default_str();
  cmd->add_option("--image-size", opt->image_size, "Image size (a multiple of 16)")
      ->check(CLI::Range(32, 8192))
      ->capture_default_str();
  add_threads_option(cmd, opt->threads);
  cmd->add_option("--seed", opt->seed, "Seed for data and training")->capture_default_str();
  cmd->callback([opt] { run_demo(*opt); });
}

}  // namespace unetind::cli
