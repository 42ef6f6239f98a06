// Where the dx pixels of one backward-data tile read dy: the index arithmetic of the transposed
// convolution, as PixelTile (conv2d_fwd_tile.hpp) is for the forward pass; and the packers of the
// backward-weights GEMM (PackXRows, PackDyPanel). Target-independent scalar code, included by the
// per-target kernels.
//
// dx(ih, iw) gathers dy(oh, ow) over the taps (kh, kw) with oh * stride_h - pad_top + kh *
// dilation_h == ih (and likewise along w). With stride s, whether a tap contributes depends on ih
// mod s only, so the dx pixels are split into s_h * s_w phases (ih mod s_h, iw mod s_w): within a
// phase every pixel has the same taps, dy position = (i + qh, j + qw) for the pixel's phase
// coordinates (i, j), and a tile never multiplies zeros for taps its phase does not have.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "api/src/problem.hpp"
#include "backends/highway/conv/pixel_grid.hpp"

namespace convkit::internal::highway {

// The dx pixels of phase (rh, rw): ih = rh + stride_h * i, iw = rw + stride_w * j. Phases with
// rh >= ih or rw >= iw hold no pixel, so only min(stride, extent) phases per axis are enumerated:
// a stride of 2^62 (valid) must not mean 2^62 phases.
struct DxPhase {
  int64_t rh = 0, rw = 0;
  int64_t nh = 0, nw = 0;  // i in [0, nh), j in [0, nw)

  static int64_t RowPhases(const Conv2dProblem& p) { return std::min(p.stride_h, p.ih); }
  static int64_t ColPhases(const Conv2dProblem& p) { return std::min(p.stride_w, p.iw); }
  static int64_t Count(const Conv2dProblem& p) { return RowPhases(p) * ColPhases(p); }

  // phase in [0, Count(p)).
  DxPhase(const Conv2dProblem& p, int64_t phase)
      : rh(phase / ColPhases(p)), rw(phase % ColPhases(p)) {
    nh = (p.ih - rh - 1) / p.stride_h + 1;  // rh < ih: ceil((ih - rh) / stride_h) without overflow
    nw = (p.iw - rw - 1) / p.stride_w + 1;
  }
  int64_t pixels(const Conv2dProblem& p) const { return p.n * nh * nw; }
};

// kRows consecutive pixels of a phase's flattened N x nh x nw list, starting at m0 (< pixels).
// Pixels past the end repeat the last one, so the microkernel always runs full; rows() says how
// many are real.
template <size_t kRows>
class DxTile {
 public:
  // dy is the gradient batch; oc_offset the first output channel the tile reads (its group's).
  DxTile(const Conv2dProblem& p, const DxPhase& phase, const float* dy, int64_t oc_offset,
         int64_t m0)
      : p_(p), phase_(phase) {
    const int64_t m_end = phase.pixels(p);
    rows_ = static_cast<size_t>(m_end - m0 < static_cast<int64_t>(kRows) ? m_end - m0 : kRows);
    GridPixel pixel(m0, phase.nh, phase.nw, m_end);
    for (size_t r = 0; r < kRows; ++r, pixel.Next()) {
      const int64_t n = pixel.n, i = pixel.row, j = pixel.col;
      i_[r] = i;
      j_[r] = j;
      dy_image_[r] = dy + n * p.oh * p.ow * p.oc + oc_offset;
      dx_offset_[r] =
          ((n * p.ih + phase.rh + p.stride_h * i) * p.iw + phase.rw + p.stride_w * j) * p.ic;
    }
  }

  size_t rows() const { return rows_; }
  // Offset in dx of row r's first channel.
  int64_t dx_offset(size_t r) const { return dx_offset_[r]; }

  // Sets dyp[r] to the first channel pixel r reads at tap (kh, kw), or to `zeros` when that dy
  // position lies outside dy. Returns false when the tap does not belong to the phase or lies
  // outside for every pixel: it is then skipped.
  bool Tap(int64_t kh, int64_t kw, const float* zeros, const float* (&dyp)[kRows]) const {
    int64_t qh, qw;
    if (!RowOffset(kh, &qh) || !ColOffset(kw, &qw)) return false;
    return TapAt(qh, qw, zeros, dyp);
  }

  // Whether kernel row kh (column kw) belongs to the phase, and then the dy row (column) offset
  // of its taps: pixel (i, j) reads dy (i + qh, j + qw).
  bool RowOffset(int64_t kh, int64_t* qh) const {
    return Offset(phase_.rh + p_.pad.top - kh * p_.dilation_h, p_.stride_h, qh);
  }
  bool ColOffset(int64_t kw, int64_t* qw) const {
    return Offset(phase_.rw + p_.pad.left - kw * p_.dilation_w, p_.stride_w, qw);
  }

  // Tap with the offsets of RowOffset and ColOffset.
  bool TapAt(int64_t qh, int64_t qw, const float* zeros, const float* (&dyp)[kRows]) const {
    bool any = false;
    for (size_t r = 0; r < kRows; ++r) {
      const int64_t oh = i_[r] + qh;
      const int64_t ow = j_[r] + qw;
      const bool inside = oh >= 0 && oh < p_.oh && ow >= 0 && ow < p_.ow;
      dyp[r] = inside ? dy_image_[r] + (oh * p_.ow + ow) * p_.oc : zeros;
      any |= inside;
    }
    return any;
  }

