// `unet-industrial benchmark`: NVIDIA's training_benchmark and
// inference_benchmark on synthetic input: images/s, latency percentiles per
// batch, peak resident memory and achieved GFLOP/s.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>

#include "commands.h"
#include "device_option.h"
#include "unetind/atomic_file.h"
#include "unetind/calibration.h"
#include "unetind/error.h"
#include "unetind/predictor.h"
#include "unetind/trainer.h"

namespace unetind::cli {

namespace {

struct Options {
  std::string mode = "infer", precision = "fp32", device = "cpu", conv = "auto", json, model;
  int batch = 8, threads = 0, iters = 20, warmup = 3, image_size = kModelImageSize;
};

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const double pos = p * (v.size() - 1);
  const size_t lo = static_cast<size_t>(pos);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - lo);
}

// VmHWM, the peak resident memory of this process's own address space
// (getrusage's ru_maxrss would carry a parent's peak across fork and exec).
double peak_rss_mb() {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == "VmHWM:") {
      double kb = 0;
      status >> kb;
      return kb / 1024.0;
    }
    std::getline(status, key);
  }
  return 0;
}

// Uniform noise in [-1, 1], the same sequence for every run.
std::vector<float> noise_images(int count, size_t pixels) {
  std::vector<float> images(count * pixels);
  uint32_t state = 12345;
  for (float& v : images) v = ((state = state * 1664525u + 1013904223u) >> 8) * (2.0f / 16777216.0f) - 1.0f;
  return images;
}

void run_benchmark(const Options& opt) {
  check_image_size(opt.image_size);
  const bool train = opt.mode == "train";
  const Precision precision = inference_precision(opt.precision, opt.device);
  Parameters params = opt.model.empty() ? init_parameters({}, Initializer::HeNormal, 0) : load_parameters(opt.model);
  if (!opt.json.empty() && !opt.model.empty()) check_output_is_not_input(opt.json, {opt.model});
  const Graph graph = build_graph(params.config);
  const size_t pixels = static_cast<size_t>(opt.image_size) * opt.image_size;

  // The executor first: it refuses a batch or size that cannot fit before
  // the input arrays below are allocated.
  auto backend = make_backend(opt.device, opt.threads);
  std::vector<float> images, masks, out;
  std::function<void()> iteration;
  std::unique_ptr<Predictor> predictor;
  std::unique_ptr<TrainingExecutor> trainer;
  if (train) {
    // The state stays in the executor, as in `train`.
    trainer = backend->compile_training(
        graph, ExecConfig{opt.batch, opt.image_size, opt.image_size, true, precision, parse_conv_algorithm(opt.conv)},
        TrainingConfig{}, nullptr);
    trainer->load(params.tensors, {});
    iteration = [&] { trainer->step(images.data(), masks.data(), 1e-4f); };
  } else {
    if (precision == Precision::INT8 && !params.int8_calibration) {
      // Speed does not depend on the values: a model without a calibration
      // is calibrated on the benchmark's own input.
      std::printf("int8: %s has no calibration; calibrating on the benchmark's input\n",
                  params.source.empty() ? "the initialised model" : params.source.c_str());
      params.int8_calibration = std::make_shared<const Int8Calibration>(
          calibrate_int8(params, noise_images(1, pixels), 1, opt.image_size, "benchmark input"));
    }
    predictor = std::make_unique<Predictor>(params, std::move(backend), opt.image_size, precision,
                                            parse_conv_algorithm(opt.conv));
    predictor->check_memory(opt.batch);
    iteration = [&] { predictor->run(images.data(), opt.batch, out.data()); };
  }

  // Synthetic input, as the reference's benchmarks: noise images, blob masks.
  images = noise_images(opt.batch, pixels);
  masks.resize(opt.batch * pixels);
  out.resize(opt.batch * pixels);
  for (size_t i = 0; i < masks.size(); ++i) masks[i] = (i % pixels) < pixels / 16 ? 1.0f : 0.0f;

  for (int i = 0; i < opt.warmup; ++i) iteration();
  std::vector<double> ms;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < opt.iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    iteration();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double images_per_s = opt.iters * opt.batch / seconds;
  // A training step is the forward pass plus the backward's two passes
  // (data and weights), about 3x the forward's work. Counted as direct
  // convolution: Winograd does fewer multiplications for the same result, so
  // its figure is the direct-convolution rate it equals.
  const double flops_per_image = forward_flops(graph, opt.image_size, opt.image_size) * (train ? 3.0 : 1.0);
  const double gflops = images_per_s * flops_per_image / 1e9;

  std::printf("mode %s, %s, conv %s, batch %d, %dx%d, %d threads, %d iterations after %d warm-up\n",
              opt.mode.c_str(), opt.precision.c_str(), opt.conv.c_str(), opt.batch, opt.image_size, opt.image_size,
              cpu_threads(), opt.iters, opt.warmup);
  std::printf("throughput: %.2f images/s (%.1f GFLOP/s)\n", images_per_s, gflops);
  std::printf("latency per batch: p50 %.1f ms, p90 %.1f ms, p99 %.1f ms\n", percentile(ms, 0.5), percentile(ms, 0.9),
              percentile(ms, 0.99));
  std::printf("peak resident memory: %.0f MB\n", peak_rss_mb());
  if (!opt.json.empty()) {
    nlohmann::json j = {{"mode", opt.mode},           {"precision", opt.precision}, {"conv", opt.conv},
                        {"device", opt.device},       {"batch", opt.batch},
                        {"image_size", opt.image_size}, {"threads", cpu_threads()},
                        {"iters", opt.iters},         {"warmup", opt.warmup},
                        {"images_per_s", images_per_s}, {"gflops", gflops},
                        {"latency_ms", {{"p50", percentile(ms, 0.5)}, {"p90", percentile(ms, 0.9)}, {"p99", percentile(ms, 0.99)}}},
                        {"peak_rss_mb", peak_rss_mb()}};
    write_file_atomic(opt.json, j.dump(2) + "\n");
  }
}

}  // namespace

void register_benchmark(CLI::App& app) {
  auto opt = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("benchmark", "Measure training or inference speed on synthetic input");
  cmd->add_option("--mode", opt->mode, "train or infer")->check(CLI::IsMember({"train", "infer"}))->capture_default_str();
  cmd->add_option("--batch", opt->batch, "Batch size")->check(at_least(1))->capture_default_str();
  add_precision_option(cmd, opt->precision);
  add_conv_option(cmd, opt->conv);
  add_threads_option(cmd, opt->threads);
  cmd->add_option("--iters", opt->iters, "Timed iterations")->check(at_least(1))->capture_default_str();
  cmd->add_option("--warmup", opt->warmup, "Untimed warm-up iterations")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--image-size", opt->image_size, "Image size (multiple of 16)")->capture_default_str();
  add_device_option(cmd, opt->device);
  cmd->add_option("--model", opt->model, "Weights to use (default: freshly initialised)");
  cmd->add_option("--json", opt->json, "Also write the results as JSON");
  cmd->callback([opt] { run_benchmark(*opt); });
}

}  // namespace unetind::cli
