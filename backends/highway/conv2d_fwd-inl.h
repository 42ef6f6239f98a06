// Per-target vector helpers shared by the forward convolution kernels: the epilogue (bias, ReLU,
// masked tail store). Included once per target through foreach_target.h, hence the toggle guard
// instead of #pragma once (Highway's skeleton-inl.h pattern).
#if defined(CONVKIT_HIGHWAY_CONV2D_FWD_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef CONVKIT_HIGHWAY_CONV2D_FWD_INL_H_
#undef CONVKIT_HIGHWAY_CONV2D_FWD_INL_H_
#else
#define CONVKIT_HIGHWAY_CONV2D_FWD_INL_H_
#endif

#include <cstddef>
#include <cstdint>

#include "api/src/problem.hpp"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {

namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;
using MF = hn::Mask<DF>;

// Loads kVecs vectors of floats from p; the last one only its lanes in `last` (the others read as
// zero and nothing past them is touched).
template <size_t kVecs>
HWY_INLINE void LoadVecs(const float* HWY_RESTRICT p, MF last, VF (&v)[kVecs]) {
  const DF d;
  const size_t lanes = hn::Lanes(d);
  HWY_UNROLL(4)
  for (size_t j = 0; j + 1 < kVecs; ++j) v[j] = hn::LoadU(d, p + j * lanes);
  v[kVecs - 1] = hn::MaskedLoad(last, d, p + (kVecs - 1) * lanes);
}

// Stores kVecs vectors at p, the last one only its lanes in `last`.
template <size_t kVecs>
HWY_INLINE void StoreVecs(const VF (&v)[kVecs], MF last, float* HWY_RESTRICT p) {
  const DF d;
  const size_t lanes = hn::Lanes(d);
  HWY_UNROLL(4)
  for (size_t j = 0; j + 1 < kVecs; ++j) hn::StoreU(v[j], d, p + j * lanes);
  hn::BlendedStore(v[kVecs - 1], last, d, p + (kVecs - 1) * lanes);
}

// Reads rows x kVecs accumulators back from y (the layout StoreTile writes), the last vector of
// each row masked by `last`; rows at or past `rows` are left as they are.
template <size_t kRows, size_t kVecs>
HWY_INLINE void LoadTile(const float* HWY_RESTRICT y, int64_t y_stride, size_t rows, MF last,
                         VF (&acc)[kRows][kVecs]) {
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) {
    if (i >= rows) break;
    LoadVecs<kVecs>(y + static_cast<int64_t>(i) * y_stride, last, acc[i]);
  }
}

// Writes rows x kVecs accumulators to y: row i at y + i * y_stride, its last vector masked by
// `last`. Adds b (same column layout, may be null) and applies ReLU first. Rows past `rows` are
// not written: they belong to repeated pixels (PixelTile).
template <size_t kRows, size_t kVecs>
HWY_INLINE void StoreTile(const VF (&acc)[kRows][kVecs], size_t rows, const float* b, bool relu,
                          MF last, float* HWY_RESTRICT y, int64_t y_stride) {
  const DF d;
  const size_t lanes = hn::Lanes(d);
  VF bias[kVecs];
  HWY_UNROLL(16)
  for (size_t j = 0; j < kVecs; ++j) bias[j] = hn::Zero(d);
  if (b != nullptr) LoadVecs<kVecs>(b, last, bias);
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) {
    if (i >= rows) break;
    float* row = y + static_cast<int64_t>(i) * y_stride;
    HWY_UNROLL(16)
    for (size_t j = 0; j < kVecs; ++j) {
      // Bias after the sum, as the reference adds it; on integer data both orders are exact.
      VF v = b != nullptr ? hn::Add(acc[i][j], bias[j]) : acc[i][j];
      if (relu) v = hn::Max(v, hn::Zero(d));
      if (j + 1 < kVecs) {
        hn::StoreU(v, d, row + j * lanes);
      } else {
        hn::BlendedStore(v, last, d, row + j * lanes);
      }
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#endif  // CONVKIT_HIGHWAY_CONV2D_FWD_INL_H_ toggle
