// The lane permutations of the narrow-groups kernels, forward (conv2d_fwd_grouped.cc) and backward
// data (conv2d_bwd_data_grouped.cc): a vector holds the outputs of P = L / n consecutive groups of
// n channels each (lane l: channel l % n of group l / n); the P groups' k reduction channels are
// one vector load X (consecutive in NHWC, P * k <= L floats), and reduction channel c of every
// group is
//   acc += TableLookupLanes(X, idx[c]) * W[c],  idx[c][l] = (l / n) * k + c,
// with W[c][l] the weight of lane l's group, reduction channel c, lane channel l % n. Forward: k =
// ICg, n = OCg, X a pixel of x. Backward data: k = OCg, n = ICg, X a pixel of dy.
//
// Cross-block permutations (vpermps) issue at one per cycle, half the FMA rate, so when k and n
// are multiples of 4 (every 128-bit block then lies in one group) the kernels permute once per 4
// channels, T = TableLookupLanes(X, idx4[q]) with idx4[q][l] = (l / n) * k + 4q + l % 4, and take
// channel 4q + i as Broadcast<i>(T), an in-block shuffle (vpermilps, two per cycle): 1.25 shuffles
// per FMA become 0.25 + 1 cheap ones. With P = 1 (n = L) channels are broadcast from memory.
// Channels are summed in order in every path.
//
// Included once per target through foreach_target.h, hence the toggle guard (Highway's
// skeleton-inl.h pattern).
#if defined(CONVKIT_HIGHWAY_CONV2D_GROUPED_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef CONVKIT_HIGHWAY_CONV2D_GROUPED_INL_H_
#undef CONVKIT_HIGHWAY_CONV2D_GROUPED_INL_H_
#else
#define CONVKIT_HIGHWAY_CONV2D_GROUPED_INL_H_
#endif

#include <cstddef>
#include <cstdint>

#include "backends/highway/common/vec-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {

// Pixels per tile of the grouped kernels: kGroupedRows accumulators and as many input vectors
// stay live across a tap's channels, plus the weight vector and the permuted input: 2 * 12 + 2 of
// the 32 zmm registers, 2 * 6 + 2 of the 16 ymm ones.
#if HWY_TARGET == HWY_AVX3
constexpr size_t kGroupedRows = 12;
#elif HWY_TARGET == HWY_AVX2
constexpr size_t kGroupedRows = 6;
#else
constexpr size_t kGroupedRows = 4;
#endif

// The taps of one tile that read data, resolved once and shared by every block: per tap, its index
// kh * KW + kw and, per pixel, the pixel it reads at channel 0 (x forward, dy backward; or a zero
// buffer at least a pixel wide, so that it plus a block's channel offset still reads zeros).
// Recomputing them per block cost a third of the FMA work at 32 groups.
constexpr int64_t kGroupedMaxTaps = 49;

struct GroupedTileTaps {
  int64_t count = 0;
  int64_t tap[kGroupedMaxTaps];
  const float* src[kGroupedMaxTaps][kGroupedRows];
};

// The largest vector in floats the grouped kernels are compiled for: idx tables are sized by it.
constexpr size_t kGroupedMaxLanes = 16;

// idx[c][l] = (l / n) * k + c, or with `by4` idx[q][l] = (l / n) * k + 4q + l % 4 (above).
struct GroupedLaneTable {
  HWY_ALIGN int32_t idx[kGroupedMaxLanes][kGroupedMaxLanes];
  bool by4 = false;
};

// k reduction channels and n lane channels per group, `lanes` <= kGroupedMaxLanes, k <= n, n
// dividing lanes. The 4-channel path needs whole 128-bit blocks per group.
inline GroupedLaneTable MakeGroupedLaneTable(int64_t k, int64_t n, size_t lanes) {
  GroupedLaneTable t{};
  t.by4 = lanes >= 4 && k % 4 == 0 && n % 4 == 0;
  const int64_t rows = t.by4 ? k / 4 : k;
  for (int64_t r = 0; r < rows; ++r) {
    for (size_t l = 0; l < lanes; ++l) {
      const int64_t lane = static_cast<int64_t>(l);
      const int64_t channel = t.by4 ? 4 * r + lane % 4 : r;
      t.idx[r][l] = static_cast<int32_t>(lane / n * k + channel);
    }
  }
  return t;
}

