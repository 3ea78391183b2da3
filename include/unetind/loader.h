// A multi-threaded, prefetching batch loader over a list of Samples.
//
// The samples form a stream: epoch 0 in its order, then epoch 1, ... (with
// `repeat`), each epoch a fresh permutation when `shuffle` is set. A batch is
// the next `batch` samples of the stream, so batches run across epoch ends as
// in tf.data's shuffle_and_repeat + batch. Everything random is a function of
// (seed, epoch, position in epoch), never of a generator consumed in thread
// order, so the batches are the same whatever the thread count or timing, and
// a LoaderState (epoch, position) resumes the exact same stream.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "unetind/dataset.h"

namespace unetind {

struct LoaderConfig {
  int batch = 16;
  int image_size = 512;  // images and masks are centre-cropped / zero-padded to this
  bool augment = true;   // SPEC.md section 2: flip p=0.5, then rot90 k in {0,1,2}
  bool shuffle = true;
  bool repeat = true;    // false: one pass, the last batch may be partial
  uint64_t seed = 0;
  int threads = 2;       // worker threads decoding PNGs
  int prefetch = 4;      // batches prepared ahead of next()
  // Data parallel: this loader delivers shard `shard` of `shards` of every
  // batch, its samples shard, shard + shards, ... (data_parallel.h's
  // shard_batch). `batch` stays the global batch, so the stream, its
  // augmentation and its state are those of the whole batch on every shard.
  int shard = 0;
  int shards = 1;
};

struct Batch {
  int count = 0;  // samples delivered (this shard's); 0: the stream has ended (repeat = false)
  int size = 0;   // image_size
  std::vector<float> images;  // count x size x size, x/127.5 - 1 via prepare_input (model.h)
  std::vector<float> masks;   // count x size x size, mask/255 (not binarised), padding 0
  std::vector<size_t> sample_indices;  // into the Loader's samples
};

// Where the stream stands: the next sample to deliver is `position` in epoch
// `epoch`. `seed` and `sample_count` guard against resuming another stream.
struct LoaderState {
  uint64_t seed = 0;
  uint64_t sample_count = 0;
  uint64_t epoch = 0;
  uint64_t position = 0;
};

// nlohmann::json conversions (ADL): json j = state; j.get<LoaderState>().
// from_json throws Error naming the missing or mistyped field.
void to_json(nlohmann::json& j, const LoaderState& state);
void from_json(const nlohmann::json& j, LoaderState& state);

// One sample's augmentation: flip left-right first, then rotate by
// rot90 x 90 degrees counter-clockwise (tf.image.rot90).
struct Augmentation {
  bool flip = false;
  int rot90 = 0;  // 0, 1 or 2
};

Augmentation augmentation_for(uint64_t seed, uint64_t epoch, uint64_t position);

// Applies `aug` in place to a size x size row-major image.
void apply_augmentation(std::vector<float>& square, int size, const Augmentation& aug);

// The sample order of one epoch: a permutation of 0..count-1 that depends
// only on (seed, epoch).
std::vector<size_t> epoch_order(uint64_t seed, uint64_t epoch, size_t count);

class Loader {
 public:
  // Throws Error for an empty sample list or a non-positive batch, size,
  // thread or prefetch count; with a state, when it belongs to another seed
  // or sample count.
  Loader(std::vector<Sample> samples, LoaderConfig config);
  Loader(std::vector<Sample> samples, LoaderConfig config, const LoaderState& resume_from);
  // Returns promptly: workers in the middle of a batch leave it unfinished.
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // The next batch, in stream order. A file that cannot be read, or a mask
  // whose size differs from its image, throws Error here (naming the files);
  // the loader stays at that batch and throws again if asked again.
  Batch next();

  // The state after the last batch next() returned.
  LoaderState state() const;

  const std::vector<Sample>& samples() const { return samples_; }
  const LoaderConfig& config() const { return config_; }

 private:
  struct Slot {  // a built batch, or the error that stopped it
    Batch batch;
    std::exception_ptr error;
  };

  void start(uint64_t epoch, uint64_t position);
  void worker();
  Batch build_batch(uint64_t first, uint64_t count) const;
  uint64_t batch_start(uint64_t index) const;
  uint64_t stream_end() const;

  std::vector<Sample> samples_;
  LoaderConfig config_;
  uint64_t start_ = 0;  // stream position of batch 0 (from the resume state)

  mutable std::mutex mutex_;
  std::condition_variable work_cv_;   // workers wait for room to prefetch
  std::condition_variable ready_cv_;  // next() waits for its batch
  uint64_t next_to_deliver_ = 0;      // batch index
  uint64_t next_to_build_ = 0;        // batch index
  uint64_t delivered_end_ = 0;        // stream position after the last delivered batch
  std::map<uint64_t, Slot> slots_;
  std::atomic<bool> stopping_{false};  // also read by workers in the middle of a batch
  std::vector<std::thread> threads_;
};

}  // namespace unetind
