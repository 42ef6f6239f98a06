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

#if HWY_TARGET == HWY_AVX3
// AccumulateTap for a block whose last vector has at most half its lanes live (24, 40, 120 output
// channels...): that column runs on 8-lane vectors. The Zen 4 issues 256-bit FMAs at twice the
// 512-bit rate, so the tail costs half a 16-lane FMA's pipe time. Per lane the same FMAs in the
// same order as AccumulateTap: the same bits. The tail's upper lanes come back as zeros.
template <size_t kRows, size_t kVecs, bool kPrefetch>
HWY_INLINE void AccumulateTapHalfTail(const float* const (&xp)[kRows], const float* HWY_RESTRICT w,
                                      int64_t row_stride, int64_t icg, size_t tail_lanes,
                                      VF (&acc)[kRows][kVecs]) {
  const DF d;
  const hn::Half<DF> dh;
  constexpr size_t kFull = kVecs - 1;
  const size_t lanes = hn::Lanes(d);
  const auto tail_mask = hn::FirstN(dh, tail_lanes);
  VF a[kRows][kFull + 1];  // [kFull] unused: keeps the array non-empty for kVecs == 1
  hn::Vec<hn::Half<DF>> t[kRows];
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) {
    HWY_UNROLL(16)
    for (size_t j = 0; j < kFull; ++j) a[i][j] = acc[i][j];
    t[i] = hn::LowerHalf(dh, acc[i][kFull]);
  }
  for (int64_t c = 0; c < icg; ++c, w += row_stride) {
    VF wv[kFull + 1];
    HWY_UNROLL(4)
    for (size_t j = 0; j < kFull; ++j) wv[j] = hn::LoadU(d, w + j * lanes);
    const auto wt = hn::MaskedLoad(tail_mask, dh, w + kFull * lanes);
    if constexpr (kPrefetch) PrefetchWeightRows<kVecs>(w, row_stride);
    HWY_UNROLL(16)
    for (size_t i = 0; i < kRows; ++i) {
      const VF xv = hn::Set(d, xp[i][c]);
      HWY_UNROLL(16)
      for (size_t j = 0; j < kFull; ++j) a[i][j] = hn::MulAdd(xv, wv[j], a[i][j]);
      t[i] = hn::MulAdd(hn::LowerHalf(dh, xv), wt, t[i]);
    }
  }
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) {
    HWY_UNROLL(16)
    for (size_t j = 0; j < kFull; ++j) acc[i][j] = a[i][j];
    acc[i][kFull] = hn::ZeroExtendVector(d, t[i]);
  }
}
#endif

// acc[i][j] += sum over the icg channels c of xp[i][c] * w[c * row_stride + j * lanes + lane].
// kPrefetch: also prefetches the weight rows ahead (PrefetchWeightRows), for a panel's first
// pass. kVecsPerGroup > 0: the block spans groups (Conv2dFwdWeights::groups_per_block) of that
// many vectors each, and vector j reads xp[i][c + (j / kVecsPerGroup) * group_step] instead.
template <size_t kRows, size_t kVecs, bool kPrefetch = false, size_t kVecsPerGroup = 0>
HWY_INLINE void AccumulateTap(const float* const (&xp)[kRows], const float* HWY_RESTRICT w,
                              int64_t row_stride, int64_t icg, MF last, VF (&acc)[kRows][kVecs],
                              int64_t group_step = 0) {
  const DF d;
#if HWY_TARGET == HWY_AVX3
  if constexpr (kVecsPerGroup == 0) {
    const size_t tail_lanes = hn::CountTrue(d, last);
    if (tail_lanes <= hn::Lanes(d) / 2) {
      return AccumulateTapHalfTail<kRows, kVecs, kPrefetch>(xp, w, row_stride, icg, tail_lanes,
                                                            acc);
    }
  }
#endif
  // A local copy that never escapes, so that GCC keeps it in registers across the loop (given
  // the caller's array by reference, it stored every accumulator on each iteration).
  VF a[kRows][kVecs];
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) {
    HWY_UNROLL(16)
    for (size_t j = 0; j < kVecs; ++j) a[i][j] = acc[i][j];
  }
  for (int64_t c = 0; c < icg; ++c, w += row_stride) {
    VF wv[kVecs];
    LoadVecs<kVecs>(w, last, wv);
    if constexpr (kPrefetch) PrefetchWeightRows<kVecs>(w, row_stride);
    HWY_UNROLL(16)
    for (size_t i = 0; i < kRows; ++i) {
      if constexpr (kVecsPerGroup == 0) {
        const VF xv = hn::Set(d, xp[i][c]);
        HWY_UNROLL(16)
        for (size_t j = 0; j < kVecs; ++j) a[i][j] = hn::MulAdd(xv, wv[j], a[i][j]);
      } else {
        // One broadcast per FMA (two per group of two vectors): loads, not FMAs, bind this loop.
        HWY_UNROLL(16)
        for (size_t j = 0; j < kVecs; ++j) {
          const int64_t at = c + static_cast<int64_t>(j / kVecsPerGroup) * group_step;
          a[i][j] = hn::MulAdd(hn::Set(d, xp[i][at]), wv[j], a[i][j]);
        }
      }
    }
  }
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) {
    HWY_UNROLL(16)
    for (size_t j = 0; j < kVecs; ++j) acc[i][j] = a[i][j];
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#endif  // CONVKIT_HIGHWAY_CONV2D_IGEMM_INL_H_ toggle
