// The batch loader: the same batches whatever the thread count, exact resume
// from a saved state, epochs as permutations, augmentation applied alike to
// image and mask with k never 3, crop/pad and mask scaling, and errors
// surfaced from next() with the files named.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "test_util.h"
#include "unetind/atomic_file.h"
#include "unetind/error.h"
#include "unetind/loader.h"
#include "unetind/png.h"

namespace fs = std::filesystem;
using namespace unetind;

namespace {

constexpr int kSide = 12;

// A pattern with no symmetry at all, different for every sample id, in 0..255.
uint8_t pattern(int id, int y, int x) { return static_cast<uint8_t>((id * 37 + y * 19 + x * 3 + x * y) % 251); }

// n samples of kSide x kSide; every third has a mask equal to its image, the
// rest have none.
std::vector<Sample> make_samples(const test::TempDir& dir, int n) {
  std::vector<Sample> samples;
  for (int id = 0; id < n; ++id) {
    std::vector<uint8_t> px(kSide * kSide);
    for (int y = 0; y < kSide; ++y)
      for (int x = 0; x < kSide; ++x) px[static_cast<size_t>(y * kSide + x)] = pattern(id, y, x);
    const std::string image = dir.str("img" + std::to_string(id) + ".png");
    write_png_gray8(image, kSide, kSide, px);
    std::string mask;
    if (id % 3 == 0) {
      mask = dir.str("mask" + std::to_string(id) + ".png");
      write_png_gray8(mask, kSide, kSide, px);
    }
    samples.push_back({image, mask, !mask.empty()});
  }
  return samples;
}

std::vector<Batch> take(Loader& loader, int count) {
  std::vector<Batch> out;
  for (int i = 0; i < count; ++i) out.push_back(loader.next());
  return out;
}

void expect_same(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE("batch " + std::to_string(i));
    EXPECT_EQ(a[i].count, b[i].count);
    EXPECT_EQ(a[i].sample_indices, b[i].sample_indices);
    EXPECT_EQ(a[i].images, b[i].images);  // bit for bit
    EXPECT_EQ(a[i].masks, b[i].masks);
  }
}

// The 8 symmetries of a square, written out independently of the loader:
// flip left-right (optional), then k counter-clockwise quarter turns.
std::vector<float> transform(const std::vector<float>& in, int n, bool flip, int k) {
  std::vector<float> cur = in;
  if (flip)
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n; ++x) cur[static_cast<size_t>(y * n + x)] = in[static_cast<size_t>(y * n + n - 1 - x)];
  for (int t = 0; t < k; ++t) {
    std::vector<float> next(cur.size());
    // numpy.rot90 / tf.image.rot90: the top row becomes the left column, read bottom-up.
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n; ++x) next[static_cast<size_t>(y * n + x)] = cur[static_cast<size_t>(x * n + n - 1 - y)];
    cur = next;
  }
  return cur;
}

template <typename F>
void expect_error(F f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one naming " << parts.front();
  } catch (const Error& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << "\nlacks: " << p;
  }
}

TEST(Augmentation, HandWorkedExamples) {
  // 1 2 3
  // 4 5 6
  // 7 8 9
  const std::vector<float> m = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  auto apply = [&](bool flip, int k) {
    std::vector<float> v = m;
    apply_augmentation(v, 3, {flip, k});
    return v;
  };
  EXPECT_EQ(apply(false, 0), m);
  EXPECT_EQ(apply(true, 0), (std::vector<float>{3, 2, 1, 6, 5, 4, 9, 8, 7}));
  EXPECT_EQ(apply(false, 1), (std::vector<float>{3, 6, 9, 2, 5, 8, 1, 4, 7}));  // counter-clockwise
  EXPECT_EQ(apply(false, 2), (std::vector<float>{9, 8, 7, 6, 5, 4, 3, 2, 1}));
  // Flip first, then turn: the flipped rows 3 2 1 / 6 5 4 / 9 8 7 turned once.
  EXPECT_EQ(apply(true, 1), (std::vector<float>{1, 4, 7, 2, 5, 8, 3, 6, 9}));
  std::vector<float> wrong(8);
  EXPECT_THROW(apply_augmentation(wrong, 3, {true, 1}), Error);
}

