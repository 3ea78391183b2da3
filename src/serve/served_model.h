// One model the server serves: its weights file, the Predictor made from it
// (swapped whole on reload, so a batch in flight keeps the weights it began
// with), its dynamic batcher and its statistics (Triton's counters).
#pragma once
#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "serve/batcher.h"
#include "serve/compute_thread.h"
#include "unetind/operating_threshold.h"
#include "unetind/predictor.h"
#include "unetind/server.h"

namespace unetind::serve {

// Cumulative counters, as Triton's metrics and statistics report them.
struct ModelStats {
  std::atomic<uint64_t> request_success{0}, request_failure{0};
  std::atomic<uint64_t> inference_count{0};  // images
  std::atomic<uint64_t> exec_count{0};       // batches run
  std::atomic<uint64_t> request_duration_us{0}, queue_duration_us{0};
  std::atomic<uint64_t> compute_input_duration_us{0}, compute_infer_duration_us{0}, compute_output_duration_us{0};
};

class ServedModel {
 public:
  static constexpr const char* kVersion = "1";

  // Loads the weights (throws Error naming the file). Its loads and forward
  // passes run on `compute`, which all models share.
  ServedModel(ServedModelSpec spec, const ServerOptions& options, ComputeThread& compute);
  ~ServedModel();  // runs what is queued first

  const std::string& name() const { return spec_.name; }
  const std::string& path() const { return spec_.path; }
  int image_size() const { return options_.image_size; }
  bool ready() const;
  // The threshold its requests get unless they give one, and where it came
  // from (--threshold, or the model file); reread with the weights.
  ThresholdInUse threshold() const;
  ModelStats& stats() { return stats_; }
  DynamicBatcher& batcher() { return batcher_; }

  // Rereads the file; on any error the old weights stay and Error is thrown.
  void reload();
  // Drops the weights: the model is not ready until the next reload().
  void unload();
  // Runs what is queued and refuses more.
  void stop() { batcher_.stop(); }

 private:
  struct Loaded {
    std::shared_ptr<Predictor> predictor;
    ThresholdInUse threshold;
  };
  Loaded load() const;
  void run_batch(const float* inputs, int count, float* probs);

  const ServedModelSpec spec_;
  const ServerOptions options_;
  ComputeThread& compute_;
  mutable std::mutex predictor_mutex_;
  std::shared_ptr<Predictor> predictor_;
  ThresholdInUse threshold_;
  ModelStats stats_;
  DynamicBatcher batcher_;  // last: its worker uses everything above
};

}  // namespace unetind::serve
