// Backward data with narrow groups: ICg = IC / groups dividing the vector width L, OCg = OC /
// groups <= ICg (ResNeXt-50 32x4d: groups of 4 to 16 channels; RegNetY: 8). The forward
// narrow-groups kernel (conv2d_fwd_grouped.cc) with the roles of x and dy, IC and OC swapped: a
// block is the P = L / ICg consecutive groups whose dx channels fill one vector (lane l: channel
// l % ICg of group g0 + l / ICg); per dx pixel and tap, the P groups' OCg dy channels are one
// vector load, permuted across the lanes per channel (or per 4 channels) and multiplied by a
// packed row of w^T (conv2d_grouped-inl.h). The implicit GEMM kernel fills ICg lanes of each
// vector there (a quarter at ICg = 4).
//
// Stride: the gather form of conv2d_bwd_data.cc. The dx pixels are split into phases (DxPhase,
// conv2d_bwd_tile.hpp), within which every pixel has the same taps and reads dy at a fixed offset
// per tap (DxTile), so no tap multiplies zeros for a whole phase and each dx element is one sum,
// written once. Per tile of kRows pixels of a phase, its taps are resolved once (TileTaps) and
// every block runs in turn: the tile's dy pixels stay in L1 across the blocks, the packed w^T of
// all blocks (KH * KW * OCg * L floats each) in L2. Threads take tiles; any split gives the same
// bits. Summation order per dx element: taps in (kh, kw) order, dy channels in order; integer
// data give the reference's bits.
//
// Compiled once per Highway target through foreach_target.h (hwy/examples/skeleton.cc).
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backends/highway/common/parallel.hpp"
#include "backends/highway/conv/conv2d_bwd.hpp"
#include "backends/highway/conv/conv2d_bwd_tile.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/highway/conv/conv2d_bwd_data_grouped.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must follow foreach_target.h: re-included once per target.
#include "backends/highway/conv/conv2d_bwd_epilogue-inl.h"
#include "backends/highway/conv/conv2d_grouped-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {
// Internal linkage for everything but the exported entry point (see conv2d_fwd_depthwise.cc).
namespace {

constexpr size_t kRows = kGroupedRows;
constexpr int64_t kMaxTaps = kGroupedMaxTaps;
using TileTaps = GroupedTileTaps;

// Taps [tap_begin, min(tap_end, tap_begin + kMaxTaps)) of the tile that reach dy. Kernel rows
// outside the phase are skipped whole, and no tap index is divided (t / KW per tap, with the
// phase tests, took a fifth of the time at stride 2).
void GatherTaps(const Conv2dProblem& p, const DxTile<kRows>& tile, const float* zeros,
                int64_t tap_begin, int64_t tap_end, TileTaps* taps) {
  taps->count = 0;
  const int64_t end = std::min(tap_end, tap_begin + kMaxTaps);
  for (int64_t kh = tap_begin / p.kw, row = kh * p.kw; row < end; ++kh, row += p.kw) {
    int64_t qh;
    if (!tile.RowOffset(kh, &qh)) continue;
    for (int64_t kw = std::max<int64_t>(0, tap_begin - row); kw < p.kw && row + kw < end; ++kw) {
      int64_t qw;
      if (!tile.ColOffset(kw, &qw) || !tile.TapAt(qh, qw, zeros, taps->src[taps->count])) continue;
      taps->tap[taps->count++] = row + kw;
    }
  }
}

// acc += the taps of `taps` for block j of the tile. a.w: block j's rows at data + j *
// block_stride + (tap * OCg + oc) * L.
HWY_INLINE void AccumulateBlock(const Conv2dBwdDataArgs& a, const GroupedLaneTable& table,
                                const TileTaps& taps, int64_t j, VF (&acc)[kRows][1]) {
  const Conv2dProblem& p = *a.p;
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const int64_t icg = p.ic_per_group(), ocg = p.oc_per_group();
  const int64_t per_block = lanes / icg;
  const int64_t groups = std::min(per_block, p.groups - j * per_block);
  const MF dy_lanes = hn::FirstN(d, static_cast<size_t>(groups * ocg));
  const int64_t dy_offset = j * per_block * ocg;
  const float* w = a.w.data + j * a.w.block_stride;
  for (int64_t t = 0; t < taps.count; ++t) {
    const float* dyp[kRows];
    HWY_UNROLL(16)
    for (size_t i = 0; i < kRows; ++i) dyp[i] = taps.src[t][i] + dy_offset;
    GroupedTap<kRows>(table, dyp, w + taps.tap[t] * ocg * lanes, ocg, per_block == 1, dy_lanes,
                      acc);
  }
}

// One group per vector (ICg = L): blocks j and j + 1 at once, acc[i][b] for block j + b. The two
// blocks read the same dy pixels (OCg floats apart) and their w^T rows block_stride apart, so each
// dy pointer and each pass over a tap's channels serves twice the FMAs: one block at a time the
// broadcast FMAs ran at ~70 % of the FMA peak, held back by the pointer and loop work around them.
HWY_INLINE void AccumulatePair(const Conv2dBwdDataArgs& a, const TileTaps& taps, int64_t j,
                               VF (&acc)[kRows][2]) {
  const Conv2dProblem& p = *a.p;
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const int64_t ocg = p.oc_per_group();
  const float* w = a.w.data + j * a.w.block_stride;
  for (int64_t t = 0; t < taps.count; ++t) {
    const float* dyp[kRows];
    HWY_UNROLL(16)
    for (size_t i = 0; i < kRows; ++i) dyp[i] = taps.src[t][i] + j * ocg;
    const float* w0 = w + taps.tap[t] * ocg * lanes;
    const float* w1 = w0 + a.w.block_stride;
    for (int64_t c = 0; c < ocg; ++c) {
      const VF wv0 = hn::Load(d, w0 + c * lanes), wv1 = hn::Load(d, w1 + c * lanes);
      HWY_UNROLL(16)
      for (size_t i = 0; i < kRows; ++i) {
        acc[i][0] = hn::MulAdd(hn::Set(d, dyp[i][c]), wv0, acc[i][0]);
        acc[i][1] = hn::MulAdd(hn::Set(d, dyp[i][ocg + c]), wv1, acc[i][1]);
      }
    }
  }
}

// Blocks j and j + 1 of the tile (ICg = L, j + 1 < blocks).
void RunPair(const Conv2dBwdDataArgs& a, const DxTile<kRows>& tile, const TileTaps& taps,
             int64_t j) {
  const Conv2dProblem& p = *a.p;
  const DF d;
  const int64_t kernel_taps = p.kh * p.kw;
  VF acc[kRows][2];
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) acc[i][0] = acc[i][1] = hn::Zero(d);
  AccumulatePair(a, taps, j, acc);
  for (int64_t t0 = kMaxTaps; t0 < kernel_taps; t0 += kMaxTaps) {
    TileTaps more;
    GatherTaps(p, tile, a.zeros, t0, kernel_taps, &more);
    AccumulatePair(a, more, j, acc);
  }
  const int64_t col0 = j * p.ic_per_group();
  const DxTileEpilogue<2> epilogue(a.epilogue, col0, hn::FirstN(d, hn::Lanes(d)));
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) {
    if (i >= tile.rows()) break;
    epilogue.Store(acc[i], a.dx + tile.dx_offset(i) + col0);
  }
}

