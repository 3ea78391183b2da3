// CRC-32C (Castagnoli), as LevelDB tables and TensorFlow tensor bundles use it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "io/checksums.h"

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

// Whether a stored checksum equals the computed one (or checksums are not
// checked: io/checksums.h).
inline bool matches(uint32_t stored, uint32_t computed) { return stored == computed || !checksums::checked(); }

}  // namespace unetind::crc32c
