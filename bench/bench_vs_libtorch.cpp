// bench_vs_libtorch: our speed against LibTorch's on the same TinyUNet, in
// the same process, with the same threads, batch, input and weights. After a
// check that both compute the same function, each round times one iteration
// of ours, then one of every torch variant, so that machine noise (other
// processes, frequency changes) hits all of them alike; the report is the
// median per contender and the ratio.
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <malloc.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <sstream>

#include "torch_tiny_unet.h"
#include "unetind/backend.h"
#include "unetind/error.h"
#include "unetind/predictor.h"
#include "unetind/trainer.h"

namespace unetind::bench {

namespace {

struct Options {
  std::string mode = "both", precision = "fp32", torch_variants = "default,channels_last,frozen", malloc = "keep";
  int batch = 0, threads = 2, iters = 10, warmup = 2, image_size = kModelImageSize;
  uint64_t seed = 0;
};

// Thresholds of the equality check (fp32): probabilities to 1e-4, as the
// predict tests hold them; logits relative to their largest magnitude, since
// sigmoid saturation could hide a difference in the probabilities alone.
constexpr double kMaxProbabilityDiff = 1e-4;
constexpr double kMaxRelativeLogitDiff = 1e-4;

// The reference's own training hyperparameters (SPEC.md section 2).
constexpr float kLearningRate = 1e-4f;
constexpr double kWeightDecay = 1e-5;

// Synthetic input as `unet-industrial benchmark`: noise in [-1, 1], and masks
// whose top sixteenth is defect.
struct Batch {
  std::vector<float> images, masks;
};
Batch synthetic_batch(int count, int size) {
  const size_t pixels = static_cast<size_t>(size) * size;
  Batch b{std::vector<float>(count * pixels), std::vector<float>(count * pixels)};
  uint32_t state = 12345;
  for (float& v : b.images) v = ((state = state * 1664525u + 1013904223u) >> 8) * (2.0f / 16777216.0f) - 1.0f;
  for (size_t i = 0; i < b.masks.size(); ++i) b.masks[i] = (i % pixels) < pixels / 16 ? 1.0f : 0.0f;
  return b;
}

std::vector<TorchVariant> parse_variants(const std::string& list, bool training) {
  std::vector<TorchVariant> out;
  std::stringstream ss(list);
  for (std::string item; std::getline(ss, item, ',');) {
    const TorchVariant v = parse_torch_variant(item);
    if (training && v == TorchVariant::Frozen) continue;  // inference only
    out.push_back(v);
  }
  if (out.empty()) throw Error("no torch variant to run (--torch-variants '" + list + "')");
  return out;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string load_average() {
  double load[3] = {0, 0, 0};
  if (getloadavg(load, 3) != 3) return "unknown";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f %.2f %.2f", load[0], load[1], load[2]);
  return buf;
}

struct Contender {
  std::string name;
  std::function<void()> iteration;
  std::vector<double> seconds;
};

// Warm-up for all, then rounds that take one timed iteration of each in turn.
void race(std::vector<Contender>& contenders, int warmup, int iters) {
  for (int w = 0; w < warmup; ++w)
    for (Contender& c : contenders) c.iteration();
  for (int i = 0; i < iters; ++i) {
    std::printf("  round %d/%d:", i + 1, iters);
    for (Contender& c : contenders) {
      const auto t0 = std::chrono::steady_clock::now();
      c.iteration();
      c.seconds.push_back(seconds_since(t0));
      std::printf(" %s %.3f s;", c.name.c_str(), c.seconds.back());
    }
    std::printf("\n");
    std::fflush(stdout);
  }
}

void report(const std::vector<Contender>& contenders, int batch) {
  const double ours = batch / median(contenders[0].seconds);
  double best = 0;
  std::string best_name;
  for (const Contender& c : contenders) {
    const double ips = batch / median(c.seconds);
    std::printf("  %-28s %9.3f images/s  (median %8.1f ms per batch)", c.name.c_str(), ips,
                1e3 * median(c.seconds));
    if (&c != &contenders[0]) {
      std::printf("  ours/this = %.2fx", ours / ips);
      if (ips > best) best = ips, best_name = c.name;
    }
    std::printf("\n");
  }
  std::printf("  RATIO ours / best libtorch (%s): %.2fx\n", best_name.c_str(), ours / best);
}

torch::ScalarType torch_dtype(Precision p) { return p == Precision::BF16 ? torch::kBFloat16 : torch::kFloat; }

// fp32, batch 1: our logits and probabilities against every torch variant's.
// Returns false when one of them computes a different function.
bool check_same_function(const Parameters& params, const std::vector<TorchVariant>& variants, int size,
                         int threads) {
  const Batch b = synthetic_batch(1, size);
  const size_t pixels = b.images.size();
  std::vector<float> logits(pixels), probs(pixels);
  {
    auto backend = make_backend("cpu", threads);
    auto exec = backend->compile(build_graph(params.config), ExecConfig{1, size, size, false, Precision::F32});
    exec->set_parameters(params.tensors);
    exec->forward(b.images.data(), logits.data(), false);
  }
  Predictor predictor(params, make_backend("cpu", threads), size, Precision::F32);
  predictor.run(b.images.data(), 1, probs.data());

  double max_logit = 0;
  for (float v : logits) max_logit = std::max(max_logit, std::fabs(static_cast<double>(v)));
  bool same = true;
  std::printf("equality check (fp32, one %dx%d image; max |logit| %.3f):\n", size, size, max_logit);
  for (TorchVariant v : variants) {
    TorchTinyUNet peer(params, v, torch::kFloat, false);
    c10::InferenceMode guard;
    const torch::Tensor t_logits = peer.forward(peer.input(b.images.data(), 1, size)).contiguous();
    const torch::Tensor t_probs = torch::sigmoid(t_logits);
    const float* tl = t_logits.data_ptr<float>();
    const float* tp = t_probs.data_ptr<float>();
    double dl = 0, dp = 0;
    for (size_t i = 0; i < pixels; ++i) {
      dl = std::max(dl, std::fabs(static_cast<double>(tl[i]) - logits[i]));
      dp = std::max(dp, std::fabs(static_cast<double>(tp[i]) - probs[i]));
    }
    const bool ok = dp <= kMaxProbabilityDiff && dl <= kMaxRelativeLogitDiff * std::max(1.0, max_logit);
    std::printf("  libtorch %-14s max abs diff: probabilities %.3g, logits %.3g  %s\n", to_string(v).c_str(), dp, dl,
                ok ? "OK" : "MISMATCH");
    same = same && ok;
  }
  return same;
}

void bench_inference(const Options& opt, const Parameters& params, Precision precision) {
  const int batch = opt.batch > 0 ? opt.batch : 8;
  const int size = opt.image_size;
  const Batch b = synthetic_batch(batch, size);
  std::vector<float> probs(b.images.size());

  std::vector<Contender> contenders;
  Predictor predictor(params, make_backend("cpu", opt.threads), size, precision);
  contenders.push_back({"unet-industrial", [&] { predictor.run(b.images.data(), batch, probs.data()); }, {}});
  std::vector<std::unique_ptr<TorchTinyUNet>> peers;
  for (TorchVariant v : parse_variants(opt.torch_variants, false)) {
    peers.push_back(std::make_unique<TorchTinyUNet>(params, v, torch_dtype(precision), false));
    TorchTinyUNet& peer = *peers.back();
    contenders.push_back({"libtorch " + to_string(v), [&peer, &b, batch, size] {
                            c10::InferenceMode guard;
                            const torch::Tensor p = torch::sigmoid(peer.forward(peer.input(b.images.data(), batch, size)));
                            (void)p;
                          }, {}});
  }
  std::printf("\ninference, %s, batch %d, %dx%d, %d threads, %d rounds after %d warm-up (load %s)\n",
              to_string(precision).c_str(), batch, size, size, opt.threads, opt.iters, opt.warmup,
              load_average().c_str());
  race(contenders, opt.warmup, opt.iters);
  report(contenders, batch);
  std::printf("  (load after: %s)\n", load_average().c_str());
}

// One torch training step with the same objective as ours: the adaptive loss
// on the logits of the whole batch, plus weight decay on every parameter.
class TorchTrainer {
 public:
  TorchTrainer(const Parameters& params, TorchVariant variant, Precision precision)
      : peer_(params, variant, torch::kFloat, true),
        autocast_(precision == Precision::BF16),
        // torch's RMSprop is not TF1's: eps inside the sqrt in TF, outside in
        // torch; mean square starting at 1 in TF, 0 in torch. The work per
        // step is the same, which is all this comparison needs.
        optimizer_(peer_.parameters(), torch::optim::RMSpropOptions(kLearningRate)
                                           .alpha(0.9)
                                           .eps(1e-10)
                                           .momentum(0.8)
                                           .centered(true)) {}

  void step(const Batch& b, int batch, int size) {
    optimizer_.zero_grad();
    const torch::Tensor x = peer_.input(b.images.data(), batch, size);
    const torch::Tensor y = torch::from_blob(const_cast<float*>(b.masks.data()), {batch, 1, size, size});
    torch::Tensor logits;
    if (autocast_) {
      // torch's CPU mixed precision: bf16 convolutions, fp32 master weights.
      at::autocast::set_cpu_enabled(true);
      at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
      logits = peer_.forward(x).to(torch::kFloat);
      at::autocast::set_cpu_enabled(false);
      at::autocast::clear_cache();
    } else {
      logits = peer_.forward(x);
    }
    const torch::Tensor p = torch::sigmoid(logits);
    const torch::Tensor dice = 1 - (2 * (y * p).sum() + 1) / (p.sum() + y.sum() + 1);
    const torch::Tensor reconstruction =
        dice.item<double>() < kAdaptiveSwitchAt ? dice : torch::binary_cross_entropy_with_logits(logits, y);
    torch::Tensor l2 = torch::zeros({});
    for (const torch::Tensor& v : peer_.parameters()) l2 = l2 + v.square().sum();
    const torch::Tensor loss = reconstruction + kWeightDecay / 2 * l2;
    loss.backward();
    optimizer_.step();
  }

 private:
  TorchTinyUNet peer_;
  bool autocast_;
  torch::optim::RMSprop optimizer_;
};

void bench_training(const Options& opt, const Parameters& params, Precision precision) {
  const int batch = opt.batch > 0 ? opt.batch : 16;
  const int size = opt.image_size;
  const Batch b = synthetic_batch(batch, size);

  std::vector<Contender> contenders;
  auto backend = make_backend("cpu", opt.threads);
  // The state stays in the executor, as in `train`.
  auto ours = backend->compile_training(build_graph(params.config), ExecConfig{batch, size, size, true, precision},
                                        TrainingConfig{LossKind::Adaptive, kWeightDecay, {}}, nullptr);
  ours->load(params.tensors, {});
  contenders.push_back({"unet-industrial", [&] { ours->step(b.images.data(), b.masks.data(), kLearningRate); }, {}});
  std::vector<std::unique_ptr<TorchTrainer>> peers;
  for (TorchVariant v : parse_variants(opt.torch_variants, true)) {
    peers.push_back(std::make_unique<TorchTrainer>(params, v, precision));
    TorchTrainer& peer = *peers.back();
    contenders.push_back({"libtorch " + to_string(v), [&peer, &b, batch, size] { peer.step(b, batch, size); }, {}});
  }
  std::printf("\ntraining (forward, adaptive loss, backward, weight decay, centered RMSProp), %s%s, batch %d, %dx%d, "
              "%d threads, %d rounds after %d warm-up (load %s)\n",
              to_string(precision).c_str(), precision == Precision::BF16 ? " (torch: CPU autocast)" : "", batch, size,
              size, opt.threads, opt.iters, opt.warmup, load_average().c_str());
  race(contenders, opt.warmup, opt.iters);
  report(contenders, batch);
  std::printf("  (load after: %s)\n", load_average().c_str());
}

// Torch allocates every activation afresh in every op; glibc serves those
// large blocks with mmap and returns them on free, so each op faults its
// pages in again, which is slow on a VM (this one is Firecracker, where it
// dominates torch's time). "keep" has glibc keep freed memory for reuse, as a caching
// allocator (or jemalloc, which PyTorch's CPU tuning guide recommends) would;
// ours plans its memory once and does not care either way.
void configure_malloc(const std::string& mode) {
  if (mode == "system") return;
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, -1);  // glibc reads it as a size_t: never trim
}

int run(const Options& opt) {
  configure_malloc(opt.malloc);
  check_image_size(opt.image_size);
  if (opt.threads < 1 || opt.iters < 1 || opt.warmup < 0 || opt.batch < 0)
    throw Error("--threads and --iters must be at least 1, --warmup and --batch at least 0");
  const Precision precision = parse_precision(opt.precision);
  // Before torch starts any pool: one intra-op pool of `threads` for both
  // sides (ours and torch's both run on the same OpenMP runtime), and no
  // inter-op parallelism, which ours does not have either.
  at::set_num_interop_threads(1);
  torch::set_num_threads(opt.threads);
  set_cpu_threads(opt.threads);

  const Parameters params = init_parameters({}, Initializer::HeNormal, opt.seed);
  std::printf(
      "bench_vs_libtorch: LibTorch %s (oneDNN in torch: %s), %d threads (ours %d, torch %d), malloc %s, load %s\n",
      TORCH_VERSION, at::hasMKLDNN() ? "yes" : "no", opt.threads, cpu_threads(), at::get_num_threads(),
      opt.malloc.c_str(), load_average().c_str());
  if (!check_same_function(params, parse_variants(opt.torch_variants, false), opt.image_size, opt.threads)) {
    std::fprintf(stderr, "bench_vs_libtorch: the torch model computes a different function; not timing it\n");
    return 1;
  }
  if (opt.mode != "train") bench_inference(opt, params, precision);
  if (opt.mode != "infer") bench_training(opt, params, precision);
  return 0;
}

}  // namespace

}  // namespace unetind::bench

