// Walking the pixels of an N x H x W grid (a convolution's output, or one stride phase of its
// input) in the flattened order the tiles use. Target-independent; shared by PixelTile
// (conv2d_fwd_tile.hpp) and DxTile (conv2d_bwd_tile.hpp).
#pragma once

#include <cstdint>

namespace convkit::internal::highway {

// Pixel m of the grid as (n, row, col). Next() steps to pixel m + 1, or stays on the last pixel
// (m_end - 1) past the end: a tile repeats its last pixel so that the microkernel always runs full.
class GridPixel {
 public:
  // m < m_end = N * h * w.
  GridPixel(int64_t m, int64_t h, int64_t w, int64_t m_end)
      : n(m / (h * w)), row((m / w) % h), col(m % w), m_(m), h_(h), w_(w), m_end_(m_end) {}

  void Next() {
    if (m_ + 1 >= m_end_) return;
    ++m_;
    if (++col == w_) {
      col = 0;
      if (++row == h_) {
        row = 0;
        ++n;
      }
    }
  }

  int64_t n, row, col;

 private:
  int64_t m_, h_, w_, m_end_;
};

}  // namespace convkit::internal::highway
