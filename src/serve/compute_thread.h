// The one thread that runs every computation of the server: the forward
// passes of all its models and their (re)loads, in the order submitted.
//
// Why one thread, and not each model's batching thread: Debian's oneDNN runs
// on GCC's OpenMP (libgomp), which gives every thread that opens parallel
// regions a team of workers of its own, and whose idle workers spin, ready
// for the next region, only while it manages no more threads than the
// machine has cores; beyond that they sleep and each region waits for a
// futex wake-up. A forward pass opens about 40 regions. With the main
// thread's team (from loading) beside a batching thread's, an empty region
// took 48 us instead of 0.9 us on a 2-core KVM guest, and a 512x512 forward
// pass 170 ms instead of 143 ms. Models share the cores anyway: their
// forward passes never ran at the same time.
//
// Since nothing else computes, the activations of every model's executors
// take turns in one arena: a server needs what its largest batch needs,
// however many models and batch sizes it keeps compiled.
#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>

#include "unetind/backend.h"

namespace unetind::serve {

class ComputeThread {
 public:
  ComputeThread();
  ~ComputeThread();  // runs what was submitted, then ends the thread
  ComputeThread(const ComputeThread&) = delete;
  ComputeThread& operator=(const ComputeThread&) = delete;

  // Runs `work` on the compute thread, after what was submitted before it,
  // and returns once it has run; rethrows what it threw.
  void run(const std::function<void()>& work);

  // For the executors whose passes run here only.
  const std::shared_ptr<ActivationArena>& activations() const { return activations_; }

 private:
  void loop();

  const std::shared_ptr<ActivationArena> activations_ = std::make_shared<ActivationArena>();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::packaged_task<void()>> queue_;
  bool stopping_ = false;
  std::thread thread_;  // last: it uses everything above
};

}  // namespace unetind::serve
