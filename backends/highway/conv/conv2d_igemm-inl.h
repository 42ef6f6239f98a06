// The implicit-GEMM microkernel shared by forward convolution (conv2d_fwd_igemm.cc) and backward
// data (conv2d_bwd_data.cc): kRows output rows x kVecs vectors of output columns in registers, fed
// by one broadcast per row and kVecs column loads per reduction step. Extracted from
// conv2d_fwd_igemm.cc so that both passes run the same tuned code. Included once per target
// through foreach_target.h, hence the toggle guard (Highway's skeleton-inl.h pattern).
#if defined(CONVKIT_HIGHWAY_CONV2D_IGEMM_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef CONVKIT_HIGHWAY_CONV2D_IGEMM_INL_H_
#undef CONVKIT_HIGHWAY_CONV2D_IGEMM_INL_H_
#else
#define CONVKIT_HIGHWAY_CONV2D_IGEMM_INL_H_
#endif

#include <cstddef>
#include <cstdint>

#include "backends/highway/common/vec-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {

// Microkernel shapes. Each FMA has latency 4 and there are 2 FMA pipes, so at least 8 independent
// accumulators keep the pipes busy; kRows * kVecs accumulators plus kVecs weight vectors must fit
// the register file. Per input channel the kernel issues kRows broadcasts + kVecs weight loads for
// kRows * kVecs FMAs.
#if HWY_TARGET == HWY_AVX3
// 32 zmm registers: 14x1, 12x2, 8x3, 6x4 use 14-24 accumulators.
constexpr size_t kMaxVecs = 4;
constexpr size_t RowsFor(size_t vecs) {
  return vecs == 1 ? 14 : vecs == 2 ? 12 : vecs == 3 ? 8 : 6;
}
#elif HWY_TARGET == HWY_AVX2
// 16 ymm registers: 8x1, 6x2, 4x3 use 8-12 accumulators, leaving room for weights and a broadcast.
constexpr size_t kMaxVecs = 3;
constexpr size_t RowsFor(size_t vecs) { return vecs == 1 ? 8 : vecs == 2 ? 6 : 4; }
#else
// Portable fallback (EMU128 / scalar): correctness first.
constexpr size_t kMaxVecs = 2;
constexpr size_t RowsFor(size_t /*vecs*/) { return 4; }
#endif

// The last column of a block on vectors of descriptor DT: DF, or on AVX3 hn::Half<DF> where at
// most half its lanes are live. Narrow takes a DF vector's lower lanes to DT, Widen brings them
// back (zeros above).
HWY_INLINE VF Narrow(DF /*dt*/, VF v) { return v; }
HWY_INLINE VF Widen(VF v) { return v; }
#if HWY_TARGET == HWY_AVX3
HWY_INLINE hn::Vec<hn::Half<DF>> Narrow(hn::Half<DF> dt, VF v) { return hn::LowerHalf(dt, v); }
HWY_INLINE VF Widen(hn::Vec<hn::Half<DF>> v) { return hn::ZeroExtendVector(DF(), v); }
#endif

