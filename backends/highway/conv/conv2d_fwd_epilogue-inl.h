// The epilogue of the forward convolution kernels: bias, the post-ops of common/post_ops-inl.h,
// masked tail store; and LoadTile, which reads partial sums back from y. Included once per target
// through foreach_target.h, hence the toggle guard instead of #pragma once (Highway's
// skeleton-inl.h pattern).
#if defined(CONVKIT_HIGHWAY_CONV2D_FWD_EPILOGUE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef CONVKIT_HIGHWAY_CONV2D_FWD_EPILOGUE_INL_H_
#undef CONVKIT_HIGHWAY_CONV2D_FWD_EPILOGUE_INL_H_
#else
#define CONVKIT_HIGHWAY_CONV2D_FWD_EPILOGUE_INL_H_
#endif

#include <cstddef>
#include <cstdint>

#include "api/src/problem.hpp"
#include "backends/highway/common/post_ops-inl.h"
#include "backends/highway/common/vec-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {

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
// `last`. Adds b (same column layout, may be null) first. Rows past `rows` are not written: they
// belong to repeated pixels (PixelTile). The bias-only path is the loop of the plain store.
// kStream: every vector is whole and every row aligned to the vector size, and the rows are
// written with StreamVecs.
template <size_t kRows, size_t kVecs, bool kStream = false>
HWY_INLINE void StoreTilePlain(const VF (&acc)[kRows][kVecs], size_t rows, const float* b, MF last,
                               float* HWY_RESTRICT y, int64_t y_stride) {
  VF bias[kVecs];
  ZeroVecs(bias);
  if (b != nullptr) LoadVecs<kVecs>(b, last, bias);
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) {
    if (i >= rows) break;
    float* row = y + static_cast<int64_t>(i) * y_stride;
    VF v[kVecs];
    HWY_UNROLL(16)
    for (size_t j = 0; j < kVecs; ++j) {
      // Bias after the sum, as the reference adds it; on integer data both orders are exact.
      v[j] = b != nullptr ? hn::Add(acc[i][j], bias[j]) : acc[i][j];
    }
    if constexpr (kStream) {
      StreamVecs<kVecs>(v, row);
    } else {
      StoreVecs<kVecs>(v, last, row);
    }
  }
}

// StoreTilePlain followed by the post-ops: r (null without a residual) has y's layout at the same
// offset and is read with y's masks; it may equal y (each vector is read before it is written).
template <size_t kRows, size_t kVecs>
HWY_NOINLINE void StoreTileFused(const VF (&acc)[kRows][kVecs], size_t rows, const float* b,
                                 const PostOps& ops, const float* r, MF last, float* y,
                                 int64_t y_stride) {
  const DF d;
  const VecPostOps<DF> post(d, ops);
  VF bias[kVecs];
  ZeroVecs(bias);
  if (b != nullptr) LoadVecs<kVecs>(b, last, bias);
  const bool has_r = r != nullptr;
  for (size_t i = 0; i < rows; ++i) {
    float* row = y + static_cast<int64_t>(i) * y_stride;
    const float* r_row = has_r ? r + static_cast<int64_t>(i) * y_stride : nullptr;
    VF rv[kVecs];
    ZeroVecs(rv);
    if (has_r) LoadVecs<kVecs>(r_row, last, rv);
    VF v[kVecs];
    HWY_UNROLL(16)
    for (size_t j = 0; j < kVecs; ++j) {
      const VF z = b != nullptr ? hn::Add(acc[i][j], bias[j]) : acc[i][j];
      v[j] = post.Apply(d, z, rv[j], has_r);
    }
    StoreVecs<kVecs>(v, last, row);
  }
}

// The activations StoreTile applies inline, as functors of one vector: a clamp to [lo, hi]
// (relu, relu6, clip; none, with a residual, as (-inf, inf): ClampBounds) and hardswish.
struct ClampActivation {
  VF lo, hi;
  HWY_INLINE VF operator()(DF d, VF z) const { return ClampKeepNaN(d, z, lo, hi); }
};
struct HardSwishActivation {
  HWY_INLINE VF operator()(DF d, VF z) const { return HardSwishF(d, z); }
};

