// Writes a synthetic class in DAGM's layout; the pixels come from
// synthesize_image (synth_image.cpp).
#include <algorithm>
#include <atomic>
#include <exception>
#include <filesystem>
#include <mutex>
#include <numeric>
#include <thread>

#include "data/rng.h"
#include "unetind/atomic_file.h"
#include "unetind/error.h"
#include "unetind/png.h"
#include "unetind/synth.h"

namespace fs = std::filesystem;

namespace unetind {

namespace {

constexpr uint64_t kSplitSalt = 0x53594e54535054ULL;  // "SYNTSPT"

struct Item {
  fs::path split_dir;
  uint64_t number = 0;
  bool defective = false;
};

std::string numbered(uint64_t number, int width) {
  std::string s = std::to_string(number);
  return std::string(static_cast<size_t>(std::max(0, width - static_cast<int>(s.size()))), '0') + s;
}

// Which of `count` images (numbered from `first`) are defective: a seeded
// choice of `defective` of them, so defects are spread over the numbers as in
// DAGM.
std::vector<bool> choose_defective(uint64_t seed, int class_id, int split, int count, int defective) {
  std::vector<int> order(static_cast<size_t>(count));
  std::iota(order.begin(), order.end(), 0);
  data::Rng rng(data::derive_seed(seed, kSplitSalt, static_cast<uint64_t>(class_id), static_cast<uint64_t>(split)));
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
  std::vector<bool> flags(static_cast<size_t>(count), false);
  for (int i = 0; i < defective; ++i) flags[static_cast<size_t>(order[static_cast<size_t>(i)])] = true;
  return flags;
}

void make_dirs(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw_file_error(dir.string(), "cannot create folder: " + ec.message());
}

}  // namespace

void write_synthetic_class(const std::string& root, const SynthConfig& config) {
  if (config.class_id < 1 || config.class_id > 10)
    throw Error("synth: class must be 1..10, got " + std::to_string(config.class_id));
  for (int n : {config.train_defective, config.train_ok, config.test_defective, config.test_ok})
    if (n < 0) throw Error("synth: image counts must not be negative");
  if (config.train_defective + config.train_ok == 0 || config.test_defective + config.test_ok == 0)
    throw Error("synth: each split needs at least one image");
  if (config.size < 32) throw Error("synth: image size must be at least 32, got " + std::to_string(config.size));

  const fs::path cls = fs::path(root) / ("Class" + std::to_string(config.class_id));
  const int test_count = config.test_defective + config.test_ok;
  const int train_count = config.train_defective + config.train_ok;
  const int width = std::max<int>(4, static_cast<int>(std::to_string(test_count + train_count).size()));

  // DAGM numbers Test from 1 and Train after it.
  std::vector<Item> items;
  struct SplitPlan {
    const char* name;
    const char* csv;
    uint64_t first;
    int count;
    int defective;
  };
  const SplitPlan plans[] = {
      {"Test", "test_list.csv", 1, test_count, config.test_defective},
      {"Train", "train_list.csv", static_cast<uint64_t>(test_count) + 1, train_count, config.train_defective},
  };
  for (int p = 0; p < 2; ++p) {
    const SplitPlan& plan = plans[p];
    const fs::path split_dir = cls / plan.name;
    make_dirs(split_dir / "Label");
    const std::vector<bool> flags = choose_defective(config.seed, config.class_id, p, plan.count, plan.defective);
    std::string labels = "1\r\n";
    std::string csv = "image_filepath,lbl_image_filepath,is_defective\n";
    for (int i = 0; i < plan.count; ++i) {
      const uint64_t number = plan.first + static_cast<uint64_t>(i);
      const std::string id = numbered(number, width);
      const bool defective = flags[static_cast<size_t>(i)];
      // DAGM's exact row forms, trailing tab on clean rows included.
      labels += defective ? id + "\t1\t" + id + ".PNG\t0\t" + id + "_label.PNG\r\n"
                          : id + "\t0\t" + id + ".PNG\t0\t0\t\r\n";
      csv += id + ".PNG," + (defective ? id + "_label.PNG" : std::string()) + "," + (defective ? "1" : "0") + "\n";
      items.push_back({split_dir, number, defective});
    }
    write_file_atomic((split_dir / "Label" / "Labels.txt").string(), labels);
    write_file_atomic((cls / plan.csv).string(), csv);
  }

  // Each image depends only on (seed, class, number): threads just share the work.
  const int threads = std::max(1, config.threads > 0 ? config.threads
                                                      : static_cast<int>(std::thread::hardware_concurrency()));
  std::atomic<size_t> next{0};
  std::mutex error_mutex;
  std::exception_ptr error;
  auto work = [&] {
    for (size_t i = next++; i < items.size(); i = next++) {
      try {
        const Item& item = items[i];
        const std::string id = numbered(item.number, width);
        const SynthImage image =
            synthesize_image(config.class_id, config.size, item.defective, config.seed, item.number);
        write_png_gray8((item.split_dir / (id + ".PNG")).string(), config.size, config.size, image.pixels);
        const fs::path label = item.split_dir / "Label" / (id + "_label.PNG");
        if (item.defective) {
          write_png_gray8(label.string(), config.size, config.size, image.mask);
        } else {
          std::error_code ec;  // a label left by an earlier run with other flags
          fs::remove(label, ec);
        }
      } catch (...) {
        std::lock_guard lock(error_mutex);
        if (!error) error = std::current_exception();
        next = items.size();
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace unetind
