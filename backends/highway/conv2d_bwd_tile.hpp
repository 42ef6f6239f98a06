// Where the dx pixels of one backward-data tile read dy: the index arithmetic of the transposed
// convolution, as PixelTile (conv2d_fwd_tile.hpp) is for the forward pass. Target-independent
// scalar code, included by the per-target kernel.
//
// dx(ih, iw) gathers dy(oh, ow) over the taps (kh, kw) with oh * stride_h - pad_top + kh *
// dilation_h == ih (and likewise along w). With stride s, whether a tap contributes depends on ih
// mod s only, so the dx pixels are split into s_h * s_w phases (ih mod s_h, iw mod s_w): within a
// phase every pixel has the same taps, dy position = (i + qh, j + qw) for the pixel's phase
// coordinates (i, j), and a tile never multiplies zeros for taps its phase does not have.
#pragma once

#include <cstddef>
#include <cstdint>

#include "api/src/problem.hpp"

namespace convkit::internal::highway {

// The dx pixels of phase (rh, rw): ih = rh + stride_h * i, iw = rw + stride_w * j.
struct DxPhase {
  int64_t rh = 0, rw = 0;
  int64_t nh = 0, nw = 0;  // i in [0, nh), j in [0, nw); 0 when the phase lies past the input

  DxPhase(const Conv2dProblem& p, int64_t phase) : rh(phase / p.stride_w), rw(phase % p.stride_w) {
    nh = rh < p.ih ? (p.ih - rh + p.stride_h - 1) / p.stride_h : 0;
    nw = rw < p.iw ? (p.iw - rw + p.stride_w - 1) / p.stride_w : 0;
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
    int64_t m = m0;
    int64_t n = m / (phase.nh * phase.nw);
    int64_t i = (m / phase.nw) % phase.nh;
    int64_t j = m % phase.nw;
    for (size_t r = 0; r < kRows; ++r) {
      i_[r] = i;
      j_[r] = j;
      dy_image_[r] = dy + n * p.oh * p.ow * p.oc + oc_offset;
      dx_offset_[r] =
          ((n * p.ih + phase.rh + p.stride_h * i) * p.iw + phase.rw + p.stride_w * j) * p.ic;
      if (m + 1 < m_end) {  // advance; stay on the last pixel past the end
        ++m;
        if (++j == phase.nw) {
          j = 0;
          if (++i == phase.nh) {
            i = 0;
            ++n;
          }
        }
      }
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
    if (!Offset(phase_.rh + p_.pad.top - kh * p_.dilation_h, p_.stride_h, &qh)) return false;
    if (!Offset(phase_.rw + p_.pad.left - kw * p_.dilation_w, p_.stride_w, &qw)) return false;
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
  // q = t / s when s divides t (t may be negative).
  static bool Offset(int64_t t, int64_t s, int64_t* q) {
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

}  // namespace convkit::internal::highway
