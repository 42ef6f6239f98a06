// Forward convolution with narrow groups: OCg = OC / groups a proper divisor of the vector width
// L, ICg = IC / groups <= OCg (ResNeXt-50 32x4d: groups of 4 and 8 channels; RegNetY: 8).
//
// A block is the P = L / OCg consecutive groups whose outputs fill one vector: lane l holds output
// channel o = l % OCg of group g0 + l / OCg. As a batched GEMM over the groups of a block, for each
// pixel and tap the P groups' ICg input channels are one vector load, permuted across the lanes
// once per channel (or per 4 channels) and multiplied by a packed weight row
// (conv2d_grouped-inl.h, shared with the backward data kernel): one FMA for L useful products,
// where the implicit GEMM kernel spends one FMA for OCg of them (a quarter of the lanes at OCg =
// 4).
//
// Per tile of kRows pixels (PixelTile: any stride, padding, dilation), every block in turn: the
// tile's input pixels stay in L1 across the blocks, and the packed weights of all blocks
// (KH * KW * ICg * L floats each, 37 KB at ResNeXt's conv3) in L2. Threads take contiguous ranges
// of tiles, so each writes its own rows of y. Summation order per output: taps in (kh, kw) order,
// channels in order, then bias: integer data give the reference's bits.
//
// Compiled once per Highway target through foreach_target.h (hwy/examples/skeleton.cc); the
// target-independent part (choice, packing, plan) is in conv2d_fwd_grouped.cpp.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backends/highway/common/parallel.hpp"
#include "backends/highway/conv/conv2d_fwd_kernel.hpp"
#include "backends/highway/conv/conv2d_fwd_tile.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/highway/conv/conv2d_fwd_grouped.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must follow foreach_target.h: re-included once per target.
#include "backends/highway/conv/conv2d_fwd_epilogue-inl.h"
#include "backends/highway/conv/conv2d_grouped-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {
namespace {

constexpr size_t kRows = kGroupedRows;
constexpr int64_t kMaxTaps = kGroupedMaxTaps;
using TileTaps = GroupedTileTaps;

// Taps [tap_begin, min(tap_end, tap_begin + kMaxTaps)) of the tile.
void GatherTaps(const Conv2dProblem& p, const PixelTile<kRows>& tile, const float* zeros,
                int64_t tap_begin, int64_t tap_end, TileTaps* taps) {
  taps->count = 0;
  const int64_t end = std::min(tap_end, tap_begin + kMaxTaps);
  for (int64_t t = tap_begin; t < end; ++t) {
    if (!tile.Tap(t / p.kw, t % p.kw, zeros, taps->src[taps->count])) continue;
    taps->tap[taps->count++] = t;
  }
}

// acc += the taps of `taps` for block j of the tile.
void AccumulateBlock(const Conv2dFwdArgs& a, const GroupedLaneTable& table, const TileTaps& taps,
                     int64_t j, VF (&acc)[kRows][1]) {
  const Conv2dProblem& p = *a.p;
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const int64_t icg = p.ic_per_group(), ocg = p.oc_per_group();
  const int64_t per_block = lanes / ocg;
  const int64_t groups = std::min(per_block, p.groups - j * per_block);
  const MF x_lanes = hn::FirstN(d, static_cast<size_t>(groups * icg));
  const int64_t x_offset = j * per_block * icg;
  const float* w = a.w.data + j * a.w.block_stride;
  for (int64_t t = 0; t < taps.count; ++t) {
    const float* wt = w + taps.tap[t] * icg * lanes;
    const float* xp[kRows];
    HWY_UNROLL(16)
    for (size_t i = 0; i < kRows; ++i) xp[i] = taps.src[t][i] + x_offset;
    GroupedTap<kRows>(table, xp, wt, icg, per_block == 1, x_lanes, acc);
  }
}

// Output pixels [m0, m0 + kRows) of every block. a.w: block j's rows at
// data + j * block_stride + (tap * ICg + ic) * L, L floats each.
void RunTile(const Conv2dFwdArgs& a, const GroupedLaneTable& table, int64_t m0) {
  const Conv2dProblem& p = *a.p;
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const int64_t ocg = p.oc_per_group();
  const int64_t per_block = lanes / ocg;
  const int64_t blocks = (p.groups + per_block - 1) / per_block;
  const int64_t kernel_taps = p.kh * p.kw;
  const size_t rows =
      static_cast<size_t>(std::min<int64_t>(p.n * p.oh * p.ow - m0, static_cast<int64_t>(kRows)));
  const PixelTile<kRows> tile(p, a.x, 0, m0);
  TileTaps taps;
  GatherTaps(p, tile, a.zeros, 0, kernel_taps, &taps);
  for (int64_t j = 0; j < blocks; ++j) {
    VF acc[kRows][1];
    GroupedBlock<kRows>(
        taps, j, p.oc_per_group(), p.ic_per_group(), p.groups, a.w.data + j * a.w.block_stride,
        [&](VF(&block)[kRows][1]) { AccumulateBlock(a, table, taps, j, block); }, acc);
    // Kernels of more than kMaxTaps taps: the further taps in chunks, rebuilt per block.
    for (int64_t t0 = kMaxTaps; t0 < kernel_taps; t0 += kMaxTaps) {
      TileTaps more;
      GatherTaps(p, tile, a.zeros, t0, kernel_taps, &more);
      AccumulateBlock(a, table, more, j, acc);
    }
    const int64_t col0 = j * per_block * ocg;
    const MF y_lanes =
        hn::FirstN(d, static_cast<size_t>(std::min(per_block, p.groups - j * per_block) * ocg));
    const int64_t y_at = m0 * p.oc + col0;
    StoreTile<kRows, 1>(acc, rows, a.b != nullptr ? a.b + col0 : nullptr, &p.post_ops,
                        a.r != nullptr ? a.r + y_at : nullptr, y_lanes, a.y + y_at, p.oc);
  }
}

void Conv2dFwdGrouped(const Conv2dFwdArgs& a) {
  const Conv2dProblem& p = *a.p;
  const GroupedLaneTable table =
      MakeGroupedLaneTable(p.ic_per_group(), p.oc_per_group(), hn::Lanes(DF()));
  const int64_t tiles = (p.n * p.oh * p.ow + static_cast<int64_t>(kRows) - 1) / kRows;
  ParallelFor(a.threads, tiles,
              [&](int64_t t) { RunTile(a, table, t * static_cast<int64_t>(kRows)); });
}

}  // namespace

Conv2dFwdKernel GetConv2dFwdGroupedKernel() {
  const size_t lanes = hn::Lanes(DF());
  return {&Conv2dFwdGrouped, static_cast<int64_t>(lanes <= kGroupedMaxLanes ? lanes : 1), 1,
          hwy::TargetName(HWY_TARGET)};
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace convkit::internal::highway {

HWY_EXPORT(GetConv2dFwdGroupedKernel);

Conv2dFwdKernel Conv2dFwdGroupedKernel() {
  return HWY_DYNAMIC_DISPATCH(GetConv2dFwdGroupedKernel)();
}

}  // namespace convkit::internal::highway
#endif  // HWY_ONCE