TEST(Augmentation, FlipIsFairAndKIsUniformOverZeroOneTwo) {
  std::map<int, int> k_count;
  int flips = 0;
  const int n = 30000;
  for (int i = 0; i < n; ++i) {
    const Augmentation a = augmentation_for(static_cast<uint64_t>(i % 7), static_cast<uint64_t>(i % 13),
                                            static_cast<uint64_t>(i));
    ++k_count[a.rot90];
    flips += a.flip;
  }
  EXPECT_EQ(k_count.size(), 3u) << "k must take exactly the values 0, 1, 2";
  for (int k = 0; k < 3; ++k) EXPECT_NEAR(k_count[k] / double(n), 1.0 / 3, 0.015) << "k=" << k;
  EXPECT_EQ(k_count.count(3), 0u);
  EXPECT_NEAR(flips / double(n), 0.5, 0.015);
}

TEST(Loader, SameTransformOnImageAndMaskAndOnlySixSymmetriesOccur) {
  test::TempDir dir;
  const auto samples = make_samples(dir, 6);
  LoaderConfig config;
  config.batch = 4;
  config.image_size = kSide;
  config.seed = 21;
  config.threads = 2;
  Loader loader(samples, config);
  std::set<std::pair<bool, int>> seen;
  uint64_t stream = 0;
  for (int b = 0; b < 60; ++b) {
    const Batch batch = loader.next();
    ASSERT_EQ(batch.count, 4);
    const size_t plane = kSide * kSide;
    for (int i = 0; i < batch.count; ++i, ++stream) {
      const int id = static_cast<int>(batch.sample_indices[static_cast<size_t>(i)]);
      std::vector<float> original(plane);
      for (int y = 0; y < kSide; ++y)
        for (int x = 0; x < kSide; ++x) original[static_cast<size_t>(y * kSide + x)] = pattern(id, y, x);
      const std::vector<float> image(batch.images.begin() + static_cast<long>(i * plane),
                                     batch.images.begin() + static_cast<long>((i + 1) * plane));
      const std::vector<float> mask(batch.masks.begin() + static_cast<long>(i * plane),
                                    batch.masks.begin() + static_cast<long>((i + 1) * plane));
      // Which symmetry of the original is the image?
      int matches = 0;
      bool flip = false;
      int k = -1;
      for (int f = 0; f < 2; ++f)
        for (int t = 0; t < 4; ++t) {
          std::vector<float> expected = transform(original, kSide, f, t);
          for (float& v : expected) v = v / 127.5f - 1.0f;
          if (test::max_abs_diff(expected, image) < 1e-6) ++matches, flip = f, k = t;
        }
      ASSERT_EQ(matches, 1) << "sample " << id << " is not a unique symmetry of its source";
      seen.insert({flip, k});
      const Augmentation want = augmentation_for(config.seed, stream / samples.size(), stream % samples.size());
      EXPECT_EQ(flip, want.flip);
      EXPECT_EQ(k, want.rot90);
      if (samples[static_cast<size_t>(id)].mask_path.empty()) {
        EXPECT_TRUE(std::all_of(mask.begin(), mask.end(), [](float v) { return v == 0.0f; }));
      } else {
        // The mask file equals the image file, so the same transform makes
        // mask/255 and (x/127.5 - 1) agree pixel by pixel.
        std::vector<float> from_mask = mask;
        for (float& v : from_mask) v = 2.0f * v - 1.0f;
        EXPECT_LT(test::max_abs_diff(from_mask, image), 1e-5);
      }
    }
  }
  EXPECT_EQ(seen.size(), 6u);
  EXPECT_EQ(seen.count({false, 3}) + seen.count({true, 3}), 0u) << "rot270 must never occur";
}

