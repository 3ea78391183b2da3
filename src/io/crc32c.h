// CRC-32C (Castagnoli), as LevelDB tables and TensorFlow tensor bundles use it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace unetind::crc32c {

uint32_t extend(uint32_t crc, const void* data, size_t size);
inline uint32_t value(std::string_view bytes) { return extend(0, bytes.data(), bytes.size()); }

// Stored CRCs are "masked": a CRC over bytes that themselves hold CRCs is
// otherwise prone to degenerate (LevelDB's crc32c.h gives the reason).
constexpr uint32_t kMaskDelta = 0xa282ead8u;
constexpr uint32_t mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + kMaskDelta; }
constexpr uint32_t unmask(uint32_t masked) {
  const uint32_t rotated = masked - kMaskDelta;
  return (rotated >> 17) | (rotated << 15);
}

// Whether a stored checksum equals the computed one. A fuzzing build
// accepts any, so that mutated inputs reach the parsers behind the checks.
constexpr bool matches(uint32_t stored, uint32_t computed) {
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
  (void)stored;
  (void)computed;
  return true;
#else
  return stored == computed;
#endif
}

}  // namespace unetind::crc32c
