// Backward weights (+ bias) with narrow groups: OCg = OC / groups dividing the vector width L,
// ICg = IC / groups in {1, 2, 4, 8, 16} and <= OCg (ResNeXt-50 32x4d, RegNetY). The generic
// kernel's GEMM per group has OCg columns: a quarter of a vector at OCg = 4. Here a block is the
// P = L / OCg consecutive groups whose dw columns fill one vector (lane l: output channel l % OCg
// of group g0 + l / OCg), the forward narrow-groups layout (conv2d_grouped-inl.h with k = ICg, n =
// OCg): per dy pixel the block's dy channels are one vector load D, the P groups' x channels at a
// tap one vector load X, and for input channel ic
//   dw[tap][ic] += TableLookupLanes(X, idx[ic]) * D   (per 4 channels: one permutation + in-block
//                                                       broadcasts, as the forward kernel)
// whose lanes are exactly the HWIO row dw(tap, ic, block's columns): stored as they are.
//
// Work: items (block, group of kTaps taps), each summing over every dy pixel in (n, oh, ow) order
// from +0 (an input in the padding reads zeros, as the reference's padded x), then storing its dw
// rows; db of a block is summed by its first item in the same order. 3-wide kernel rows at
// stride_w 1 take items (block, kernel row, 4 input channels) instead (RunRowItem: each x pixel's
// permutations serve the row's 3 taps), each dw element's terms still in ow order. Every output
// element has one owner and one order: the bits do not depend on the thread count, and integer
// data give the reference's bits.
//
// Compiled once per Highway target through foreach_target.h (hwy/examples/skeleton.cc).
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backends/highway/common/parallel.hpp"
#include "backends/highway/conv/conv2d_bwd.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/highway/conv/conv2d_bwd_weights_grouped.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must follow foreach_target.h: re-included once per target.
#include "backends/highway/common/vec-inl.h"
#include "backends/highway/conv/conv2d_grouped-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {
// Internal linkage for everything but the exported entry point (see conv2d_fwd_depthwise.cc).
namespace {

// dw accumulators per item (kTaps * ICg), leaving registers for D, X, the permuted X, the db sum
// and the permutation indices: 16 of 32 zmm, 8 of 16 ymm.
#if HWY_TARGET == HWY_AVX3
constexpr size_t kAccs = 16;
#else
constexpr size_t kAccs = 8;
#endif

constexpr size_t TapsFor(size_t icg) {
  return icg >= kAccs ? 1 : (kAccs / icg > 8 ? 8 : kAccs / icg);
}

// One item's view of the problem: the block's channel offsets and lanes.
struct Block {
  int64_t x_offset = 0, dy_offset = 0;  // first x and dy channel of the block
  MF x_lanes, dy_lanes;                 // P * ICg and P * OCg (fewer in a short last block)
};

// acc[t][ic] += the terms of one dy pixel (D) for the taps of the item, whose x inputs are at
// xp[t] (a pointer into x at the block's first channel, or to L zeros).
template <size_t kIcg, size_t kTaps>
HWY_INLINE void AddPixel(const GroupedLaneTable& table, const float* const (&xp)[kTaps],
                         const Block& b, bool whole, VF d_vec, VF (&acc)[kTaps][kIcg]) {
  const DF d;
  const hn::RebindToSigned<DF> di;
  HWY_UNROLL(8)
  for (size_t t = 0; t < kTaps; ++t) {
    if (whole) {  // one group per vector: channel ic broadcast from memory
      HWY_UNROLL(16)
      for (size_t ic = 0; ic < kIcg; ++ic) {
        acc[t][ic] = hn::MulAdd(hn::Set(d, xp[t][ic]), d_vec, acc[t][ic]);
      }
      continue;
    }
    const VF x = hn::MaskedLoad(b.x_lanes, d, xp[t]);
    if constexpr (kIcg % 4 == 0 && HWY_TARGET != HWY_SCALAR) {
      if (table.by4) {
        HWY_UNROLL(4)
        for (size_t q = 0; q < kIcg / 4; ++q) {
          const VF v = hn::TableLookupLanes(x, hn::IndicesFromVec(d, hn::Load(di, table.idx[q])));
          acc[t][4 * q] = hn::MulAdd(hn::Broadcast<0>(v), d_vec, acc[t][4 * q]);
          acc[t][4 * q + 1] = hn::MulAdd(hn::Broadcast<1>(v), d_vec, acc[t][4 * q + 1]);
          acc[t][4 * q + 2] = hn::MulAdd(hn::Broadcast<2>(v), d_vec, acc[t][4 * q + 2]);
          acc[t][4 * q + 3] = hn::MulAdd(hn::Broadcast<3>(v), d_vec, acc[t][4 * q + 3]);
        }
        continue;
      }
    }
    HWY_UNROLL(16)
    for (size_t ic = 0; ic < kIcg; ++ic) {
      const VF v = hn::TableLookupLanes(x, hn::IndicesFromVec(d, hn::Load(di, table.idx[ic])));
      acc[t][ic] = hn::MulAdd(v, d_vec, acc[t][ic]);
    }
  }
}

// Block j, taps [tap0, tap0 + taps) (taps <= kTaps): dw rows (tap, ic) at the block's columns,
// and db of the block's columns when db != null.
template <size_t kIcg, size_t kTaps>
void RunItem(const Conv2dBwdWeightsArgs& a, const GroupedLaneTable& table, const float* zeros,
             int64_t j, int64_t tap0, int64_t taps, float* db) {
  const Conv2dProblem& p = *a.p;
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const int64_t ocg = p.oc_per_group();
  const int64_t per_block = lanes / ocg;
  const int64_t groups = std::min(per_block, p.groups - j * per_block);
  Block b;
  b.x_offset = j * per_block * static_cast<int64_t>(kIcg);
  b.dy_offset = j * per_block * ocg;
  b.x_lanes = hn::FirstN(d, static_cast<size_t>(groups) * kIcg);
  b.dy_lanes = hn::FirstN(d, static_cast<size_t>(groups * ocg));
  const bool whole = per_block == 1;
  int64_t kh[kTaps], kw[kTaps];
  for (size_t t = 0; t < kTaps; ++t) {
    const int64_t tap = tap0 + std::min(static_cast<int64_t>(t), taps - 1);  // repeats: not stored
    kh[t] = tap / p.kw;
    kw[t] = tap % p.kw;
  }
  VF acc[kTaps][kIcg];
  HWY_UNROLL(8)
  for (size_t t = 0; t < kTaps; ++t) {
    HWY_UNROLL(16)
    for (size_t ic = 0; ic < kIcg; ++ic) acc[t][ic] = hn::Zero(d);
  }
  VF sum = hn::Zero(d);
  for (int64_t n = 0; n < p.n; ++n) {
    for (int64_t oh = 0; oh < p.oh; ++oh) {
      const float* x_row[kTaps];  // x at (n, ih, 0) and the block's first channel, or null
      for (size_t t = 0; t < kTaps; ++t) {
        const int64_t ih = oh * p.stride_h - p.pad.top + kh[t] * p.dilation_h;
        x_row[t] =
            ih >= 0 && ih < p.ih ? a.x + (n * p.ih + ih) * p.iw * p.ic + b.x_offset : nullptr;
      }
      const float* dy_row = a.dy + (n * p.oh + oh) * p.ow * p.oc + b.dy_offset;
      for (int64_t ow = 0; ow < p.ow; ++ow) {
        const float* xp[kTaps];
        for (size_t t = 0; t < kTaps; ++t) {
          const int64_t iw = ow * p.stride_w - p.pad.left + kw[t] * p.dilation_w;
          xp[t] = x_row[t] != nullptr && iw >= 0 && iw < p.iw ? x_row[t] + iw * p.ic : zeros;
        }
        const VF d_vec = hn::MaskedLoad(b.dy_lanes, d, dy_row + ow * p.oc);
        if (db != nullptr) sum = hn::Add(sum, d_vec);
        AddPixel<kIcg, kTaps>(table, xp, b, whole, d_vec, acc);
      }
    }
  }
  // Constant indices only (unrolled, the tap count tested inside): a variable index into acc kept
  // every accumulator on the stack.
  HWY_UNROLL(8)
  for (size_t t = 0; t < kTaps; ++t) {
    if (static_cast<int64_t>(t) >= taps) break;
    float* row =
        a.dw + (tap0 + static_cast<int64_t>(t)) * static_cast<int64_t>(kIcg) * p.oc + b.dy_offset;
    HWY_UNROLL(16)
    for (size_t ic = 0; ic < kIcg; ++ic) {
      hn::BlendedStore(acc[t][ic], b.dy_lanes, d, row + static_cast<int64_t>(ic) * p.oc);
    }
  }
  if (db != nullptr) hn::BlendedStore(sum, b.dy_lanes, d, db + b.dy_offset);
}

// ---- Kernel rows of 3 taps at stride_w = dilation_w = 1 ----
// Tap (kh, kw) of dy pixel ow reads x pixel u = ow + kw (iw = u - pad_left): each x pixel's
// permuted and broadcast channels serve the 3 taps of a kernel row, with the dy pixels u, u - 1,
// u - 2 kept in registers as a sliding window: a third of the shuffles per FMA of AddPixel,
// whose shuffles bound it (ICg = 8: 1.25 per FMA). Per dw element the terms still come in ow
// order.

// An item takes kChans <= 4 input channels (one permutation's worth, or ICg when it is 1 or 2):
// 3 x 4 accumulators, the 3 dy vectors, x and its permutation and broadcast within 16 registers
// (3 x 8 for ICg = 8 spilled to the stack).
constexpr size_t kRowTaps = 3;
constexpr size_t RowChans(size_t icg) { return icg < 4 ? icg : 4; }

bool RowsApply(const Conv2dProblem& p) {
  return p.kw == static_cast<int64_t>(kRowTaps) && p.stride_w == 1 && p.dilation_w == 1;
}

// acc[kw][c] += x channel c0 + c (of lane l's group) times dy[kw], dy pixel u - kw, for the taps
// kw with valid[kw] (all of them unless kEdge).
template <size_t kChans, bool kEdge>
HWY_INLINE void AddXPixel(const GroupedLaneTable& table, int64_t c0, VF x, const VF (&dy)[kRowTaps],
                          const bool (&valid)[kRowTaps], VF (&acc)[kRowTaps][kChans]) {
  const DF d;
  const hn::RebindToSigned<DF> di;
  if constexpr (kChans == 4 && HWY_TARGET != HWY_SCALAR) {
    if (table.by4) {
      const VF v = hn::TableLookupLanes(x, hn::IndicesFromVec(d, hn::Load(di, table.idx[c0 / 4])));
      HWY_UNROLL(3)
      for (size_t t = 0; t < kRowTaps; ++t) {
        if (kEdge && !valid[t]) continue;
        acc[t][0] = hn::MulAdd(hn::Broadcast<0>(v), dy[t], acc[t][0]);
        acc[t][1] = hn::MulAdd(hn::Broadcast<1>(v), dy[t], acc[t][1]);
        acc[t][2] = hn::MulAdd(hn::Broadcast<2>(v), dy[t], acc[t][2]);
        acc[t][3] = hn::MulAdd(hn::Broadcast<3>(v), dy[t], acc[t][3]);
      }
      return;
    }
  }
  HWY_UNROLL(4)
  for (size_t c = 0; c < kChans; ++c) {
    const VF v = hn::TableLookupLanes(
        x, hn::IndicesFromVec(d, hn::Load(di, table.idx[c0 + static_cast<int64_t>(c)])));
    HWY_UNROLL(3)
    for (size_t t = 0; t < kRowTaps; ++t) {
      if (!kEdge || valid[t]) acc[t][c] = hn::MulAdd(v, dy[t], acc[t][c]);
    }
  }
}

// One row of x and dy of an item: pointers at the block's first channel (x_row null: the row lies
// in the padding), and the block's lanes.
struct RowView {
  const float* x_row;
  const float* dy_row;
  const float* zeros;
  MF x_lanes, dy_lanes;
};

// x pixel u of the row: the dy window slides to u, u - 1, u - 2, and x pixel u's terms are added.
template <size_t kChans, bool kEdge>
HWY_INLINE void RowStep(const Conv2dProblem& p, const GroupedLaneTable& table, int64_t c0,
                        const RowView& r, int64_t u, VF (&dy)[kRowTaps],
                        VF (&acc)[kRowTaps][kChans]) {
  const DF d;
  dy[2] = dy[1];
  dy[1] = dy[0];
  if (!kEdge || u < p.ow) {
    dy[0] = hn::MaskedLoad(r.dy_lanes, d, r.dy_row + u * p.oc);
  } else {
    dy[0] = hn::Zero(d);
  }
  const int64_t iw = u - p.pad.left;
  const float* xp = r.x_row != nullptr && iw >= 0 && iw < p.iw ? r.x_row + iw * p.ic : r.zeros;
  const bool valid[kRowTaps] = {u < p.ow, u >= 1 && u - 1 < p.ow, u >= 2};
  AddXPixel<kChans, kEdge>(table, c0, hn::MaskedLoad(r.x_lanes, d, xp), dy, valid, acc);
}

// Block j, kernel row kh, input channels [c0, c0 + kChans): dw rows (kh * 3 + kw, ic) at the
// block's columns, and db when db != null. P > 1 (P = 1 is AddPixel's broadcast from memory).
template <size_t kChans>
void RunRowItem(const Conv2dBwdWeightsArgs& a, const GroupedLaneTable& table, const float* zeros,
                int64_t j, int64_t kh, int64_t c0, float* db) {
  const Conv2dProblem& p = *a.p;
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const int64_t icg = p.ic_per_group(), ocg = p.oc_per_group();
  const int64_t per_block = lanes / ocg;
  const int64_t groups = std::min(per_block, p.groups - j * per_block);
  const int64_t x_offset = j * per_block * icg;
  const int64_t dy_offset = j * per_block * ocg;
  const MF x_lanes = hn::FirstN(d, static_cast<size_t>(groups * icg));
  const MF dy_lanes = hn::FirstN(d, static_cast<size_t>(groups * ocg));
  VF acc[kRowTaps][kChans];
  HWY_UNROLL(3)
  for (size_t t = 0; t < kRowTaps; ++t) {
    HWY_UNROLL(4)
    for (size_t c = 0; c < kChans; ++c) acc[t][c] = hn::Zero(d);
  }
  VF sum = hn::Zero(d);
  const int64_t span = p.ow + static_cast<int64_t>(kRowTaps) - 1;  // x pixels u of a row
  for (int64_t n = 0; n < p.n; ++n) {
    for (int64_t oh = 0; oh < p.oh; ++oh) {
      const float* dy_row = a.dy + (n * p.oh + oh) * p.ow * p.oc + dy_offset;
      if (db != nullptr) {
        for (int64_t ow = 0; ow < p.ow; ++ow) {
          sum = hn::Add(sum, hn::MaskedLoad(dy_lanes, d, dy_row + ow * p.oc));
        }
      }
      const int64_t ih = oh * p.stride_h - p.pad.top + kh * p.dilation_h;
      const float* x_row =
          ih >= 0 && ih < p.ih ? a.x + (n * p.ih + ih) * p.iw * p.ic + x_offset : nullptr;
      VF dy[kRowTaps] = {hn::Zero(d), hn::Zero(d), hn::Zero(d)};
      const RowView row{x_row, dy_row, zeros, x_lanes, dy_lanes};
      // Tap kw pairs x pixel u with dy pixel u - kw, which exists for kw <= u < ow + kw: all three
      // for u in [2, ow).
      const int64_t inner_begin = std::min<int64_t>(2, span);
      const int64_t inner_end = std::max(inner_begin, p.ow);
      for (int64_t u = 0; u < inner_begin; ++u) {
        RowStep<kChans, true>(p, table, c0, row, u, dy, acc);
      }
      for (int64_t u = inner_begin; u < inner_end; ++u) {
        RowStep<kChans, false>(p, table, c0, row, u, dy, acc);
      }
      for (int64_t u = inner_end; u < span; ++u) {
        RowStep<kChans, true>(p, table, c0, row, u, dy, acc);
      }
    }
  }
  HWY_UNROLL(3)
  for (size_t t = 0; t < kRowTaps; ++t) {
    float* row = a.dw + ((kh * p.kw + static_cast<int64_t>(t)) * icg + c0) * p.oc + dy_offset;
    HWY_UNROLL(4)
    for (size_t c = 0; c < kChans; ++c) {
      hn::BlendedStore(acc[t][c], dy_lanes, d, row + static_cast<int64_t>(c) * p.oc);
    }
  }
  if (db != nullptr) hn::BlendedStore(sum, dy_lanes, d, db + dy_offset);
}

template <size_t kIcg>
void RunGrouped(const Conv2dBwdWeightsArgs& a) {
  constexpr size_t kTaps = TapsFor(kIcg);
  const Conv2dProblem& p = *a.p;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(DF()));
  const GroupedLaneTable table =
      MakeGroupedLaneTable(p.ic_per_group(), p.oc_per_group(), static_cast<size_t>(lanes));
  // Taps in the padding read one vector of zeros (never offset by the block's channels).
  HWY_ALIGN const float zeros[kGroupedMaxLanes] = {};
  const int64_t per_block = lanes / p.oc_per_group();
  const int64_t blocks = (p.groups + per_block - 1) / per_block;
  constexpr size_t kChans = RowChans(kIcg);
  if (RowsApply(p) && per_block > 1 && (kChans < 4 || table.by4)) {
    const int64_t parts = static_cast<int64_t>(kIcg / kChans);
    ParallelFor(a.threads, blocks * p.kh * parts, [&](int64_t item) {
      const int64_t j = item / (p.kh * parts), kh = item / parts % p.kh, part = item % parts;
      RunRowItem<kChans>(a, table, zeros, j, kh, part * static_cast<int64_t>(kChans),
                         kh == 0 && part == 0 ? a.db : nullptr);
    });
    return;
  }
  const int64_t kernel_taps = p.kh * p.kw;
  const int64_t tap_groups = (kernel_taps + static_cast<int64_t>(kTaps) - 1) / kTaps;
  ParallelFor(a.threads, blocks * tap_groups, [&](int64_t item) {
    const int64_t j = item / tap_groups, tap0 = item % tap_groups * static_cast<int64_t>(kTaps);
    const int64_t taps = std::min(static_cast<int64_t>(kTaps), kernel_taps - tap0);
    RunItem<kIcg, kTaps>(a, table, zeros, j, tap0, taps, tap0 == 0 ? a.db : nullptr);
  });
}

