// A cache-blocked matrix transpose for weight packing (target-independent code).
#pragma once

#include <algorithm>
#include <cstdint>

namespace convkit::internal::highway {

// dst[c * rows + r] = src[r * cols + c] for the rows x cols matrix src. In tiles of 32 x 32, so
// that neither side strides across a row per element: element by element, a 2048 x 1024 weight
// (UNet's 1024 -> 512 2x2 up-convolution) took 14 ms, cache and TLB misses on every write.
inline void TransposeMatrix(const float* src, int64_t rows, int64_t cols, float* dst) {
  constexpr int64_t kTile = 32;
  for (int64_t r0 = 0; r0 < rows; r0 += kTile) {
    const int64_t r1 = std::min(rows, r0 + kTile);
    for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
      const int64_t c1 = std::min(cols, c0 + kTile);
      for (int64_t c = c0; c < c1; ++c) {
        for (int64_t r = r0; r < r1; ++r) dst[c * rows + r] = src[r * cols + c];
      }
    }
  }
}

}  // namespace convkit::internal::highway