int main(int argc, char** argv) {
  unetind::bench::Options opt;
  CLI::App app{"Same-run speed comparison of unet-industrial and LibTorch on TinyUNet"};
  app.add_option("--mode", opt.mode, "infer, train or both")
      ->check(CLI::IsMember({"infer", "train", "both"}))
      ->capture_default_str();
  app.add_option("--batch", opt.batch, "Batch size (0: 8 for inference, 16 for training)")->capture_default_str();
  app.add_option("--threads", opt.threads, "Compute threads, the same for both")->capture_default_str();
  app.add_option("--iters", opt.iters, "Timed rounds (one iteration of each contender a round)")->capture_default_str();
  app.add_option("--warmup", opt.warmup, "Untimed rounds first")->capture_default_str();
  app.add_option("--image-size", opt.image_size, "Image size (multiple of 16)")->capture_default_str();
  app.add_option("--precision", opt.precision, "fp32 or bf16")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
  app.add_option("--torch-variants", opt.torch_variants,
                 "Comma-separated: default, channels_last, frozen (inference only)")
      ->capture_default_str();
  app.add_option("--malloc", opt.malloc,
                 "keep: glibc keeps freed memory for reuse (helps torch on VMs); system: glibc's defaults")
      ->check(CLI::IsMember({"keep", "system"}))
      ->capture_default_str();
  app.add_option("--seed", opt.seed, "Seed of the he_normal weights both sides use")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    return unetind::bench::run(opt);
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "bench_vs_libtorch: libtorch: %s\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_vs_libtorch: %s\n", e.what());
    return 1;
  }
}
