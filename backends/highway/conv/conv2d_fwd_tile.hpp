// Where the output pixels of one microkernel tile read their input: the index arithmetic that
// replaces an explicit zero-padded copy or an indirection buffer. Target-independent scalar code,
// included by the per-target kernels.
#pragma once

#include <cstddef>
#include <cstdint>

#include "api/src/problem.hpp"
#include "backends/highway/conv/pixel_grid.hpp"

namespace convkit::internal::highway {

// kRows consecutive pixels of the flattened N x OH x OW output, starting at pixel m0. Pixels past
// the end repeat the last pixel, so the microkernel always runs full; their results are not stored.
// A tile may span output rows and images: each pixel keeps its own origin.
template <size_t kRows>
class PixelTile {
 public:
  // x is the input batch; c_offset the first input channel the tile reads (its group's).
  PixelTile(const Conv2dProblem& p, const float* x, int64_t c_offset, int64_t m0) : p_(p) {
    const int64_t ih_span = (p.kh - 1) * p.dilation_h;  // window extent - 1
    const int64_t iw_span = (p.kw - 1) * p.dilation_w;
    const int64_t m_end = p.n * p.oh * p.ow;
    int64_t row_span;  // RowOfTaps adds kh * dilation_h rows to an origin: that must fit too
    if (__builtin_mul_overflow(ih_span, p.iw * p.ic, &row_span)) columns_inside_ = false;
    GridPixel pixel(m0 < m_end ? m0 : m_end - 1, p.oh, p.ow, m_end);
    for (size_t i = 0; i < kRows; ++i, pixel.Next()) {
      ih0_[i] = pixel.row * p.stride_h - p.pad.top;
      iw0_[i] = pixel.col * p.stride_w - p.pad.left;
      image_[i] = x + pixel.n * p.ih * p.iw * p.ic + c_offset;
      // With pads or strides near 2^62 (valid) the origin of a pixel far in the padding overflows;
      // such a tile takes Tap's per-pixel path, which never uses it.
      int64_t origin = 0;
      const bool origin_fits = !__builtin_mul_overflow(ih0_[i], p.iw, &origin) &&
                               !__builtin_add_overflow(origin, iw0_[i], &origin) &&
                               !__builtin_mul_overflow(origin, p.ic, &origin);
      origin_[i] = origin_fits ? origin : 0;
      const bool columns_inside = origin_fits && iw0_[i] >= 0 && iw0_[i] + iw_span < p.iw;
      columns_inside_ = columns_inside_ && columns_inside;
      interior_ = interior_ && columns_inside && ih0_[i] >= 0 && ih0_[i] + ih_span < p.ih;
    }
  }

  // True when every pixel's taps lie inside the input columns (only rows may be in the padding).
  bool columns_inside() const { return columns_inside_; }

  // For a tile with columns_inside() and dilation_w == 1: taps (kh, 0..KW-1) of pixel i read
  // KW * IC consecutive floats, from the input pixel of tap (kh, 0). Sets xp[i] to that pixel's
  // first channel, or to `zeros` (which then holds KW * IC floats) when row kh lies in the padding.
  // Returns false when it does for every pixel.
  bool RowOfTaps(int64_t kh, const float* zeros, const float* (&xp)[kRows]) const {
    const int64_t dh = kh * p_.dilation_h;
    bool any = false;
    for (size_t i = 0; i < kRows; ++i) {
      const int64_t ih = ih0_[i] + dh;
      const bool inside = ih >= 0 && ih < p_.ih;
      xp[i] = inside ? image_[i] + (origin_[i] + dh * p_.iw * p_.ic) : zeros;
      any |= inside;
    }
    return any;
  }

  // Sets xp[i] to the first channel pixel i reads at tap (kh, kw), or to `zeros` when that tap lies
  // in the padding. Returns false when it does for every pixel: the tap is then skipped.
  bool Tap(int64_t kh, int64_t kw, const float* zeros, const float* (&xp)[kRows]) const {
    const int64_t dh = kh * p_.dilation_h;
    const int64_t dw = kw * p_.dilation_w;
    if (interior_) {  // the common case: one offset for all pixels, no bounds checks
      const int64_t offset = (dh * p_.iw + dw) * p_.ic;
      for (size_t i = 0; i < kRows; ++i) xp[i] = image_[i] + (origin_[i] + offset);
      return true;
    }
    bool any = false;
    for (size_t i = 0; i < kRows; ++i) {
      const int64_t ih = ih0_[i] + dh;
      const int64_t iw = iw0_[i] + dw;
      const bool inside = ih >= 0 && ih < p_.ih && iw >= 0 && iw < p_.iw;
      xp[i] = inside ? image_[i] + (ih * p_.iw + iw) * p_.ic : zeros;
      any |= inside;
    }
    return any;
  }

 private:
  const Conv2dProblem& p_;
  int64_t ih0_[kRows];
  int64_t iw0_[kRows];
  const float* image_[kRows];
  int64_t origin_[kRows];  // offset of pixel i's tap (0, 0) in its image (an integer: it may
                           // lie outside the image when the tile is not interior)
  bool interior_ = true;   // every tap of every pixel lies inside the input
  bool columns_inside_ = true;
};

}  // namespace convkit::internal::highway
