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

// acc[i][j] += sum over the icg channels c of xp[i][c] * w[c * row_stride + j * lanes + lane].
// kPrefetch: also prefetches the weight rows ahead (PrefetchWeightRows), for a panel's first
// pass. kVecsPerGroup > 0: the block spans groups (Conv2dFwdWeights::groups_per_block) of that
// many vectors each, and vector j reads xp[i][c + (j / kVecsPerGroup) * group_step] instead.
template <size_t kRows, size_t kVecs, bool kPrefetch = false, size_t kVecsPerGroup = 0>
HWY_INLINE void AccumulateTap(const float* const (&xp)[kRows], const float* HWY_RESTRICT w,
                              int64_t row_stride, int64_t icg, MF last, VF (&acc)[kRows][kVecs],
                              int64_t group_step = 0) {
  const DF d;
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
