#include "unetind/loader.h"

#include <algorithm>
#include <numeric>

#include "data/rng.h"
#include "unetind/error.h"
#include "unetind/model.h"
#include "unetind/image_io.h"

namespace unetind {

namespace {
// Salts that keep the shuffle and augmentation streams apart.
constexpr uint64_t kShuffleSalt = 0x53485546464c45ULL;  // "SHUFFLE"
constexpr uint64_t kAugmentSalt = 0x4155474d454e54ULL;  // "AUGMENT"

void check_positive(int value, const char* name) {
  if (value <= 0) throw Error(std::string("loader: ") + name + " must be positive, got " + std::to_string(value));
}

// One sample as the network sees it: image scaled and both cropped or padded
// to size x size, then the same augmentation on both.
void load_sample(const Sample& sample, int size, const Augmentation* aug, float* image_out, float* mask_out) {
  const GrayImage image = read_image_gray(sample.image_path);
  std::vector<float> x = prepare_input(image.pixels, image.width, image.height, size);
  std::vector<float> m(x.size(), 0.0f);
  if (!sample.mask_path.empty()) {
    GrayImage mask = read_image_gray(sample.mask_path);
    if (mask.width != image.width || mask.height != image.height) {
      throw Error(sample.mask_path + ": mask is " + std::to_string(mask.width) + "x" + std::to_string(mask.height) +
                  " but its image " + sample.image_path + " is " + std::to_string(image.width) + "x" +
                  std::to_string(image.height));
    }
    for (float& v : mask.pixels) v /= 255.0f;
    m = crop_or_pad(mask.pixels, mask.width, mask.height, size, size);
  }
  if (aug) {
    apply_augmentation(x, size, *aug);
    apply_augmentation(m, size, *aug);
  }
  std::copy(x.begin(), x.end(), image_out);
  std::copy(m.begin(), m.end(), mask_out);
}
}  // namespace

void to_json(nlohmann::json& j, const LoaderState& state) {
  j = nlohmann::json{{"seed", state.seed},
                     {"sample_count", state.sample_count},
                     {"epoch", state.epoch},
                     {"position", state.position}};
}

void from_json(const nlohmann::json& j, LoaderState& state) {
  auto field = [&](const char* name) {
    const bool ok = j.is_object() && j.contains(name) && j.at(name).is_number_integer() &&
                    (j.at(name).is_number_unsigned() || j.at(name).get<int64_t>() >= 0);
    if (!ok)
      throw Error(std::string("loader state: field '") + name + "' missing or not a non-negative integer in " +
                  j.dump());
    return j.at(name).get<uint64_t>();
  };
  state.seed = field("seed");
  state.sample_count = field("sample_count");
  state.epoch = field("epoch");
  state.position = field("position");
}

Augmentation augmentation_for(uint64_t seed, uint64_t epoch, uint64_t position) {
  data::Rng rng(data::derive_seed(seed, kAugmentSalt, epoch, position));
  Augmentation aug;
  aug.flip = rng.chance(0.5);
  aug.rot90 = static_cast<int>(rng.below(3));
  return aug;
}

void apply_augmentation(std::vector<float>& square, int size, const Augmentation& aug) {
  if (static_cast<int64_t>(square.size()) != static_cast<int64_t>(size) * size)
    throw Error("apply_augmentation: " + std::to_string(square.size()) + " values is not " + std::to_string(size) +
                "x" + std::to_string(size));
  if (!aug.flip && aug.rot90 == 0) return;
  const std::vector<float> src = square;
  const int n = size - 1;
  // Output (y, x) takes the source pixel the transform moves there: walk
  // back through the k counter-clockwise turns, then through the flip.
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      int sy = y, sx = x;
      for (int k = 0; k < aug.rot90; ++k) {  // a CCW turn puts (x, n - y) at (y, x)
        const int ty = sx, tx = n - sy;
        sy = ty;
        sx = tx;
      }
      if (aug.flip) sx = n - sx;
      square[static_cast<size_t>(y) * size + x] = src[static_cast<size_t>(sy) * size + sx];
    }
  }
}