// Needs dw and N > 0 (conv2d_bwd_variants.cpp); ICg in {1, 2, 4, 8, 16}.
void Conv2dBwdWeightsGrouped(const Conv2dBwdWeightsArgs& a) {
  switch (a.p->ic_per_group()) {
    case 1:
      return RunGrouped<1>(a);
    case 2:
      return RunGrouped<2>(a);
    case 4:
      return RunGrouped<4>(a);
    case 8:
      return RunGrouped<8>(a);
    default:
      return RunGrouped<16>(a);
  }
}

}  // namespace

Conv2dBwdWeightsKernel GetConv2dBwdWeightsGroupedKernel() {
  return {&Conv2dBwdWeightsGrouped, hwy::TargetName(HWY_TARGET)};
}

int64_t GetConv2dBwdWeightsGroupedLanes() {
  const size_t lanes = hn::Lanes(DF());
  return static_cast<int64_t>(lanes <= kGroupedMaxLanes ? lanes : 1);
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace convkit::internal::highway {

HWY_EXPORT(GetConv2dBwdWeightsGroupedKernel);
HWY_EXPORT(GetConv2dBwdWeightsGroupedLanes);

Conv2dBwdWeightsKernel ChooseConv2dBwdWeightsGroupedKernel() {
  return HWY_DYNAMIC_DISPATCH(GetConv2dBwdWeightsGroupedKernel)();
}

int64_t Conv2dBwdWeightsGroupedLanes() {
  return HWY_DYNAMIC_DISPATCH(GetConv2dBwdWeightsGroupedLanes)();
}

}  // namespace convkit::internal::highway
#endif  // HWY_ONCE
