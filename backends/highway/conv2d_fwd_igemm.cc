// Forward convolution as an implicit GEMM: M = N * OH * OW output pixels, N = OC / groups output
// channels, K = KH * KW * IC / groups, with no im2col copy. A microkernel holds kRows pixels x
// kVecs vectors of output channels in registers; per tap, each pixel reads its input directly
// (PixelTile), taps in the padding read zeros and taps in the padding for the whole tile are
// skipped. Weights are either packed panels (plans) or HWIO as given (one-shot): Conv2dFwdWeights
// covers both.
//
// Compiled once per Highway target through foreach_target.h (hwy/examples/skeleton.cc).
#include <cstddef>
#include <cstdint>

#include "backends/highway/conv2d_fwd.hpp"
#include "backends/highway/conv2d_fwd_tile.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/highway/conv2d_fwd_igemm.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must follow foreach_target.h: re-included once per target.
#include "backends/highway/conv2d_fwd-inl.h"
#include "backends/highway/conv2d_igemm-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {

// The microkernel (AccumulateTap) and its shapes (kMaxVecs, RowsFor) are in conv2d_igemm-inl.h,
// shared with backward data.

// One tile: pixels [m0, m0 + kRows) x the `cols` output channels of block `block` of group g.
template <size_t kRows, size_t kVecs>
void RunTile(const Conv2dFwdArgs& a, int64_t g, int64_t block, int64_t cols, int64_t m0) {
  const Conv2dProblem& p = *a.p;
  const int64_t icg = p.ic_per_group();
  const int64_t col0 = g * p.oc_per_group() + block * a.w.block_cols;
  const DF d;
  const MF last = hn::FirstN(d, static_cast<size_t>(cols) - (kVecs - 1) * hn::Lanes(d));
  const float* w = a.w.data + g * a.w.group_stride + block * a.w.block_stride;
  const int64_t tap_stride = icg * a.w.row_stride;

  VF acc[kRows][kVecs];
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) {
    HWY_UNROLL(16)
    for (size_t j = 0; j < kVecs; ++j) acc[i][j] = hn::Zero(d);
  }
  const PixelTile<kRows> tile(p, a.x, g * icg, m0);
  const float* xp[kRows];
  for (int64_t kh = 0; kh < p.kh; ++kh) {
    for (int64_t kw = 0; kw < p.kw; ++kw) {
      if (!tile.Tap(kh, kw, a.zeros, xp)) continue;
      AccumulateTap<kRows, kVecs>(xp, w + (kh * p.kw + kw) * tap_stride, a.w.row_stride, icg, last,
                                  acc);
    }
  }
  const int64_t m_end = p.n * p.oh * p.ow;
  const size_t rows =
      static_cast<size_t>(m_end - m0 < static_cast<int64_t>(kRows) ? m_end - m0 : kRows);
  StoreTile<kRows, kVecs>(acc, rows, a.b != nullptr ? a.b + col0 : nullptr,
                          p.activation == Activation::kRelu, last, a.y + m0 * p.oc + col0, p.oc);
}

// RunTile with as many vectors as the block's `cols` need (the last block may be narrower).
template <size_t kRows, size_t kVecs>
void RunTileVecs(const Conv2dFwdArgs& a, int64_t g, int64_t block, int64_t cols, int64_t m0) {
  if constexpr (kVecs > 1) {
    if (cols <= static_cast<int64_t>((kVecs - 1) * hn::Lanes(DF()))) {
      return RunTileVecs<kRows, kVecs - 1>(a, g, block, cols, m0);
    }
  }
  RunTile<kRows, kVecs>(a, g, block, cols, m0);
}

// Runs every (group, block, tile) work item. Items are ordered so that consecutive ones share a
// weight panel (kept in L2) and OpenMP's static schedule hands each thread one contiguous range.
template <size_t kVecs>
void RunAll(const Conv2dFwdArgs& a) {
  constexpr size_t kRows = RowsFor(kVecs);
  const Conv2dProblem& p = *a.p;
  const int64_t ocg = p.oc_per_group();
  const int64_t tiles = (p.n * p.oh * p.ow + kRows - 1) / kRows;
  const int64_t blocks = (ocg + a.w.block_cols - 1) / a.w.block_cols;
  const int64_t items = p.groups * blocks * tiles;
  const auto run_item = [&](int64_t t) {
    const int64_t g = t / (blocks * tiles);
    const int64_t block = (t / tiles) % blocks;
    const int64_t m0 = (t % tiles) * static_cast<int64_t>(kRows);
    const int64_t cols_left = ocg - block * a.w.block_cols;
    const int64_t cols = cols_left < a.w.block_cols ? cols_left : a.w.block_cols;
    RunTileVecs<kRows, kVecs>(a, g, block, cols, m0);
  };
  if (a.threads <= 1) {
    for (int64_t t = 0; t < items; ++t) run_item(t);
    return;
  }
#pragma omp parallel for num_threads(a.threads) schedule(static)
  for (int64_t t = 0; t < items; ++t) run_item(t);
}

void Conv2dFwdIgemm(const Conv2dFwdArgs& a) {
  const int64_t vecs = a.w.block_cols / static_cast<int64_t>(hn::Lanes(DF()));
  if constexpr (kMaxVecs >= 4) {
    if (vecs == 4) return RunAll<4>(a);
  }
  if constexpr (kMaxVecs >= 3) {
    if (vecs == 3) return RunAll<3>(a);
  }
  if (vecs == 2) return RunAll<2>(a);
  RunAll<1>(a);
}

Conv2dFwdKernel GetConv2dFwdIgemmKernel() {
  return {&Conv2dFwdIgemm, static_cast<int64_t>(hn::Lanes(DF())), kMaxVecs,
          hwy::TargetName(HWY_TARGET)};
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace convkit::internal::highway {

HWY_EXPORT(GetConv2dFwdIgemmKernel);

Conv2dFwdKernel Conv2dFwdIgemmKernel() { return HWY_DYNAMIC_DISPATCH(GetConv2dFwdIgemmKernel)(); }

}  // namespace convkit::internal::highway
#endif  // HWY_ONCE
