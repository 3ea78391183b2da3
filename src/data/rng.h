// Portable randomness for the data layer. std::mt19937_64's output sequence is
// fixed by the C++ standard, but std::*_distribution are not (libstdc++ and
// libc++ differ, and have changed between versions), so the distributions
// here are our own: the same seed gives the same data everywhere.
#pragma once
#include <cstdint>
#include <random>

namespace unetind::data {

// SplitMix64's finaliser: a bijective, well-mixed hash of one word.
inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A seed derived from several words, so that streams keyed by (seed, a, b...)
// are independent of one another.
inline uint64_t derive_seed(uint64_t seed) { return mix64(seed); }
template <typename... Rest>
uint64_t derive_seed(uint64_t seed, uint64_t next, Rest... rest) {
  return derive_seed(mix64(seed) ^ next, rest...);
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}

  uint64_t next() { return gen_(); }

  // [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

  // Uniform in [0, n), unbiased (rejection of the short last interval).
  uint64_t below(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = next();
    while (x >= limit);
    return x % n;
  }
  int range(int lo, int hi) { return lo + static_cast<int>(below(static_cast<uint64_t>(hi - lo) + 1)); }  // [lo, hi]

  bool chance(double p) { return uniform() < p; }
  double sign() { return chance(0.5) ? 1.0 : -1.0; }

 private:
  std::mt19937_64 gen_;
};

}  // namespace unetind::data
