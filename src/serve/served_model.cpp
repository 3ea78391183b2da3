#include "serve/served_model.h"

#include "unetind/error.h"

namespace unetind::serve {

namespace {
// The batch sizes that have executors (compiled at load) and that a batch of
// n images runs as: every size where the executors' activations take turns
// in one arena (the CPU backend: they cost only their weights, and a batch
// of 7 runs whole), else the powers of two, which bound the executors (and
// their activations) to log2(max batch) + 1 and run a batch of 7 as 4 + 2 + 1.
int largest_compiled_at_most(int n, bool every_size) {
  if (every_size) return n;
  int p = 1;
  while (p * 2 <= n) p *= 2;
  return p;
}
}  // namespace

ServedModel::ServedModel(ServedModelSpec spec, const ServerOptions& options, ComputeThread& compute)
    : spec_(std::move(spec)),
      options_(options),
      compute_(compute),
      batcher_(BatcherConfig{options.max_batch, std::chrono::microseconds(options.max_queue_delay_us),
                             options.max_queue},
               static_cast<size_t>(options.image_size) * options.image_size,
               [this](const float* in, int count, float* probs) { run_batch(in, count, probs); }) {
  Loaded loaded = load();
  predictor_ = std::move(loaded.predictor);
  threshold_ = std::move(loaded.threshold);
}

ServedModel::~ServedModel() { batcher_.stop(); }

ServedModel::Loaded ServedModel::load() const {
  LoadedModel model = load_model(spec_.path);
  Loaded loaded{
      std::make_shared<Predictor>(std::move(model.parameters), make_backend(options_.device, options_.threads),
                                  options_.image_size, options_.precision, options_.conv_algorithm,
                                  compute_.activations()),
      threshold_in_use(options_.threshold, "--threshold", model.threshold)};
  loaded.predictor->check_memory(options_.max_batch);  // refused at start, not at the first full batch
  // Every executor that run_batch uses is compiled now, and the largest runs
  // once to touch the memory the smaller ones share, so that no request
  // after a (re)load pays for either and the server's memory after loading
  // is what it keeps (on a fast CPU a warm-up load may never fill a batch
  // of 8). Only this runs on the compute thread, since compiling sets the
  // OpenMP thread count and loading the weights runs parallel regions:
  // reading the file does not hold up the other models' requests.
  const size_t pixels = static_cast<size_t>(options_.image_size) * options_.image_size;
  const bool every_size = loaded.predictor->shares_activations();
  compute_.run([&] {
    for (int batch = 1; batch <= options_.max_batch; ++batch)
      if (largest_compiled_at_most(batch, every_size) == batch) loaded.predictor->prepare(batch);
    const int largest = largest_compiled_at_most(options_.max_batch, every_size);
    std::vector<float> zeros(largest * pixels), probs(largest * pixels);
    loaded.predictor->run(zeros.data(), largest, probs.data());
  });
  return loaded;
}

bool ServedModel::ready() const {
  std::lock_guard<std::mutex> lock(predictor_mutex_);
  return predictor_ != nullptr;
}

ThresholdInUse ServedModel::threshold() const {
  std::lock_guard<std::mutex> lock(predictor_mutex_);
  return threshold_;
}

void ServedModel::reload() {
  Loaded fresh = load();  // throws, and the old one stays
  std::lock_guard<std::mutex> lock(predictor_mutex_);
  predictor_ = std::move(fresh.predictor);
  threshold_ = std::move(fresh.threshold);
}

void ServedModel::unload() {
  std::lock_guard<std::mutex> lock(predictor_mutex_);
  predictor_.reset();
}

void ServedModel::run_batch(const float* inputs, int count, float* probs) {
  std::shared_ptr<Predictor> predictor;
  {
    std::lock_guard<std::mutex> lock(predictor_mutex_);
    predictor = predictor_;
  }
  if (!predictor) throw Error("model '" + spec_.name + "' is not loaded");
  const size_t pixels = static_cast<size_t>(options_.image_size) * options_.image_size;
  const bool every_size = predictor->shares_activations();
  compute_.run([&] {
    for (int done = 0; done < count;) {
      const int chunk = largest_compiled_at_most(count - done, every_size);
      predictor->run(inputs + done * pixels, chunk, probs + done * pixels);
      done += chunk;
    }
  });
  stats_.exec_count += 1;
  stats_.inference_count += count;
}

}  // namespace unetind::serve