TEST(Loader, BatchesDoNotDependOnThreadsOrPrefetch) {
  test::TempDir dir;
  const auto samples = make_samples(dir, 13);
  LoaderConfig config;
  config.batch = 5;  // batches straddle epoch ends (13 samples)
  config.image_size = 16;
  config.seed = 77;
  config.threads = 1;
  config.prefetch = 1;
  Loader one(samples, config);
  const auto a = take(one, 9);
  config.threads = 4;
  config.prefetch = 3;
  Loader four(samples, config);
  const auto b = take(four, 9);
  expect_same(a, b);

  config.seed = 78;
  Loader other(samples, config);
  EXPECT_NE(take(other, 2)[0].sample_indices, a[0].sample_indices) << "a different seed shuffles differently";
}

TEST(Loader, EveryEpochIsAPermutation) {
  test::TempDir dir;
  const auto samples = make_samples(dir, 7);
  LoaderConfig config;
  config.batch = 3;
  config.image_size = kSide;
  config.augment = false;
  config.seed = 5;
  Loader loader(samples, config);
  std::vector<size_t> stream;
  for (const Batch& b : take(loader, 14)) stream.insert(stream.end(), b.sample_indices.begin(), b.sample_indices.end());
  ASSERT_EQ(stream.size(), 42u);  // 6 epochs
  std::set<std::vector<size_t>> orders;
  for (size_t e = 0; e < 6; ++e) {
    std::vector<size_t> epoch(stream.begin() + static_cast<long>(e * 7), stream.begin() + static_cast<long>(e * 7 + 7));
    EXPECT_EQ(epoch, epoch_order(5, e, 7));
    orders.insert(epoch);
    std::sort(epoch.begin(), epoch.end());
    EXPECT_EQ(epoch, (std::vector<size_t>{0, 1, 2, 3, 4, 5, 6}));
  }
  EXPECT_GT(orders.size(), 3u) << "epochs are reshuffled";

  config.shuffle = false;
  Loader plain(samples, config);
  EXPECT_EQ(plain.next().sample_indices, (std::vector<size_t>{0, 1, 2}));
  EXPECT_EQ(plain.next().sample_indices, (std::vector<size_t>{3, 4, 5}));
  EXPECT_EQ(plain.next().sample_indices, (std::vector<size_t>{6, 0, 1}));
}

TEST(Loader, OnePassEndsWithAPartialBatchThenEmpty) {
  test::TempDir dir;
  const auto samples = make_samples(dir, 7);
  LoaderConfig config;
  config.batch = 3;
  config.image_size = kSide;
  config.repeat = false;
  config.threads = 3;
  Loader loader(samples, config);
  std::vector<size_t> seen;
  std::vector<int> counts;
  for (;;) {
    const Batch b = loader.next();
    if (b.count == 0) break;
    counts.push_back(b.count);
    EXPECT_EQ(b.images.size(), static_cast<size_t>(b.count) * kSide * kSide);
    EXPECT_EQ(b.masks.size(), b.images.size());
    seen.insert(seen.end(), b.sample_indices.begin(), b.sample_indices.end());
  }
  EXPECT_EQ(counts, (std::vector<int>{3, 3, 1}));
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<size_t>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(loader.next().count, 0);
}

TEST(Loader, ResumeFromStateGivesTheSameNextBatches) {
  test::TempDir dir;
  const auto samples = make_samples(dir, 11);
  LoaderConfig config;
  config.batch = 4;
  config.image_size = 14;  // padded by one row/column on each side
  config.seed = 1234;
  Loader first(samples, config);
  take(first, 5);  // 20 samples: into the second epoch
  const LoaderState state = first.state();
  EXPECT_EQ(state.epoch, 1u);
  EXPECT_EQ(state.position, 9u);
  const auto expected = take(first, 6);

  // Through JSON, as a checkpoint would carry it, and with other threads.
  const nlohmann::json j = state;
  const LoaderState restored = nlohmann::json::parse(j.dump()).get<LoaderState>();
  config.threads = 3;
  Loader resumed(samples, config, restored);
  EXPECT_EQ(resumed.state().epoch, 1u);
  EXPECT_EQ(resumed.state().position, 9u);
  expect_same(take(resumed, 6), expected);
}