// acc[i] += the products of one tap for pixel i, whose block load is x[i]: channel by channel, one
// permutation each. w: k rows of L floats.
template <size_t kRows>
HWY_INLINE void GroupedTap1(const GroupedLaneTable& table, const float* HWY_RESTRICT w, int64_t k,
                            const VF (&x)[kRows], VF (&acc)[kRows][1]) {
  const DF d;
  const hn::RebindToSigned<DF> di;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  for (int64_t c = 0; c < k; ++c) {
    const VF wv = hn::Load(d, w + c * lanes);
    const auto idx = hn::IndicesFromVec(d, hn::Load(di, table.idx[c]));
    HWY_UNROLL(16)
    for (size_t i = 0; i < kRows; ++i) {
      acc[i][0] = hn::MulAdd(hn::TableLookupLanes(x[i], idx), wv, acc[i][0]);
    }
  }
}

// The same, 4 channels per permutation (GroupedLaneTable::by4), in the same channel order.
template <size_t kRows>
HWY_INLINE void GroupedTap4(const GroupedLaneTable& table, const float* HWY_RESTRICT w, int64_t k,
                            const VF (&x)[kRows], VF (&acc)[kRows][1]) {
#if HWY_TARGET == HWY_SCALAR
  GroupedTap1<kRows>(table, w, k, x, acc);  // never taken: by4 needs 4 lanes
#else
  const DF d;
  const hn::RebindToSigned<DF> di;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  for (int64_t q = 0; q < k / 4; ++q, w += 4 * lanes) {
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

// One group per vector (n = L): channel c of pixel i broadcast from memory at xp[i][c], no shuffle.
template <size_t kRows>
HWY_INLINE void GroupedTapWhole(const float* const (&xp)[kRows], const float* HWY_RESTRICT w,
                                int64_t k, VF (&acc)[kRows][1]) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  VF a[kRows];
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) a[i] = acc[i][0];
  for (int64_t c = 0; c < k; ++c) {
    const VF wv = hn::Load(d, w + c * lanes);
    HWY_UNROLL(16)
    for (size_t i = 0; i < kRows; ++i) a[i] = hn::MulAdd(hn::Set(d, xp[i][c]), wv, a[i]);
  }
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) acc[i][0] = a[i];
}

// acc += one tap of the block whose P groups' reduction channels start at xp[i] for pixel i:
// `active` lanes of each load (P * k, fewer in a short last block; nothing past them is read).
template <size_t kRows>
HWY_INLINE void GroupedTap(const GroupedLaneTable& table, const float* const (&xp)[kRows],
                           const float* HWY_RESTRICT w, int64_t k, bool whole, MF active,
                           VF (&acc)[kRows][1]) {
  if (whole) return GroupedTapWhole<kRows>(xp, w, k, acc);
  const DF d;
  VF x[kRows];
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) x[i] = hn::MaskedLoad(active, d, xp[i]);
  if (table.by4) {
    GroupedTap4<kRows>(table, w, k, x, acc);
  } else {
    GroupedTap1<kRows>(table, w, k, x, acc);
  }
}

#if HWY_TARGET != HWY_SCALAR