 private:
  // q = t / s when s divides t (t may be negative). Strides 1 and 2 without a division: a tile's
  // taps paid two 64-bit divisions each (a fifth of the grouped kernel's time at stride 2).
  static bool Offset(int64_t t, int64_t s, int64_t* q) {
    if (s == 1) {
      *q = t;
      return true;
    }
    if (s == 2) {
      if ((t & 1) != 0) return false;
      *q = t >> 1;  // t even: an exact halving for negative t too
      return true;
    }
    if (t % s != 0) return false;
    *q = t / s;
    return true;
  }

  const Conv2dProblem& p_;
  const DxPhase& phase_;
  size_t rows_ = 0;
  int64_t i_[kRows];
  int64_t j_[kRows];
  const float* dy_image_[kRows];
  int64_t dx_offset_[kRows];
};

// Backward weights as a GEMM: dw rows m = tap * ICg + ic of a group, columns its OCg output
// channels, reduction k = the flattened (n, oh, ow) dy pixel. The packers below lay out one block
// of the reduction, pixels [k0, k0 + kn), so that the microkernel streams contiguous memory.

// Zeroes or copies the `count` floats at dst from src (null: zeroes).
inline void CopyOrZero(const float* src, int64_t count, float* dst) {
  if (count <= 0) return;
  const size_t bytes = static_cast<size_t>(count) * sizeof(float);
  if (src == nullptr) {
    std::memset(dst, 0, bytes);
  } else {
    std::memcpy(dst, src, bytes);
  }
}

// The im2col rows of group g: out[k * ld + (m - m0)] = x(n, ih, iw, g * ICg + ic) for the rows m
// = tap * ICg + ic in [m0, m0 + mc) and the pixels k0 + k, k < kn; 0 where the tap reads padding
// (0 * dy adds +-0 to a sum that starts at +0, which changes no bit of a finite result). With one
// group and no dilation along w, a kernel row's taps read consecutive x pixels: one copy per
// kernel row (conv1, 7x7 over 3 channels: 7 copies a pixel instead of 49).
inline void PackXRows(const Conv2dProblem& p, const float* x, int64_t g, int64_t k0, int64_t kn,
                      int64_t m0, int64_t mc, int64_t ld, float* out) {
  const int64_t icg = p.ic_per_group();
  const int64_t row_len = p.kw * icg;  // rows of one kernel row (kh)
  const bool contiguous = p.groups == 1 && p.dilation_w == 1;
  int64_t n = k0 / (p.oh * p.ow), oh = (k0 / p.ow) % p.oh, ow = k0 % p.ow;
  for (int64_t k = 0; k < kn; ++k, out += ld) {
    const int64_t iw0 = ow * p.stride_w - p.pad.left;  // iw of kw = 0
    for (int64_t kh = m0 / row_len; kh * row_len < m0 + mc; ++kh) {
      const int64_t base = kh * row_len;
      const int64_t lo = std::max(m0, base), hi = std::min(m0 + mc, base + row_len);
      const int64_t ih = oh * p.stride_h - p.pad.top + kh * p.dilation_h;
      float* dst = out - m0;
      if (ih < 0 || ih >= p.ih) {
        CopyOrZero(nullptr, hi - lo, dst + lo);
        continue;
      }
      const float* x_row = x + (n * p.ih + ih) * p.iw * p.ic + g * icg;
      if (contiguous) {  // m = base + (iw - iw0) * IC + ic
        // Clamping iw0 to [-KW, IW] changes neither in_lo nor in_hi (the row spans KW pixels) and
        // keeps iw0 * IC from overflowing when a pad near 2^62 (valid) puts the row far outside.
        const int64_t iw0c = std::clamp(iw0, -p.kw, p.iw);
        const int64_t in_lo = std::clamp(base - iw0c * p.ic, lo, hi);
        const int64_t in_hi = std::clamp(base + (p.iw - iw0c) * p.ic, lo, hi);
        CopyOrZero(nullptr, in_lo - lo, dst + lo);
        CopyOrZero(x_row + (iw0c * p.ic + in_lo - base), in_hi - in_lo, dst + in_lo);
        CopyOrZero(nullptr, hi - in_hi, dst + in_hi);
      } else {
        for (int64_t kw = (lo - base) / icg; base + kw * icg < hi; ++kw) {
          const int64_t t_lo = std::max(lo, base + kw * icg);
          const int64_t t_hi = std::min(hi, base + (kw + 1) * icg);
          const int64_t iw = iw0 + kw * p.dilation_w;
          const bool inside = iw >= 0 && iw < p.iw;
          CopyOrZero(inside ? x_row + (iw * p.ic + t_lo - base - kw * icg) : nullptr, t_hi - t_lo,
                     dst + t_lo);
        }
      }
    }
    if (++ow == p.ow) {
      ow = 0;
      if (++oh == p.oh) {
        oh = 0;
        ++n;
      }
    }
  }
}

// A panel of dy: out[k * width + j] = dy(pixel k0 + k, g * OCg + col0 + j) for j < cols, 0 for
// cols <= j < width (so the microkernel loads whole vectors), k < kn.
inline void PackDyPanel(const Conv2dProblem& p, const float* dy, int64_t g, int64_t col0,
                        int64_t cols, int64_t width, int64_t k0, int64_t kn, float* out) {
  const float* src = dy + k0 * p.oc + g * p.oc_per_group() + col0;
  for (int64_t k = 0; k < kn; ++k, src += p.oc, out += width) {
    std::memcpy(out, src, static_cast<size_t>(cols) * sizeof(float));
    std::fill(out + cols, out + width, 0.0f);
  }
}

}  // namespace convkit::internal::highway