// Data parallel: the shards of a batch are samples r, r + N, ... of the
// whole batch, the same samples with the same augmentation, and every
// shard's state is the whole stream's.
TEST(Loader, ShardsTogetherAreTheGlobalBatch) {
  test::TempDir dir;
  const auto samples = make_samples(dir, 7);
  LoaderConfig config;
  config.batch = 6;
  config.image_size = kSide;
  config.seed = 77;
  Loader whole(samples, config);
  const auto global = take(whole, 3);  // across an epoch's end
  const size_t plane = size_t(kSide) * kSide;
  for (int shards : {2, 3}) {
    for (int shard = 0; shard < shards; ++shard) {
      SCOPED_TRACE(std::to_string(shard) + " of " + std::to_string(shards));
      LoaderConfig c = config;
      c.shard = shard;
      c.shards = shards;
      Loader part(samples, c);
      for (const Batch& g : global) {
        const Batch b = part.next();
        ASSERT_EQ(b.count, 6 / shards);
        for (int j = 0; j < b.count; ++j) {
          const size_t i = size_t(j) * shards + shard;
          EXPECT_EQ(b.sample_indices[j], g.sample_indices[i]);
          EXPECT_TRUE(std::equal(b.images.begin() + j * plane, b.images.begin() + (j + 1) * plane,
                                 g.images.begin() + i * plane));
          EXPECT_TRUE(std::equal(b.masks.begin() + j * plane, b.masks.begin() + (j + 1) * plane,
                                 g.masks.begin() + i * plane));
        }
      }
      EXPECT_EQ(part.state().epoch, whole.state().epoch);
      EXPECT_EQ(part.state().position, whole.state().position);
    }
  }
  LoaderConfig bad = config;
  bad.shards = 4;  // 6 does not split over 4
  EXPECT_THROW(Loader(samples, bad), Error);
  bad.shards = 2;
  bad.shard = 2;
  EXPECT_THROW(Loader(samples, bad), Error);
}

TEST(Loader, StateMustMatchTheStream) {
  test::TempDir dir;
  const auto samples = make_samples(dir, 4);
  LoaderConfig config;
  config.seed = 3;
  config.image_size = kSide;
  LoaderState s{3, 4, 2, 1};
  EXPECT_NO_THROW(Loader(samples, config, s));
  s.seed = 4;
  EXPECT_THROW(Loader(samples, config, s), Error);
  s = {3, 5, 0, 0};
  EXPECT_THROW(Loader(samples, config, s), Error);
  s = {3, 4, 0, 4};
  EXPECT_THROW(Loader(samples, config, s), Error);
  expect_error([] { nlohmann::json{{"seed", 1}, {"epoch", 0}, {"position", 0}}.get<LoaderState>(); }, {"sample_count"});
  expect_error([] { nlohmann::json{{"seed", 1}, {"sample_count", 2}, {"epoch", -1}, {"position", 0}}.get<LoaderState>(); },
               {"epoch"});
}

TEST(Loader, RejectsBadConfig) {
  test::TempDir dir;
  const auto samples = make_samples(dir, 2);
  for (auto tweak : {+[](LoaderConfig& c) { c.batch = 0; }, +[](LoaderConfig& c) { c.image_size = 0; },
                     +[](LoaderConfig& c) { c.threads = 0; }, +[](LoaderConfig& c) { c.prefetch = 0; }}) {
    LoaderConfig config;
    tweak(config);
    EXPECT_THROW(Loader(samples, config), Error);
  }
  EXPECT_THROW(Loader({}, LoaderConfig{}), Error);
}

