#include "serve/batcher.h"

#include <algorithm>

#include "unetind/error.h"

namespace unetind::serve {

using Clock = std::chrono::steady_clock;

DynamicBatcher::DynamicBatcher(BatcherConfig config, size_t image_floats, RunBatch run)
    : config_(config), image_floats_(image_floats), run_(std::move(run)) {
  if (config_.max_batch < 1 || config_.max_queue < 1 || config_.max_queue_delay.count() < 0)
    throw Error("batching needs max batch >= 1, max queue >= 1 and a queue delay >= 0");
  worker_ = std::thread([this] { work(); });
}

DynamicBatcher::~DynamicBatcher() { stop(); }

std::future<BatchOutcome> DynamicBatcher::submit(std::vector<float> inputs, int count) {
  if (count < 1 || count > config_.max_batch || inputs.size() != image_floats_ * count)
    throw Error("DynamicBatcher::submit: " + std::to_string(count) + " image(s) do not fit a batch of " +
                std::to_string(config_.max_batch));
  Job job;
  job.inputs = std::move(inputs);
  job.count = count;
  job.enqueued = Clock::now();
  std::future<BatchOutcome> result = job.promise.get_future();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_ || static_cast<int>(queue_.size()) >= config_.max_queue) throw QueueFull{};
    queue_.push_back(std::move(job));
  }
  wake_.notify_one();
  return result;
}

void DynamicBatcher::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (worker_.joinable()) worker_.join();
}

bool DynamicBatcher::batch_is_full() const {
  int images = 0;
  for (const Job& j : queue_) {
    // A job that does not fit ends this batch: requests run in order.
    if (images + j.count > config_.max_batch) return true;
    images += j.count;
  }
  return images == config_.max_batch;
}

void DynamicBatcher::work() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and nothing left to run
    // Wait for the batch to fill, at most until the oldest job's deadline.
    const Clock::time_point deadline = queue_.front().enqueued + config_.max_queue_delay;
    while (!stopping_ && !batch_is_full() && Clock::now() < deadline)
      if (wake_.wait_until(lock, deadline) == std::cv_status::timeout) break;

    std::vector<Job> batch;
    int images = 0;
    while (!queue_.empty() && images + queue_.front().count <= config_.max_batch) {
      images += queue_.front().count;
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    lock.unlock();

    const Clock::time_point start = Clock::now();
    // A batch of one request (every batch, for a lone client) runs on that
    // request's own array; only several are gathered into one.
    std::vector<float> gathered, probs(image_floats_ * images);
    const float* inputs = batch.front().inputs.data();
    if (batch.size() > 1) {
      gathered.resize(image_floats_ * images);
      size_t at = 0;
      for (const Job& j : batch) {
        std::copy(j.inputs.begin(), j.inputs.end(), gathered.begin() + at);
        at += j.inputs.size();
      }
      inputs = gathered.data();
    }
    std::exception_ptr failure;
    try {
      run_(inputs, images, probs.data());
    } catch (...) {
      failure = std::current_exception();
    }
    const auto compute = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
    size_t at = 0;
    for (Job& j : batch) {
      if (failure) {
        j.promise.set_exception(failure);
        continue;
      }
      BatchOutcome out;
      if (batch.size() == 1)
        out.probs = std::move(probs);
      else
        out.probs.assign(probs.begin() + at, probs.begin() + at + j.inputs.size());
      out.queue_time = std::chrono::duration_cast<std::chrono::microseconds>(start - j.enqueued);
      out.compute_time = compute;
      out.batch_images = images;
      at += j.inputs.size();
      j.promise.set_value(std::move(out));
    }
    lock.lock();
  }
}

}  // namespace unetind::serve