// StoreTileFused for an inline activation `act`, compiled into the kernel: a few instructions per
// vector instead of a call per tile, which took 15-45 % of MobileNet's depthwise layers' time
// with ReLU. kHasR: whether r (as in StoreTileFused) is added, before or after the activation; a
// compile-time choice, since run-time tests of r per vector cost as much again. kStream: as in
// StoreTilePlain.
template <size_t kRows, size_t kVecs, bool kHasR, bool kStream, class Act>
HWY_INLINE void StoreTileInline(const VF (&acc)[kRows][kVecs], size_t rows, const float* b,
                                const Act& act, const float* r, bool r_after, MF last, float* y,
                                int64_t y_stride) {
  const DF d;
  VF bias[kVecs];
  ZeroVecs(bias);
  if (b != nullptr) LoadVecs<kVecs>(b, last, bias);
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) {
    if (i >= rows) break;
    VF v[kVecs];
    HWY_UNROLL(16)
    for (size_t j = 0; j < kVecs; ++j) {
      v[j] = b != nullptr ? hn::Add(acc[i][j], bias[j]) : acc[i][j];
    }
    if constexpr (kHasR) {
      VF rv[kVecs];
      LoadVecs<kVecs>(r + static_cast<int64_t>(i) * y_stride, last, rv);
      HWY_UNROLL(16)
      for (size_t j = 0; j < kVecs; ++j) {
        v[j] = r_after ? hn::Add(act(d, v[j]), rv[j]) : act(d, hn::Add(v[j], rv[j]));
      }
    } else {
      HWY_UNROLL(16)
      for (size_t j = 0; j < kVecs; ++j) v[j] = act(d, v[j]);
    }
    if constexpr (kStream) {
      StreamVecs<kVecs>(v, y + static_cast<int64_t>(i) * y_stride);
    } else {
      StoreVecs<kVecs>(v, last, y + static_cast<int64_t>(i) * y_stride);
    }
  }
}

// StoreTileInline with kHasR chosen by r.
template <size_t kRows, size_t kVecs, bool kStream, class Act>
HWY_INLINE void StoreTileInlineR(const VF (&acc)[kRows][kVecs], size_t rows, const float* b,
                                 const Act& act, const float* r, bool r_after, MF last, float* y,
                                 int64_t y_stride) {
  if (r == nullptr) {
    return StoreTileInline<kRows, kVecs, false, kStream>(acc, rows, b, act, r, r_after, last, y,
                                                         y_stride);
  }
  StoreTileInline<kRows, kVecs, true, kStream>(acc, rows, b, act, r, r_after, last, y, y_stride);
}

// The epilogue of every forward tile: bias, then (when `ops` is non-null) the residual r and the
// activation. A null `ops` (a partial sum of a sliced reduction) or one with nothing to do takes
// the plain store; a clamp or hardswish, inline; the others, the out-of-line StoreTileFused on a
// copy of the tile, so that acc's address never escapes and the caller keeps it in registers
// (CopyTile). r: as in StoreTileFused. kStream: as in StoreTilePlain, for the plain and inline
// paths (the others compute enough per element that the stores do not bind them).
template <size_t kRows, size_t kVecs, bool kStream = false>
HWY_INLINE void StoreTile(const VF (&acc)[kRows][kVecs], size_t rows, const float* b,
                          const PostOps* ops, const float* r, MF last, float* y, int64_t y_stride) {
  if (ops == nullptr || (!ops->has_activation() && r == nullptr)) {
    return StoreTilePlain<kRows, kVecs, kStream>(acc, rows, b, last, y, y_stride);
  }
  const bool after = ops->residual_after_activation;
  float lo = 0.0f, hi = 0.0f;
  if (ClampBounds(*ops, &lo, &hi)) {
    const DF d;
    const ClampActivation clamp{hn::Set(d, lo), hn::Set(d, hi)};
    return StoreTileInlineR<kRows, kVecs, kStream>(acc, rows, b, clamp, r, after, last, y,
                                                   y_stride);
  }
  if (ops->activation == Activation::kHardSwish) {
    return StoreTileInlineR<kRows, kVecs, kStream>(acc, rows, b, HardSwishActivation(), r, after,
                                                   last, y, y_stride);
  }
  VF out[kRows][kVecs];
  CopyTile(acc, out);
  StoreTileFused<kRows, kVecs>(out, rows, b, *ops, r, last, y, y_stride);
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#endif  // CONVKIT_HIGHWAY_CONV2D_FWD_EPILOGUE_INL_H_ toggle