TEST(Loader, CropPadAndMaskScaling) {
  test::TempDir dir;
  // 6 wide, 3 high; mask values are not 0/255 and must not be binarised.
  const std::vector<uint8_t> image = {0, 51, 102, 153, 204, 255, 10, 20, 30, 40, 50, 60, 1, 2, 3, 4, 5, 6};
  const std::vector<uint8_t> mask = {0, 128, 255, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  write_png_gray8(dir.str("i.png"), 6, 3, image);
  write_png_gray8(dir.str("m.png"), 6, 3, mask);
  LoaderConfig config;
  config.batch = 1;
  config.image_size = 4;  // width 6 -> crop from x = 1; height 3 -> pad one row at the bottom
  config.augment = false;
  Loader loader({{dir.str("i.png"), dir.str("m.png"), true}}, config);
  const Batch b = loader.next();
  ASSERT_EQ(b.count, 1);
  ASSERT_EQ(b.size, 4);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) {
      const size_t o = static_cast<size_t>(y * 4 + x);
      const float want_image = y < 3 ? image[static_cast<size_t>(y * 6 + x + 1)] / 127.5f - 1.0f : 0.0f;
      const float want_mask = y < 3 ? mask[static_cast<size_t>(y * 6 + x + 1)] / 255.0f : 0.0f;
      EXPECT_NEAR(b.images[o], want_image, 1e-6) << y << "," << x;
      EXPECT_NEAR(b.masks[o], want_mask, 1e-6) << y << "," << x;
    }
}

TEST(Loader, MaskOfAnotherSizeIsAnErrorNamingBothFiles) {
  test::TempDir dir;
  write_png_gray8(dir.str("i.png"), 8, 8, std::vector<uint8_t>(64, 10));
  write_png_gray8(dir.str("m.png"), 8, 6, std::vector<uint8_t>(48, 255));
  LoaderConfig config;
  config.batch = 1;
  config.image_size = 8;
  Loader loader({{dir.str("i.png"), dir.str("m.png"), true}}, config);
  expect_error([&] { loader.next(); }, {dir.str("i.png"), dir.str("m.png"), "8x6"});
}

TEST(Loader, UnreadablePngSurfacesFromNextAndRepeats) {
  test::TempDir dir;
  const auto good = make_samples(dir, 3);
  write_file_atomic(dir.str("broken.png"), "this is not a png");
  std::vector<Sample> samples = good;
  samples.push_back({dir.str("broken.png"), "", false});
  LoaderConfig config;
  config.batch = 2;
  config.image_size = kSide;
  config.shuffle = false;
  config.repeat = false;
  config.threads = 2;
  Loader loader(samples, config);
  EXPECT_EQ(loader.next().count, 2);  // samples 0, 1
  expect_error([&] { loader.next(); }, {dir.str("broken.png")});
  expect_error([&] { loader.next(); }, {dir.str("broken.png")});
  EXPECT_EQ(loader.state().position, 2u) << "a failed batch is not consumed";
}

TEST(Loader, RealDagmImagesAndMasks) {
  const std::string shared = test::shared_dir();
  if (shared.empty() || !fs::is_directory(shared + "/fixtures/dagm2007"))
    GTEST_SKIP() << "DAGM fixtures not found under " UNETIND_SHARED_DIR "/fixtures/dagm2007";
  const auto samples = load_dagm_split(shared + "/fixtures/dagm2007", 1, Split::Train, {.skip_missing = true});
  LoaderConfig config;
  config.batch = static_cast<int>(samples.size());
  config.repeat = false;
  Loader loader(samples, config);
  const Batch b = loader.next();
  ASSERT_EQ(b.count, 5);
  ASSERT_EQ(b.size, 512);
  const size_t plane = 512 * 512;
  for (int i = 0; i < b.count; ++i) {
    const Sample& s = samples[b.sample_indices[static_cast<size_t>(i)]];
    const auto img = std::minmax_element(b.images.begin() + static_cast<long>(i * plane),
                                         b.images.begin() + static_cast<long>((i + 1) * plane));
    EXPECT_GE(*img.first, -1.0f);
    EXPECT_LE(*img.second, 1.0f);
    EXPECT_GT(*img.second - *img.first, 0.5f) << "a textured image";
    size_t ones = 0, others = 0;
    for (size_t p = i * plane; p < (i + 1) * plane; ++p) {
      ones += b.masks[p] == 1.0f;
      others += b.masks[p] != 0.0f && b.masks[p] != 1.0f;
    }
    EXPECT_EQ(others, 0u) << "DAGM masks are 0/255";
    EXPECT_EQ(ones > 0, s.defective) << s.image_path;
  }
}

}  // namespace
