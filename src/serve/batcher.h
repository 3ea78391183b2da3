// Dynamic batching with Triton's semantics: requests for one model wait in a
// bounded queue; a batch runs as soon as max_batch images have gathered, or
// when the oldest waiting request has waited max_queue_delay. A request is
// never split across batches. One worker thread a model runs the batches.
#pragma once
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

namespace unetind::serve {

struct BatcherConfig {
  int max_batch = 8;                         // images per forward pass
  std::chrono::microseconds max_queue_delay{2000};
  int max_queue = 64;                        // requests waiting; more are refused
};

struct BatchOutcome {
  std::vector<float> probs;                  // count x size x size
  std::chrono::microseconds queue_time{0};   // waiting, before its batch started
  std::chrono::microseconds compute_time{0}; // its batch's forward pass
  int batch_images = 0;                      // images in the batch it ran in
};

// Thrown by submit() when max_queue requests are waiting already.
struct QueueFull {};

class DynamicBatcher {
 public:
  // run(inputs, count, probs): one forward pass over `count` prepared images.
  using RunBatch = std::function<void(const float* inputs, int count, float* probs)>;

  DynamicBatcher(BatcherConfig config, size_t image_floats, RunBatch run);
  ~DynamicBatcher();  // stop()
  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  // inputs: count prepared images (1 <= count <= max_batch). The future
  // holds the probabilities, or the exception the batch threw.
  std::future<BatchOutcome> submit(std::vector<float> inputs, int count);

  // Runs what is queued, then ends the worker. Later submits are refused.
  void stop();

  const BatcherConfig& config() const { return config_; }

 private:
  struct Job {
    std::vector<float> inputs;
    int count = 0;
    std::chrono::steady_clock::time_point enqueued;
    std::promise<BatchOutcome> promise;
  };

  void work();
  // Under the lock: whether the jobs at the front make a whole batch, so
  // that waiting longer cannot add to it.
  bool batch_is_full() const;

  const BatcherConfig config_;
  const size_t image_floats_;
  const RunBatch run_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace unetind::serve
