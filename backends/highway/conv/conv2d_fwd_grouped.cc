// Forward convolution with narrow groups: OCg = OC / groups a proper divisor of the vector width
// L, ICg = IC / groups <= OCg (ResNeXt-50 32x4d: groups of 4 and 8 channels; RegNetY: 8).
//
// A block is the P = L / OCg consecutive groups whose outputs fill one vector: lane l holds output
// channel o = l % OCg of group g0 + l / OCg. As a batched GEMM over the groups of a block, for each
// pixel and tap the P groups' ICg input channels are one vector load X (they are consecutive in
// NHWC, P * ICg <= L floats), and for input channel ic of every group
//   acc += TableLookupLanes(X, idx[ic]) * W[tap][ic],  idx[ic][l] = (l / OCg) * ICg + ic,
// with W[tap][ic][l] = w(tap, ic, (g0 + l / OCg) * OCg + l % OCg): one permutation and one FMA
// for L useful products, where the implicit GEMM kernel spends one FMA for OCg of them (a
// quarter of the lanes at OCg = 4). Cross-block permutations (vpermps) issue at one per cycle,
// half the FMA rate, so when ICg and OCg are multiples of 4 (every 128-bit block then lies in one
// group) the kernel permutes once per 4 channels, T = TableLookupLanes(X, idx4[q]) with
// idx4[q][l] = (l / OCg) * ICg + 4q + l % 4, and takes channel 4q + k as Broadcast<k>(T), an
// in-block shuffle (vpermilps, two per cycle): 1.25 shuffles per FMA become 0.25 + 1 cheap ones.
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
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {
namespace {

using DI = hn::RebindToSigned<DF>;

// Pixels per tile: kRows accumulators and kRows input vectors stay live across a tap's channels,
// plus the weight vector and the permuted input: 2 * 12 + 2 of the 32 zmm registers, 2 * 6 + 2 of
// the 16 ymm ones.
#if HWY_TARGET == HWY_AVX3
constexpr size_t kRows = 12;
#elif HWY_TARGET == HWY_AVX2
constexpr size_t kRows = 6;
#else
constexpr size_t kRows = 4;
#endif

// The largest vector in floats this file is compiled for: idx tables are sized by it.
constexpr size_t kMaxLanes = 16;

// idx[ic][l] = (l / OCg) * ICg + ic: lane l's input channel ic, within the block's load X. With
// `by4`, idx[q][l] = (l / OCg) * ICg + 4q + l % 4 instead: channels 4q..4q+3 of lane l's group in
// lane l's 128-bit block.
struct LaneTable {
  HWY_ALIGN int32_t idx[kMaxLanes][kMaxLanes];
  bool by4 = false;
};

// The 4-channel path needs whole 128-bit blocks per group and Broadcast<k> within them.
bool By4(const Conv2dProblem& p, size_t lanes) {
  return lanes >= 4 && p.ic_per_group() % 4 == 0 && p.oc_per_group() % 4 == 0;
}

LaneTable MakeLaneTable(const Conv2dProblem& p, size_t lanes) {
  LaneTable t{};
  const int64_t icg = p.ic_per_group(), ocg = p.oc_per_group();
  t.by4 = By4(p, lanes);
  const int64_t rows = t.by4 ? icg / 4 : icg;
  for (int64_t r = 0; r < rows; ++r) {
    for (size_t l = 0; l < lanes; ++l) {
      const int64_t lane = static_cast<int64_t>(l);
      const int64_t channel = t.by4 ? 4 * r + lane % 4 : r;
      t.idx[r][l] = static_cast<int32_t>(lane / ocg * icg + channel);
    }
  }
  return t;
}

// acc[i] += the tap's products for pixel i, whose block load is x[i]: channel by channel, one
// permutation each (any ICg <= OCg).
HWY_INLINE void AccumulateTap1(const LaneTable& table, const float* HWY_RESTRICT w, int64_t icg,
                               const VF (&x)[kRows], VF (&acc)[kRows][1]) {
  const DF d;
  const DI di;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  for (int64_t ic = 0; ic < icg; ++ic) {
    const VF wv = hn::Load(d, w + ic * lanes);
    const auto idx = hn::IndicesFromVec(d, hn::Load(di, table.idx[ic]));
    HWY_UNROLL(16)
    for (size_t i = 0; i < kRows; ++i) {
      acc[i][0] = hn::MulAdd(hn::TableLookupLanes(x[i], idx), wv, acc[i][0]);
    }
  }
}

// One group per block (OCg = L): channel ic of pixel i broadcast from memory, no shuffle.
HWY_INLINE void AccumulateTapWhole(const float* const (&xp)[kRows], const float* HWY_RESTRICT w,
                                   int64_t icg, VF (&acc)[kRows][1]) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  VF a[kRows];
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) a[i] = acc[i][0];
  for (int64_t ic = 0; ic < icg; ++ic) {
    const VF wv = hn::Load(d, w + ic * lanes);
    HWY_UNROLL(16)
    for (size_t i = 0; i < kRows; ++i) a[i] = hn::MulAdd(hn::Set(d, xp[i][ic]), wv, a[i]);
  }
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) acc[i][0] = a[i];
}

