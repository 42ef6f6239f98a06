// Forward convolution for stems: few input channels (a network's first layer), groups 1,
// dilation 1. A tile is kRows consecutive output pixels of one output row x kVecs vectors of
// output channels. Within an output row, pixel i of a tile reads kernel row kh at
// x_row(kh) + (iw0 + i * stride_w) * IC, and the KW * IC floats it reads there are consecutive:
// with the pixel step stride_w * IC a compile-time constant (kStep), every broadcast of a
// reduction step is one base register plus an immediate offset. The tile then needs no pointer
// per pixel (the implicit GEMM's kernel keeps one general register each, which caps its tiles at
// 8 pixels for 1-2 vectors), and a kernel row is one reduction of KW * IC dense steps. Tiles whose
// window crosses the left or right padding (or the end of the row) read a zero-padded copy of the
// window from the thread's scratch; kernel rows in the padding for the whole output row are
// skipped.
//
// Compiled once per Highway target through foreach_target.h (hwy/examples/skeleton.cc).
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backends/highway/common/parallel.hpp"
#include "backends/highway/common/scratch.hpp"
#include "backends/highway/conv/conv2d_fwd_kernel.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/highway/conv/conv2d_fwd_stem.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must follow foreach_target.h: re-included once per target.
#include "backends/highway/common/vec-inl.h"
#include "backends/highway/conv/conv2d_fwd_epilogue-inl.h"
#include "hwy/cache_control.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {
// Internal linkage: see conv2d_fwd_igemm.cc.
namespace {

// Tile shapes: kRows pixels x kVecs vectors of accumulators, plus kVecs weight vectors; the
// broadcasts are memory operands of the FMAs (AVX-512) or one register (AVX2). Each FMA has
// latency 4 on 2 pipes: at least 8 accumulators, and more hide the loads' and loop's hiccups.
// With no pointer per pixel the tile is bounded by vector registers only.
#if HWY_TARGET == HWY_AVX3
// 32 zmm: 16x1, 14x2, 8x3, 6x4 use 16-28 accumulators. 16 and 14 pixels also divide the 112
// columns of the 224x224 stride-2 stems; 8 divides 56 (4x4/4), 6 the UNet's 570. 7x4 (all 32
// registers; 112 = 16 x 7) ran ResNet's 7x7/2 stem at 0.93x of 6x4.
constexpr size_t kStemMaxVecs = 4;
constexpr size_t StemRowsFor(size_t vecs) {
  return vecs == 1 ? 16 : vecs == 2 ? 14 : vecs == 3 ? 8 : 6;
}
#elif HWY_TARGET == HWY_AVX2
// 16 ymm: 8x1, 6x2, 4x3 use 8-12 accumulators, leaving room for weights and a broadcast.
constexpr size_t kStemMaxVecs = 3;
constexpr size_t StemRowsFor(size_t vecs) { return vecs == 1 ? 8 : vecs == 2 ? 6 : 4; }
#else
// Portable fallback (EMU128 / scalar): correctness first.
constexpr size_t kStemMaxVecs = 2;
constexpr size_t StemRowsFor(size_t /*vecs*/) { return 4; }
#endif

// acc[i][j] += sum over the `steps` reduction steps c of x[i * kStep + c] *
// w[c * row_stride + j * lanes + lane]: one kernel row (KW * IC steps) of a tile.
template <size_t kRows, size_t kVecs, int64_t kStep>
HWY_INLINE void AccumulateRow(const float* HWY_RESTRICT x, const float* HWY_RESTRICT w,
                              int64_t row_stride, int64_t steps, MF last, VF (&acc)[kRows][kVecs]) {
  const DF d;
  // A local copy that never escapes (see AccumulateTap in conv2d_igemm-inl.h).
  VF a[kRows][kVecs];
  CopyTile(acc, a);
  // Unrolled 3x: a kernel row is 3-21 steps (KW * IC for 3x3x3 ... 7x7x3), and the loop's own
  // increments and exit branch cost a 1-vector tile 1.07-1.15x (224x224 3 -> 16 and 3 -> 32 3x3/2).
  HWY_UNROLL(3)
  for (int64_t c = 0; c < steps; ++c, w += row_stride) {
    VF wv[kVecs];
    LoadVecs<kVecs>(w, last, wv);
    HWY_UNROLL(16)
    for (size_t i = 0; i < kRows; ++i) {
      const VF xv = hn::Set(d, x[static_cast<int64_t>(i) * kStep + c]);
      HWY_UNROLL(16)
      for (size_t j = 0; j < kVecs; ++j) a[i][j] = hn::MulAdd(xv, wv[j], a[i][j]);
    }
  }
  CopyTile(a, acc);
}

// Copies the input columns [iw0, iw0 + cols) of one input row (IW pixels of IC floats) to
// `window`, zeros for the columns outside [0, IW).
HWY_INLINE void CopyWindow(const float* x_row, int64_t iw, int64_t ic, int64_t iw0, int64_t cols,
                           float* window) {
  const int64_t lo = std::clamp<int64_t>(-iw0, 0, cols);       // first column inside
  const int64_t hi = std::clamp<int64_t>(iw - iw0, lo, cols);  // end of the columns inside
  std::fill(window, window + lo * ic, 0.0f);
  // No pointer into x unless a column is inside: with large pads x_row + iw0 * IC is far outside.
  if (hi > lo) std::copy(x_row + (iw0 + lo) * ic, x_row + (iw0 + hi) * ic, window + lo * ic);
  std::fill(window + hi * ic, window + cols * ic, 0.0f);
}

// True when the tiles' stores stream (StreamsY): y outgrows L3.
HWY_INLINE bool Streams(const Conv2dFwdArgs& a) {
  const Conv2dProblem& p = *a.p;
  const double y_floats = static_cast<double>(p.n * p.oh * p.ow) * static_cast<double>(p.oc);
  return StreamsY(y_floats * sizeof(float), p.oc, a.y);
}

// One tile: pixels [ow0, ow0 + kRows) of output row (n, oh) x the block of output channels whose
// weights start at w (a panel of K rows of row_stride floats). Stores min(kRows, OW - ow0)
// pixels through StoreTile (bias, post-ops, residual); `stream`: with non-temporal stores
// (Streams).
template <size_t kRows, size_t kVecs, int64_t kStep>
HWY_INLINE void RunTile(const Conv2dFwdArgs& a, int64_t n, int64_t oh, int64_t ow0, const float* w,
                        int64_t col0, int64_t cols, float* window, bool stream) {
  const Conv2dProblem& p = *a.p;
  const DF d;
  const MF last = hn::FirstN(d, static_cast<size_t>(cols) - (kVecs - 1) * hn::Lanes(d));
  const int64_t row_steps = p.kw * p.ic;
  // Input columns the whole tile reads in one kernel row (pixels past OW included).
  const int64_t window_cols = (static_cast<int64_t>(kRows) - 1) * p.stride_w + p.kw;
  const int64_t iw0 = ow0 * p.stride_w - p.pad.left;
  const bool inside = iw0 >= 0 && iw0 + window_cols <= p.iw;
  const int64_t window_floats = window_cols * p.ic;
  if (!inside) {  // before the accumulators are live: the copies call memmove
    for (int64_t kh = 0; kh < p.kh; ++kh) {
      const int64_t ih = oh * p.stride_h - p.pad.top + kh;
      if (ih < 0 || ih >= p.ih) continue;
      CopyWindow(a.x + ((n * p.ih + ih) * p.iw) * p.ic, p.iw, p.ic, iw0, window_cols,
                 window + kh * window_floats);
    }
  }
  VF acc[kRows][kVecs];
  ZeroTile(acc);
  for (int64_t kh = 0; kh < p.kh; ++kh) {
    const int64_t ih = oh * p.stride_h - p.pad.top + kh;
    if (ih < 0 || ih >= p.ih) continue;  // adds only zeros
    const float* src =
        inside ? a.x + ((n * p.ih + ih) * p.iw + iw0) * p.ic : window + kh * window_floats;
    AccumulateRow<kRows, kVecs, kStep>(src, w + kh * row_steps * a.w.row_stride, a.w.row_stride,
                                       row_steps, last, acc);
  }
  const int64_t m0 = (n * p.oh + oh) * p.ow + ow0;
  const size_t rows = static_cast<size_t>(std::min<int64_t>(kRows, p.ow - ow0));
  const float* r = a.r != nullptr ? a.r + m0 * p.oc + col0 : nullptr;
  const float* b = a.b != nullptr ? a.b + col0 : nullptr;
  float* y = a.y + m0 * p.oc + col0;
  if (stream) return StoreTile<kRows, kVecs, true>(acc, rows, b, &p.post_ops, r, last, y, p.oc);
  StoreTile<kRows, kVecs>(acc, rows, b, &p.post_ops, r, last, y, p.oc);
}

// RunTile with as many vectors as the block's `cols` need (the last block may be narrower).
template <size_t kRows, size_t kVecs, int64_t kStep>
void RunTileVecs(const Conv2dFwdArgs& a, int64_t n, int64_t oh, int64_t ow0, const float* w,
                 int64_t col0, int64_t cols, float* window, bool stream) {
  if constexpr (kVecs > 1) {
    if (cols <= static_cast<int64_t>((kVecs - 1) * hn::Lanes(DF()))) {
      return RunTileVecs<kRows, kVecs - 1, kStep>(a, n, oh, ow0, w, col0, cols, window, stream);
    }
  }
  RunTile<kRows, kVecs, kStep>(a, n, oh, ow0, w, col0, cols, window, stream);
}

// Every output row (n, oh) in [begin, end) of the N * OH rows, each through every block of output
// channels: the row's KH input rows stay in L1 across the blocks, and the weights (at most
// 256 x 64 floats a block) in L2.
template <size_t kVecs, int64_t kStep>
void RunRows(const Conv2dFwdArgs& a, int64_t begin, int64_t end) {
  constexpr size_t kRows = StemRowsFor(kVecs);
  const Conv2dProblem& p = *a.p;
  const bool stream = Streams(a);
  // A row of OW pixels in t = ceil(OW / kRows) tiles, the last `short` of them one pixel shorter,
  // computes no pixel past the row when OW >= t * (kRows - 1): 224 columns in 34 tiles of 6 and
  // 4 of 5 instead of 38 of 6 (228 pixels). Otherwise only the last tile is partly empty.
  const int64_t rows = static_cast<int64_t>(kRows);
  const int64_t tiles = (p.ow + rows - 1) / rows;
  const int64_t short_tiles = p.ow >= tiles * (rows - 1) ? tiles * rows - p.ow : 0;
  const int64_t full_tiles = tiles - short_tiles;
  const int64_t blocks = (p.oc + a.w.block_cols - 1) / a.w.block_cols;
  float* window =
      ThreadScratch(p.kh * ((static_cast<int64_t>(kRows) - 1) * p.stride_w + p.kw) * p.ic);
  for (int64_t row = begin; row < end; ++row) {
    const int64_t n = row / p.oh, oh = row % p.oh;
    for (int64_t block = 0; block < blocks; ++block) {
      const float* w = a.w.data + block * a.w.block_stride;
      const int64_t col0 = block * a.w.block_cols;
      const int64_t cols = std::min(a.w.block_cols, p.oc - col0);
      int64_t ow0 = 0;
      for (int64_t t = 0; t < full_tiles; ++t, ow0 += static_cast<int64_t>(kRows)) {
        RunTileVecs<kRows, kVecs, kStep>(a, n, oh, ow0, w, col0, cols, window, stream);
      }
      for (; ow0 < p.ow; ow0 += static_cast<int64_t>(kRows) - 1) {
        RunTileVecs<kRows - 1, kVecs, kStep>(a, n, oh, ow0, w, col0, cols, window, stream);
      }
    }
  }
}

template <size_t kVecs, int64_t kStep>
void RunAll(const Conv2dFwdArgs& a) {
  ParallelRanges(a.threads, a.p->n * a.p->oh, [&](int64_t begin, int64_t end) {
    RunRows<kVecs, kStep>(a, begin, end);
    hwy::FlushStream();  // the streamed rows are visible to other threads after the region
  });
}

// Calls f(std::integral_constant<int64_t, S>()) for the pixel step S = step, one of those the
// variant accepts (StepIsCompiled in conv2d_fwd_stem.cpp: 1, 2, 3, 4, 6, 12).
template <class F>
HWY_INLINE void WithStep(int64_t step, const F& f) {
  switch (step) {
    case 1:
      return f(std::integral_constant<int64_t, 1>());
    case 2:
      return f(std::integral_constant<int64_t, 2>());
    case 3:
      return f(std::integral_constant<int64_t, 3>());
    case 4:
      return f(std::integral_constant<int64_t, 4>());
    case 6:
      return f(std::integral_constant<int64_t, 6>());
    default:
      HWY_DASSERT(step == 12);
      return f(std::integral_constant<int64_t, 12>());
  }
}

void Conv2dFwdStem(const Conv2dFwdArgs& a) {
  const int64_t vecs = a.w.block_cols / static_cast<int64_t>(hn::Lanes(DF()));
  WithVecs<kStemMaxVecs>(vecs, [&](auto v) {
    WithStep(a.p->stride_w * a.p->ic,
             [&](auto s) { RunAll<decltype(v)::value, decltype(s)::value>(a); });
  });
}

}  // namespace

Conv2dFwdKernel GetConv2dFwdStemKernel() {
  Conv2dFwdKernel kernel{&Conv2dFwdStem, static_cast<int64_t>(hn::Lanes(DF())), kStemMaxVecs,
                         hwy::TargetName(HWY_TARGET)};
  for (size_t v = 1; v <= kStemMaxVecs; ++v) {
    kernel.rows[v - 1] = static_cast<int64_t>(StemRowsFor(v));
  }
  return kernel;
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace convkit::internal::highway {

HWY_EXPORT(GetConv2dFwdStemKernel);

Conv2dFwdKernel Conv2dFwdStemKernel() { return HWY_DYNAMIC_DISPATCH(GetConv2dFwdStemKernel)(); }

}  // namespace convkit::internal::highway
#endif  // HWY_ONCE