// AccumulateTap's loop with the block's last column on vectors of DT, its live lanes in
// tail_mask: the same FMAs per lane in the same order whatever DT, so the same bits. On DT =
// Half<DF> a tail's upper lanes come back as zeros.
template <class DT, size_t kRows, size_t kVecs, bool kPrefetch, size_t kVecsPerGroup>
HWY_INLINE void AccumulateTapAs(const float* const (&xp)[kRows], const float* HWY_RESTRICT w,
                                int64_t row_stride, int64_t icg, hn::Mask<DT> tail_mask,
                                VF (&acc)[kRows][kVecs], int64_t group_step,
                                const Lookahead& ahead) {
  const DF d;
  const DT dt;
  constexpr size_t kFull = kVecs - 1;
  const size_t lanes = hn::Lanes(d);
  // Local copies that never escape, so that GCC keeps them in registers across the loop (given
  // the caller's array by reference, it stored every accumulator on each iteration). [kFull] of
  // a is unused: it keeps the array non-empty for kVecs == 1.
  VF a[kRows][kFull + 1];
  hn::Vec<DT> t[kRows];
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) {
    HWY_UNROLL(16)
    for (size_t j = 0; j < kFull; ++j) a[i][j] = acc[i][j];
    t[i] = Narrow(dt, acc[i][kFull]);
  }
  // The input a column reads: channel c, in its group's channels when the block spans groups.
  const auto x_at = [&](size_t i, int64_t c, size_t j) {
    if constexpr (kVecsPerGroup == 0) return xp[i][c];
    return xp[i][c + static_cast<int64_t>(j / kVecsPerGroup) * group_step];
  };
  for (int64_t c = 0; c < icg; ++c, w += row_stride) {
    VF wv[kFull + 1];
    HWY_UNROLL(4)
    for (size_t j = 0; j < kFull; ++j) wv[j] = hn::LoadU(d, w + j * lanes);
    const hn::Vec<DT> wt = hn::MaskedLoad(tail_mask, dt, w + kFull * lanes);
    if constexpr (kPrefetch) PrefetchWeightRows<kVecs>(w, row_stride);
    PrefetchAhead(ahead, c);
    HWY_UNROLL(16)
    for (size_t i = 0; i < kRows; ++i) {
      if constexpr (kVecsPerGroup == 0) {
        const VF xv = hn::Set(d, x_at(i, c, 0));
        HWY_UNROLL(16)
        for (size_t j = 0; j < kFull; ++j) a[i][j] = hn::MulAdd(xv, wv[j], a[i][j]);
        t[i] = hn::MulAdd(Narrow(dt, xv), wt, t[i]);
      } else {
        // One broadcast per FMA (two per group of two vectors): loads, not FMAs, bind this loop.
        HWY_UNROLL(16)
        for (size_t j = 0; j < kFull; ++j) {
          a[i][j] = hn::MulAdd(hn::Set(d, x_at(i, c, j)), wv[j], a[i][j]);
        }
        t[i] = hn::MulAdd(hn::Set(dt, x_at(i, c, kFull)), wt, t[i]);
      }
    }
  }
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) {
    HWY_UNROLL(16)
    for (size_t j = 0; j < kFull; ++j) acc[i][j] = a[i][j];
    acc[i][kFull] = Widen(t[i]);
  }
}

// acc[i][j] += sum over the icg channels c of xp[i][c] * w[c * row_stride + j * lanes + lane].
// kPrefetch: also prefetches the weight rows ahead (PrefetchWeightRows), for a panel's first
// pass; `ahead`: the next panel's lines for this call to prefetch (PrefetchAhead). kVecsPerGroup >
// 0: the block spans groups (Conv2dFwdWeights::groups_per_block) of that many vectors each, and
// vector j reads xp[i][c + (j / kVecsPerGroup) * group_step] instead. On AVX3 a block whose last
// vector has at most half its lanes live (24, 40, 120 output channels...) runs that column on
// 8-lane vectors: the Zen 4 issues 256-bit FMAs at twice the 512-bit rate, so the tail costs half a
// 16-lane FMA's pipe time.
template <size_t kRows, size_t kVecs, bool kPrefetch = false, size_t kVecsPerGroup = 0>
HWY_INLINE void AccumulateTap(const float* const (&xp)[kRows], const float* HWY_RESTRICT w,
                              int64_t row_stride, int64_t icg, MF last, VF (&acc)[kRows][kVecs],
                              int64_t group_step = 0, const Lookahead& ahead = {}) {
#if HWY_TARGET == HWY_AVX3
  if constexpr (kVecsPerGroup == 0) {
    const DF d;
    const hn::Half<DF> dh;
    const size_t tail_lanes = hn::CountTrue(d, last);
    if (tail_lanes <= hn::Lanes(d) / 2) {
      return AccumulateTapAs<hn::Half<DF>, kRows, kVecs, kPrefetch, kVecsPerGroup>(
          xp, w, row_stride, icg, hn::FirstN(dh, tail_lanes), acc, group_step, ahead);
    }
  }
#endif
  AccumulateTapAs<DF, kRows, kVecs, kPrefetch, kVecsPerGroup>(xp, w, row_stride, icg, last, acc,
                                                              group_step, ahead);
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#endif  // CONVKIT_HIGHWAY_CONV2D_IGEMM_INL_H_ toggle