// The same, 4 channels per permutation (LaneTable::by4), in the same channel order.
HWY_INLINE void AccumulateTap4(const LaneTable& table, const float* HWY_RESTRICT w, int64_t icg,
                               const VF (&x)[kRows], VF (&acc)[kRows][1]) {
#if HWY_TARGET == HWY_SCALAR
  AccumulateTap1(table, w, icg, x, acc);  // never taken: By4 needs 4 lanes
#else
  const DF d;
  const DI di;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  for (int64_t q = 0; q < icg / 4; ++q, w += 4 * lanes) {
    const VF w0 = hn::Load(d, w), w1 = hn::Load(d, w + lanes);
    const VF w2 = hn::Load(d, w + 2 * lanes), w3 = hn::Load(d, w + 3 * lanes);
    const auto idx = hn::IndicesFromVec(d, hn::Load(di, table.idx[q]));
    HWY_UNROLL(16)
    for (size_t i = 0; i < kRows; ++i) {
      const VF t = hn::TableLookupLanes(x[i], idx);
      VF a = hn::MulAdd(hn::Broadcast<0>(t), w0, acc[i][0]);
      a = hn::MulAdd(hn::Broadcast<1>(t), w1, a);
      a = hn::MulAdd(hn::Broadcast<2>(t), w2, a);
      acc[i][0] = hn::MulAdd(hn::Broadcast<3>(t), w3, a);
    }
  }
#endif
}

// The taps of one tile that do not lie wholly in the padding, computed once and shared by every
// block: per tap, its index kh * KW + kw and, per pixel, the input pixel read at channel 0 (or
// `zeros`, which holds IC floats, so that zeros + a block's channel offset still reads zeros).
// Recomputing them per block (PixelTile::Tap, with per-pixel bounds checks on the tiles that touch
// the padding, most of them at 14x14) cost a third of the FMA work at 32 groups.
constexpr int64_t kMaxTaps = 49;

struct TileTaps {
  int64_t count = 0;
  int64_t tap[kMaxTaps];
  const float* xp[kMaxTaps][kRows];
};

// Taps [tap_begin, min(tap_end, tap_begin + kMaxTaps)) of the tile.
void GatherTaps(const Conv2dProblem& p, const PixelTile<kRows>& tile, const float* zeros,
                int64_t tap_begin, int64_t tap_end, TileTaps* taps) {
  taps->count = 0;
  const int64_t end = std::min(tap_end, tap_begin + kMaxTaps);
  for (int64_t t = tap_begin; t < end; ++t) {
    if (!tile.Tap(t / p.kw, t % p.kw, zeros, taps->xp[taps->count])) continue;
    taps->tap[taps->count++] = t;
  }
}

// acc += the taps of `taps` for block j of the tile.
void AccumulateBlock(const Conv2dFwdArgs& a, const LaneTable& table, const TileTaps& taps,
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
    for (size_t i = 0; i < kRows; ++i) xp[i] = taps.xp[t][i] + x_offset;
    if (per_block == 1) {
      AccumulateTapWhole(xp, wt, icg, acc);
      continue;
    }
    VF x[kRows];
    HWY_UNROLL(16)
    for (size_t i = 0; i < kRows; ++i) {
      // Masked: the last block may hold fewer groups, and nothing past them is read.
      x[i] = hn::MaskedLoad(x_lanes, d, xp[i]);
    }
    if (table.by4) {
      AccumulateTap4(table, wt, icg, x, acc);
    } else {
      AccumulateTap1(table, wt, icg, x, acc);
    }
  }
}

// Output pixels [m0, m0 + kRows) of every block. a.w: block j's rows at
// data + j * block_stride + (tap * ICg + ic) * L, L floats each.
void RunTile(const Conv2dFwdArgs& a, const LaneTable& table, int64_t m0) {
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
    HWY_UNROLL(16)
    for (size_t i = 0; i < kRows; ++i) acc[i][0] = hn::Zero(d);
    AccumulateBlock(a, table, taps, j, acc);
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
  const LaneTable table = MakeLaneTable(p, hn::Lanes(DF()));
  const int64_t tiles = (p.n * p.oh * p.ow + static_cast<int64_t>(kRows) - 1) / kRows;
  ParallelFor(a.threads, tiles,
              [&](int64_t t) { RunTile(a, table, t * static_cast<int64_t>(kRows)); });
}

}  // namespace

Conv2dFwdKernel GetConv2dFwdGroupedKernel() {
  const size_t lanes = hn::Lanes(DF());
  return {&Conv2dFwdGrouped, static_cast<int64_t>(lanes <= kMaxLanes ? lanes : 1), 1,
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
