// Backward data: dx as an implicit GEMM over dx pixels, M = N * IH * IW, N = IC / groups, K = KH *
// KW * OC / groups, with w^T as the weights and dy as the input -- the forward microkernel
// (AccumulateTap, conv2d_igemm-inl.h) with the transposed convolution's indexing (DxTile). Each
// dx element is one sum, written once: no atomics, no zero-fill, any thread split gives the same
// bits.
//
// Compiled once per Highway target through foreach_target.h (hwy/examples/skeleton.cc).
#include <cstddef>
#include <cstdint>

#include "backends/highway/conv2d_bwd.hpp"
#include "backends/highway/conv2d_bwd_tile.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/highway/conv2d_bwd_data.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must follow foreach_target.h: re-included once per target.
#include "backends/highway/conv2d_fwd-inl.h"
#include "backends/highway/conv2d_igemm-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {

// One tile: kRows pixels of `phase` from m0 x the `cols` input channels of block `block` of g.
template <size_t kRows, size_t kVecs>
void RunTile(const Conv2dBwdDataArgs& a, const DxPhase& phase, int64_t g, int64_t block,
             int64_t cols, int64_t m0) {
  const Conv2dProblem& p = *a.p;
  const int64_t ocg = p.oc_per_group();
  const DF d;
  const size_t lanes = hn::Lanes(d);
  const MF last = hn::FirstN(d, static_cast<size_t>(cols) - (kVecs - 1) * lanes);
  const float* w = a.w.data + g * a.w.group_stride + block * a.w.block_stride;
  const int64_t tap_stride = ocg * a.w.row_stride;

  VF acc[kRows][kVecs];
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) {
    HWY_UNROLL(16)
    for (size_t j = 0; j < kVecs; ++j) acc[i][j] = hn::Zero(d);
  }
  const DxTile<kRows> tile(p, phase, a.dy, g * ocg, m0);
  const float* dyp[kRows];
  for (int64_t kh = 0; kh < p.kh; ++kh) {
    for (int64_t kw = 0; kw < p.kw; ++kw) {
      if (!tile.Tap(kh, kw, a.zeros, dyp)) continue;
      AccumulateTap<kRows, kVecs>(dyp, w + (kh * p.kw + kw) * tap_stride, a.w.row_stride, ocg, last,
                                  acc);
    }
  }
  const int64_t col0 = g * p.ic_per_group() + block * a.w.block_cols;
  for (size_t i = 0; i < tile.rows(); ++i) {
    float* row = a.dx + tile.dx_offset(i) + col0;
    HWY_UNROLL(16)
    for (size_t j = 0; j + 1 < kVecs; ++j) hn::StoreU(acc[i][j], d, row + j * lanes);
    hn::BlendedStore(acc[i][kVecs - 1], last, d, row + (kVecs - 1) * lanes);
  }
}

// RunTile with as many vectors as the block's `cols` need (the last block may be narrower).
template <size_t kRows, size_t kVecs>
void RunTileVecs(const Conv2dBwdDataArgs& a, const DxPhase& phase, int64_t g, int64_t block,
                 int64_t cols, int64_t m0) {
  if constexpr (kVecs > 1) {
    if (cols <= static_cast<int64_t>((kVecs - 1) * hn::Lanes(DF()))) {
      return RunTileVecs<kRows, kVecs - 1>(a, phase, g, block, cols, m0);
    }
  }
  RunTile<kRows, kVecs>(a, phase, g, block, cols, m0);
}

// Runs every (group, block, phase, tile) item, in that order: consecutive items share a weight
// block. Phase (0, 0) has the most pixels; items past a phase's last tile do nothing.
template <size_t kVecs>
void RunAll(const Conv2dBwdDataArgs& a) {
  constexpr size_t kRows = RowsFor(kVecs);
  const Conv2dProblem& p = *a.p;
  const int64_t icg = p.ic_per_group();
  const int64_t phases = p.stride_h * p.stride_w;
  const int64_t tiles = (DxPhase(p, 0).pixels(p) + kRows - 1) / kRows;
  const int64_t blocks = (icg + a.w.block_cols - 1) / a.w.block_cols;
  const int64_t items = p.groups * blocks * phases * tiles;
  const auto run_item = [&](int64_t t) {
    const int64_t g = t / (blocks * phases * tiles);
    const int64_t block = (t / (phases * tiles)) % blocks;
    const DxPhase phase(p, (t / tiles) % phases);
    const int64_t m0 = (t % tiles) * static_cast<int64_t>(kRows);
    if (m0 >= phase.pixels(p)) return;
    const int64_t cols_left = icg - block * a.w.block_cols;
    const int64_t cols = cols_left < a.w.block_cols ? cols_left : a.w.block_cols;
    RunTileVecs<kRows, kVecs>(a, phase, g, block, cols, m0);
  };
  if (a.threads <= 1) {
    for (int64_t t = 0; t < items; ++t) run_item(t);
    return;
  }
#pragma omp parallel for num_threads(a.threads) schedule(static)
  for (int64_t t = 0; t < items; ++t) run_item(t);
}

void Conv2dBwdData(const Conv2dBwdDataArgs& a) {
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

Conv2dBwdDataKernel GetConv2dBwdDataKernel() {
  return {&Conv2dBwdData, static_cast<int64_t>(hn::Lanes(DF())), kMaxVecs,
          hwy::TargetName(HWY_TARGET)};
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace convkit::internal::highway {

HWY_EXPORT(GetConv2dBwdDataKernel);

Conv2dBwdDataKernel ChooseConv2dBwdDataKernel() {
  return HWY_DYNAMIC_DISPATCH(GetConv2dBwdDataKernel)();
}

}  // namespace convkit::internal::highway
#endif  // HWY_ONCE