std::vector<size_t> epoch_order(uint64_t seed, uint64_t epoch, size_t count) {
  std::vector<size_t> order(count);
  std::iota(order.begin(), order.end(), size_t{0});
  data::Rng rng(data::derive_seed(seed, kShuffleSalt, epoch));
  for (size_t i = count; i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
  return order;
}

Loader::Loader(std::vector<Sample> samples, LoaderConfig config) : samples_(std::move(samples)), config_(config) {
  start(0, 0);
}

Loader::Loader(std::vector<Sample> samples, LoaderConfig config, const LoaderState& resume_from)
    : samples_(std::move(samples)), config_(config) {
  if (resume_from.seed != config_.seed)
    throw Error("loader state is for seed " + std::to_string(resume_from.seed) + ", the loader's seed is " +
                std::to_string(config_.seed));
  if (resume_from.sample_count != samples_.size() || resume_from.position >= samples_.size())
    throw Error("loader state (" + std::to_string(resume_from.sample_count) + " samples, position " +
                std::to_string(resume_from.position) + ") does not fit a dataset of " +
                std::to_string(samples_.size()) + " samples");
  start(resume_from.epoch, resume_from.position);
}

void Loader::start(uint64_t epoch, uint64_t position) {
  if (samples_.empty()) throw Error("loader: no samples");
  check_positive(config_.batch, "batch");
  check_positive(config_.image_size, "image_size");
  check_positive(config_.threads, "threads");
  check_positive(config_.prefetch, "prefetch");
  check_positive(config_.shards, "shards");
  if (config_.shard < 0 || config_.shard >= config_.shards || config_.batch % config_.shards != 0)
    throw Error("loader: shard " + std::to_string(config_.shard) + " of " + std::to_string(config_.shards) +
                " of a batch of " + std::to_string(config_.batch));
  start_ = epoch * samples_.size() + position;
  delivered_end_ = start_;
  threads_.reserve(static_cast<size_t>(config_.threads));
  for (int i = 0; i < config_.threads; ++i) threads_.emplace_back([this] { worker(); });
}

Loader::~Loader() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : threads_) t.join();
}

uint64_t Loader::stream_end() const { return config_.repeat ? UINT64_MAX : samples_.size(); }

uint64_t Loader::batch_start(uint64_t index) const { return start_ + index * static_cast<uint64_t>(config_.batch); }

void Loader::worker() {
  std::unique_lock lock(mutex_);
  for (;;) {
    work_cv_.wait(lock, [&] {
      return stopping_ || (next_to_build_ < next_to_deliver_ + static_cast<uint64_t>(config_.prefetch) &&
                           batch_start(next_to_build_) < stream_end());
    });
    if (stopping_) return;
    const uint64_t index = next_to_build_++;
    const uint64_t first = batch_start(index);
    const uint64_t count = std::min<uint64_t>(config_.batch, stream_end() - first);
    lock.unlock();
    Slot slot;
    try {
      slot.batch = build_batch(first, count);
    } catch (...) {
      slot.error = std::current_exception();
    }
    lock.lock();
    slots_.emplace(index, std::move(slot));
    ready_cv_.notify_all();
  }
}

Batch Loader::build_batch(uint64_t first, uint64_t count) const {
  const size_t n = samples_.size();
  const int size = config_.image_size;
  const size_t plane = static_cast<size_t>(size) * size;
  const uint64_t shards = static_cast<uint64_t>(config_.shards);
  const uint64_t shard = static_cast<uint64_t>(config_.shard);
  const uint64_t mine = count > shard ? (count - shard + shards - 1) / shards : 0;
  Batch b;
  b.count = static_cast<int>(mine);
  b.size = size;
  b.images.resize(mine * plane);
  b.masks.resize(mine * plane);
  uint64_t order_epoch = UINT64_MAX;
  std::vector<size_t> order;
  for (uint64_t i = shard, j = 0; i < count && !stopping_; i += shards, ++j) {
    const uint64_t epoch = (first + i) / n;
    const uint64_t position = (first + i) % n;
    if (config_.shuffle && epoch != order_epoch) {
      order = epoch_order(config_.seed, epoch, n);
      order_epoch = epoch;
    }
    const size_t index = config_.shuffle ? order[position] : position;
    Augmentation aug;
    if (config_.augment) aug = augmentation_for(config_.seed, epoch, position);
    load_sample(samples_[index], size, config_.augment ? &aug : nullptr, &b.images[j * plane], &b.masks[j * plane]);
    b.sample_indices.push_back(index);
  }
  return b;
}

Batch Loader::next() {
  std::unique_lock lock(mutex_);
  const uint64_t index = next_to_deliver_;
  const uint64_t first = batch_start(index);
  if (first >= stream_end()) {
    Batch end;
    end.size = config_.image_size;
    return end;
  }
  ready_cv_.wait(lock, [&] { return slots_.count(index) != 0; });
  auto it = slots_.find(index);
  if (it->second.error) std::rethrow_exception(it->second.error);
  Batch out = std::move(it->second.batch);
  slots_.erase(it);
  ++next_to_deliver_;
  delivered_end_ = std::min(first + static_cast<uint64_t>(config_.batch), stream_end());
  lock.unlock();
  work_cv_.notify_all();
  return out;
}

LoaderState Loader::state() const {
  std::lock_guard lock(mutex_);
  const uint64_t n = samples_.size();
  return LoaderState{config_.seed, n, delivered_end_ / n, delivered_end_ % n};
}

}  // namespace unetind