// Blocks of two groups of n = L / 2 lanes each (8 on AVX-512: RegNet's groups, ResNeXt-50's conv3)
// in halves: each group's lanes are a half-width vector of their own, and each of its k reduction
// channels is broadcast from memory (a load, no shuffle) and multiplied into its half. A 16-lane
// FMA on the Zen 4 runs as two 8-lane halves, so half-width FMAs cost the same per product, and
// the shuffles of GroupedTap4 (1.25 per FMA, on pipes the FMAs share) are gone. Forward on the
// Zen 4, 2 threads, against GroupedTap4: RegNetY's 3x3 over 28x28x104 in 13 groups 1.12x, 7x7x440
// 1.11x, ResNeXt's 56x56x256 in 32 groups 1.04x. Both forms stop near two thirds of the FMA peak:
// one load per half-width FMA here (a tap's 16 weight halves held in registers over passes of 6
// rows, each pixel's channels in turn, measured the same). GroupedBlock takes it on 16-lane
// targets.
//
// acc = the taps of `taps` for one block: per tap t and pixel i, the block's reduction channels
// start at taps.src[t][i] + offset (the second group's k after the first's), its weight rows at w
// + taps.tap[t] * k * L (lanes [0, L / 2) the first group's, the rest the second's). `two`: the
// block has both groups (not the last block of an odd group count, whose second group's channels
// lie past the pixel). Out of line: inlined into the forward kernel's tile loop it ran 1.045-1.066x
// slower (RegNetY's and ResNeXt's groups, 1 and 2 threads; backward data the same either way).
template <size_t kRows>
HWY_NOINLINE void GroupedHalvesBlock(const GroupedTileTaps& taps, int64_t offset,
                                     const float* HWY_RESTRICT w, int64_t k, bool two,
                                     VF (&acc)[kRows][1]) {
  using DH = hn::Half<DF>;
  using VH = hn::Vec<DH>;
  const DH dh;
  const int64_t half = static_cast<int64_t>(hn::Lanes(dh));
  VH lo[kRows], hi[kRows];
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) lo[i] = hi[i] = hn::Zero(dh);
  for (int64_t t = 0; t < taps.count; ++t) {
    const float* wt = w + taps.tap[t] * k * 2 * half;
    const float* xp[kRows];
    HWY_UNROLL(16)
    for (size_t i = 0; i < kRows; ++i) xp[i] = taps.src[t][i] + offset;
    for (int64_t c = 0; c < k; ++c) {
      const VH w_lo = hn::Load(dh, wt + c * 2 * half);
      HWY_UNROLL(16)
      for (size_t i = 0; i < kRows; ++i) lo[i] = hn::MulAdd(hn::Set(dh, xp[i][c]), w_lo, lo[i]);
      if (!two) continue;
      const VH w_hi = hn::Load(dh, wt + c * 2 * half + half);
      HWY_UNROLL(16)
      for (size_t i = 0; i < kRows; ++i) {
        hi[i] = hn::MulAdd(hn::Set(dh, xp[i][k + c]), w_hi, hi[i]);
      }
    }
  }
  const DF d;
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) acc[i][0] = hn::Combine(d, hi[i], lo[i]);
}

#endif  // HWY_TARGET != HWY_SCALAR

// acc = block j's taps: in halves (GroupedHalvesBlock) where a block is two groups of n = L / 2
// lanes, each with k reduction channels (block j's weight rows at w); otherwise zeroed and
// accumulated by `permuted(acc)`, the kernel's loop over GroupedTap.
template <size_t kRows, class Permuted>
HWY_INLINE void GroupedBlock(const GroupedTileTaps& taps, int64_t j, int64_t n, int64_t k,
                             int64_t groups, const float* HWY_RESTRICT w, const Permuted& permuted,
                             VF (&acc)[kRows][1]) {
  const DF d;
#if HWY_TARGET != HWY_SCALAR
  if constexpr (hn::MaxLanes(DF()) == 16) {
    if (2 * n == static_cast<int64_t>(hn::Lanes(d))) {
      return GroupedHalvesBlock<kRows>(taps, j * 2 * k, w, k, 2 * j + 1 < groups, acc);
    }
  }
#endif
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) acc[i][0] = hn::Zero(d);
  permuted(acc);
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#endif  // CONVKIT_HIGHWAY_CONV2D_GROUPED_INL_H_ toggle
