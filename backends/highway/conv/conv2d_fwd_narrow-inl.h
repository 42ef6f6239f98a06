// The implicit GEMM's narrow pointwise tiles (conv2d_fwd_igemm.cc takes them first): 1x1 layers
// with at most two vectors of output channels and 8-32 input channels. Included once per target
// through foreach_target.h, hence the toggle guard (Highway's skeleton-inl.h pattern); only the
// implicit GEMM's file includes it.
#if defined(CONVKIT_HIGHWAY_CONV2D_FWD_NARROW_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef CONVKIT_HIGHWAY_CONV2D_FWD_NARROW_INL_H_
#undef CONVKIT_HIGHWAY_CONV2D_FWD_NARROW_INL_H_
#else
#define CONVKIT_HIGHWAY_CONV2D_FWD_NARROW_INL_H_
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backends/highway/common/parallel.hpp"
#include "backends/highway/common/vec-inl.h"
#include "backends/highway/conv/conv2d_fwd_epilogue-inl.h"
#include "backends/highway/conv/conv2d_fwd_kernel.hpp"
#include "hwy/cache_control.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {

// Pointwise layers with one or two vectors of output channels and few input channels (the 16-
// and 24-channel projections of MobileNetV2 / V3 and EfficientNet at 112x112 and 56x56,
// ShuffleNetV2's narrow branches): with 8-32 reduction steps per tile, the general tiles of 8
// pixels (a pointer each) spend as much on set-up and stores as on the FMAs, and with one vector
// issue 9 loads per 8 FMAs (16 -> 16 at 112x112: 61 % of the FMA peak, 0.81x oneDNN). With the
// input channel count kIc a compile-time constant, a tile of NarrowRows pixels reads x through one
// pointer at fixed offsets.
constexpr size_t NarrowRows(size_t vecs) {
#if HWY_TARGET == HWY_AVX3
  return vecs == 1 ? 24 : 12;  // 24 accumulators, plus the weight vectors: 25-26 of 32 registers
#elif HWY_TARGET == HWY_AVX2
  return vecs == 1 ? 12 : 6;
#else
  return vecs == 1 ? 4 : 2;
#endif
}

// Floats per 64-byte cache line, the prefetch's unit.
constexpr int64_t kLineFloats = 16;

// Whether NarrowPointwise runs p: pointwise, one group, at most two vectors of output channels,
// plain input (no pieces, no scale), and an input channel count it is compiled for.
inline bool TakesNarrowPointwise(const Conv2dFwdArgs& a) {
  const Conv2dProblem& p = *a.p;
  const bool narrow_ic = p.ic == 8 || p.ic == 16 || p.ic == 24 || p.ic == 32;
  return IsPointwise(p) && p.groups == 1 && narrow_ic &&
         p.oc <= 2 * static_cast<int64_t>(hn::Lanes(DF())) && a.pieces == nullptr &&
         a.x_scale == nullptr;
}

// Output pixels [m0, m0 + rows) from their input rows at x (NarrowRows(kVecs) rows of kIc floats,
// read whole). Channels summed in order, then the bias: integer data give the reference's bits.
template <int64_t kIc, size_t kVecs>
HWY_INLINE void NarrowPointwiseTile(const Conv2dFwdArgs& a, int64_t m0, const float* HWY_RESTRICT x,
                                    size_t rows) {
  constexpr size_t kRows = NarrowRows(kVecs);
  const Conv2dProblem& p = *a.p;
  const DF d;
  const MF last = hn::FirstN(d, static_cast<size_t>(p.oc) - (kVecs - 1) * hn::Lanes(d));
  // Sums in a local array that never escapes, so that GCC keeps them in registers (acc's
  // address reaches the epilogue: accumulated in acc, every sum was stored at every step).
  VF sums[kRows][kVecs];
  HWY_UNROLL(32)
  for (size_t i = 0; i < kRows; ++i) {
    HWY_UNROLL(2)
    for (size_t j = 0; j < kVecs; ++j) sums[i][j] = hn::Zero(d);
  }
  const float* w = a.w.data;
  for (int64_t c = 0; c < kIc; ++c) {
    VF wv[kVecs];
    LoadVecs<kVecs>(w + c * a.w.row_stride, last, wv);
    // The next tile's input (kRows * kIc floats: 2 cache lines per step cover it).
    const int64_t ahead = 2 * c * kLineFloats;  // floats into the next tile
    if (ahead < static_cast<int64_t>(kRows) * kIc) {
      hwy::Prefetch(x + static_cast<int64_t>(kRows) * kIc + ahead);
      hwy::Prefetch(x + static_cast<int64_t>(kRows) * kIc + ahead + kLineFloats);
    }
    HWY_UNROLL(32)
    for (size_t i = 0; i < kRows; ++i) {
      const VF xv = hn::Set(d, x[static_cast<int64_t>(i) * kIc + c]);
      HWY_UNROLL(2)
      for (size_t j = 0; j < kVecs; ++j) sums[i][j] = hn::MulAdd(xv, wv[j], sums[i][j]);
    }
  }
  VF acc[kRows][kVecs];
  HWY_UNROLL(32)
  for (size_t i = 0; i < kRows; ++i) {
    HWY_UNROLL(2)
    for (size_t j = 0; j < kVecs; ++j) acc[i][j] = sums[i][j];
  }
  const int64_t at = m0 * p.oc;
  StoreTile<kRows, kVecs>(acc, rows, a.b, &p.post_ops, a.r != nullptr ? a.r + at : nullptr, last,
                          a.y + at, p.oc);
}

// Every pixel in tiles of NarrowRows(kVecs); the last, short tile reads a zero-padded copy of its
// rows (a whole tile's read would pass the end of x).
template <int64_t kIc, size_t kVecs>
void NarrowPointwise(const Conv2dFwdArgs& a) {
  constexpr int64_t kRows = static_cast<int64_t>(NarrowRows(kVecs));
  const int64_t m = a.p->n * a.p->oh * a.p->ow;
  const int64_t full = m / kRows;
  ParallelRanges(a.threads, full + (m % kRows != 0 ? 1 : 0), [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < std::min(end, full); ++t) {
      NarrowPointwiseTile<kIc, kVecs>(a, t * kRows, a.x + t * kRows * kIc,
                                      static_cast<size_t>(kRows));
    }
    if (end > full) {
      HWY_ALIGN float tail[kRows * kIc] = {};
      const int64_t m0 = full * kRows;
      std::copy(a.x + m0 * kIc, a.x + m * kIc, tail);
      NarrowPointwiseTile<kIc, kVecs>(a, m0, tail, static_cast<size_t>(m - m0));
    }
  });
}

template <size_t kVecs>
void RunNarrowPointwise(const Conv2dFwdArgs& a) {
  switch (a.p->ic) {
    case 8:
      return NarrowPointwise<8, kVecs>(a);
    case 16:
      return NarrowPointwise<16, kVecs>(a);
    case 24:
      return NarrowPointwise<24, kVecs>(a);
    default:
      return NarrowPointwise<32, kVecs>(a);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#endif  // CONVKIT_HIGHWAY_CONV2D_FWD_NARROW_INL_H_ toggle