// Pixels [m0, m0 + kRows) of `phase`, every block.
void RunTile(const Conv2dBwdDataArgs& a, const GroupedLaneTable& table, const DxPhase& phase,
             int64_t m0) {
  const Conv2dProblem& p = *a.p;
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const int64_t icg = p.ic_per_group();
  const int64_t per_block = lanes / icg;
  const int64_t blocks = (p.groups + per_block - 1) / per_block;
  const int64_t kernel_taps = p.kh * p.kw;
  const DxTile<kRows> tile(p, phase, a.dy, 0, m0);
  TileTaps taps;
  GatherTaps(p, tile, a.zeros, 0, kernel_taps, &taps);
  int64_t j = 0;
  if (per_block == 1) {
    for (; j + 1 < blocks; j += 2) RunPair(a, tile, taps, j);
  }
  for (; j < blocks; ++j) {
    VF acc[kRows][1];
    GroupedBlock<kRows>(
        taps, j, p.ic_per_group(), p.oc_per_group(), p.groups, a.w.data + j * a.w.block_stride,
        [&](VF(&block)[kRows][1]) { AccumulateBlock(a, table, taps, j, block); }, acc);
    // Kernels of more than kMaxTaps taps: the further taps in chunks, rebuilt per block.
    for (int64_t t0 = kMaxTaps; t0 < kernel_taps; t0 += kMaxTaps) {
      TileTaps more;
      GatherTaps(p, tile, a.zeros, t0, kernel_taps, &more);
      AccumulateBlock(a, table, more, j, acc);
    }
    const int64_t col0 = j * per_block * icg;
    const MF dx_lanes =
        hn::FirstN(d, static_cast<size_t>(std::min(per_block, p.groups - j * per_block) * icg));
    const DxTileEpilogue<1> epilogue(a.epilogue, col0, dx_lanes);
    // Constant indices only (unrolled, the row count tested inside): a variable index into acc
    // kept every accumulator on the stack.
    HWY_UNROLL(16)
    for (size_t i = 0; i < kRows; ++i) {
      if (i >= tile.rows()) break;
      epilogue.Store(acc[i], a.dx + tile.dx_offset(i) + col0);
    }
  }
}

// Every (tile, phase) item, phases innermost: the phases' tile t read about the same dy rows, which
// then stay in L1 (phase-major order read all of dy from L2 once per phase). Phase (0, 0) has the
// most pixels; items past a phase's last tile do nothing.
void Conv2dBwdDataGrouped(const Conv2dBwdDataArgs& a) {
  const Conv2dProblem& p = *a.p;
  const GroupedLaneTable table =
      MakeGroupedLaneTable(p.oc_per_group(), p.ic_per_group(), hn::Lanes(DF()));
  const int64_t rows = static_cast<int64_t>(kRows);
  const int64_t phases = DxPhase::Count(p);
  const int64_t tiles = (DxPhase(p, 0).pixels(p) + rows - 1) / rows;
  ParallelFor(a.threads, phases * tiles, [&](int64_t t) {
    const DxPhase phase(p, t % phases);
    const int64_t m0 = (t / phases) * rows;
    if (m0 < phase.pixels(p)) RunTile(a, table, phase, m0);
  });
}

}  // namespace

Conv2dBwdDataKernel GetConv2dBwdDataGroupedKernel() {
  const size_t lanes = hn::Lanes(DF());
  return {&Conv2dBwdDataGrouped, static_cast<int64_t>(lanes <= kGroupedMaxLanes ? lanes : 1), 1,
          hwy::TargetName(HWY_TARGET)};
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace convkit::internal::highway {

HWY_EXPORT(GetConv2dBwdDataGroupedKernel);

Conv2dBwdDataKernel ChooseConv2dBwdDataGroupedKernel() {
  return HWY_DYNAMIC_DISPATCH(GetConv2dBwdDataGroupedKernel)();
}

}  // namespace convkit::internal::highway
#endif  // HWY_ONCE
