#include "serve/served_model.h"

#include "unetind/error.h"

namespace unetind::serve {

namespace {
// Executors are compiled for powers of two only (run_batch): the largest
// one that a batch of n images uses first.
int largest_power_of_two_at_most(int n) {
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
                                  options_.image_size, options_.precision, options_.conv_algorithm),
      threshold_in_use(options_.threshold, "--threshold", model.threshold)};
  loaded.predictor->check_memory(options_.max_batch);  // refused at start, not at the first full batch
  // One forward pass a batch size that run_batch uses (the powers of two up
  // to --max-batch) compiles its executor and touches its memory now, so
  // that no request after a (re)load pays for it and the server's memory
  // after loading is what it keeps (on a fast CPU a warm-up load may never
  // fill a batch of 8). Only these run on the compute thread: reading the
  // file does not hold up the other models' requests.
  const size_t pixels = static_cast<size_t>(options_.image_size) * options_.image_size;
  const int largest = largest_power_of_two_at_most(options_.max_batch);
  std::vector<float> zeros(largest * pixels), probs(largest * pixels);
  compute_.run([&] {
    for (int batch = 1; batch <= largest; batch *= 2) loaded.predictor->run(zeros.data(), batch, probs.data());
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
  // Executors are compiled for powers of two only, so that at most
  // log2(max_batch) + 1 of them hold memory: a batch of 7 runs as 4 + 2 + 1.
  // That costs little where the speed per image hardly depends on the batch
  // (Zen 5, an AVX2 EPYC) and more where batch 1 is slower per image (7.1
  // against 9.5 images/s at batch 4 on a Xeon with AMX; docs/serving.md).
  const size_t pixels = static_cast<size_t>(options_.image_size) * options_.image_size;
  compute_.run([&] {
    for (int done = 0; done < count;) {
      const int chunk = largest_power_of_two_at_most(count - done);
      predictor->run(inputs + done * pixels, chunk, probs + done * pixels);
      done += chunk;
    }
  });
  stats_.exec_count += 1;
  stats_.inference_count += count;
}

}  // namespace unetind::serve
