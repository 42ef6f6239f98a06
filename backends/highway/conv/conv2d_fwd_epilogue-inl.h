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

// The pieces every store path shares: b's kVecs vectors (zero without b), a row of sums plus
// them (after the sum, as the reference adds it; on integer data both orders are exact), and one
// row's store (kStream: every vector whole and the row aligned to the vector size, written with
// StreamVecs).
template <size_t kVecs>
HWY_INLINE void LoadBias(const float* b, MF last, VF (&bias)[kVecs]) {
  ZeroVecs(bias);
  if (b != nullptr) LoadVecs<kVecs>(b, last, bias);
}

template <size_t kVecs>
HWY_INLINE void AddBias(const VF (&sums)[kVecs], const VF (&bias)[kVecs], bool has_b,
                        VF (&v)[kVecs]) {
  HWY_UNROLL(16)
  for (size_t j = 0; j < kVecs; ++j) v[j] = has_b ? hn::Add(sums[j], bias[j]) : sums[j];
}

// Kernels that touch this many bytes or more (the L3, 32 MiB on Zen 4 and Zen 5) write y with
// streaming stores (kStream below): y leaves the caches before anyone reads it, and a plain store
// first reads each line from memory. The stem kernel counts y alone; UNet's 570x570x64 (83 MB) at
// 2 threads: 0.95 -> 1.36x oneDNN. The depthwise kernel counts x and y (conv2d_fwd_depthwise.cc).
constexpr double kStreamBytes = 32 << 20;

// Whether a kernel touching `bytes` streams its y {.., oc}: large enough, and every row whole
// vectors at an aligned address (oc a multiple of the vector, y aligned to it).
HWY_INLINE bool StreamsY(double bytes, int64_t oc, const float* y) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(DF()));
  return bytes >= kStreamBytes && oc % lanes == 0 &&
         reinterpret_cast<uintptr_t>(y) % (lanes * sizeof(float)) == 0;
}

template <size_t kVecs, bool kStream>
HWY_INLINE void StoreRow(const VF (&v)[kVecs], MF last, float* HWY_RESTRICT row) {
  if constexpr (kStream) {
    StreamVecs<kVecs>(v, row);
  } else {
    StoreVecs<kVecs>(v, last, row);
  }
}

// Writes rows x kVecs accumulators to y: row i at y + i * y_stride, its last vector masked by
// `last`. Adds b (same column layout, may be null) first. Rows past `rows` are not written: they
// belong to repeated pixels (PixelTile). The bias-only path is the loop of the plain store.
// kStream: as in StoreRow.
template <size_t kRows, size_t kVecs, bool kStream = false>
HWY_INLINE void StoreTilePlain(const VF (&acc)[kRows][kVecs], size_t rows, const float* b, MF last,
                               float* HWY_RESTRICT y, int64_t y_stride) {
  VF bias[kVecs];
  LoadBias(b, last, bias);
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) {
    if (i >= rows) break;
    VF v[kVecs];
    AddBias(acc[i], bias, b != nullptr, v);
    StoreRow<kVecs, kStream>(v, last, y + static_cast<int64_t>(i) * y_stride);
  }
}

// The activations of the fused store, as functors of one vector. StoreTile inlines the short
// ones into the kernels: a clamp to [lo, hi] (relu, relu6, clip; none, with a residual, as
// (-inf, inf): ClampBounds) and hardswish. The transcendental ones (kAct a compile-time constant)
// and the rest (PostOpsActivation: leaky_relu, hardsigmoid) run out of line: inlined into every
// kernel, sigmoid slowed even the kernels' plain paths by up to 1.5x.
struct ClampActivation {
  VF lo, hi;
  HWY_INLINE VF operator()(DF d, VF z) const { return ClampKeepNaN(d, z, lo, hi); }
};
struct HardSwishActivation {
  HWY_INLINE VF operator()(DF d, VF z) const { return HardSwishF(d, z); }
};
// hardswish, then the linear map after it (PostOps::scale, shift).
struct HardSwishLinearActivation {
  VF scale, shift;
  HWY_INLINE VF operator()(DF d, VF z) const { return hn::MulAdd(scale, HardSwishF(d, z), shift); }
};
template <Activation kAct>
struct TranscendentalActivation {
  HWY_INLINE VF operator()(DF d, VF z) const { return ActivateTranscendentalF(d, kAct, z); }
};
struct PostOpsActivation {
  VecPostOps<DF> post;
  HWY_INLINE VF operator()(DF d, VF z) const { return post.ActivateLinear(d, z); }
};

// StoreTilePlain followed by the residual and the activation `act`: r (null without a residual)
// has y's layout at the same offset and is read with y's masks; it may equal y (each vector is
// read before it is written). kHasR: whether r is added, before or after the activation; a
// compile-time choice, since run-time tests of r per vector cost as much again. kStream: as in
// StoreRow.
template <size_t kRows, size_t kVecs, bool kHasR, bool kStream, class Act>
HWY_INLINE void StoreTileActivated(const VF (&acc)[kRows][kVecs], size_t rows, const float* b,
                                   const Act& act, const float* r, bool r_after, MF last, float* y,
                                   int64_t y_stride) {
  const DF d;
  VF bias[kVecs];
  LoadBias(b, last, bias);
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) {
    if (i >= rows) break;
    VF v[kVecs];
    AddBias(acc[i], bias, b != nullptr, v);
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
    StoreRow<kVecs, kStream>(v, last, y + static_cast<int64_t>(i) * y_stride);
  }
}

// StoreTileActivated with kHasR chosen by r.
template <size_t kRows, size_t kVecs, bool kStream, class Act>
HWY_INLINE void StoreTileActivatedR(const VF (&acc)[kRows][kVecs], size_t rows, const float* b,
                                    const Act& act, const float* r, bool r_after, MF last, float* y,
                                    int64_t y_stride) {
  if (r == nullptr) {
    return StoreTileActivated<kRows, kVecs, false, kStream>(acc, rows, b, act, r, r_after, last, y,
                                                            y_stride);
  }
  StoreTileActivated<kRows, kVecs, true, kStream>(acc, rows, b, act, r, r_after, last, y, y_stride);
}

// The activations inlined into every kernel's epilogue (StoreTile): the clamp (relu, relu6, clip;
// none as the clamp to (-inf, inf)) and hardswish, with the linear map after it or without
// (PP-LCNetV3's hardswish and learnable affine: out of line, the 3x3 depthwise over 320x320x16 ran
// 1.2x slower; the clamp with the linear map stays out of line, a flag inside the clamp's functor
// cost relu6 0.94x there). Calls f(act) with the activation's functor and returns true, or
// returns false.
template <class F>
HWY_INLINE bool WithInlineActivation(const PostOps& ops, const F& f) {
  const DF d;
  if (ops.activation == Activation::kHardSwish) {
    if (ops.has_linear()) {
      f(HardSwishLinearActivation{hn::Set(d, ops.scale), hn::Set(d, ops.shift)});
    } else {
      f(HardSwishActivation());
    }
    return true;
  }
  float lo = 0.0f, hi = 0.0f;
  if (ops.has_linear() || !ClampBounds(ops, &lo, &hi)) return false;
  f(ClampActivation{hn::Set(d, lo), hn::Set(d, hi)});
  return true;
}

// The others: sigmoid, silu, tanh and gelu without the linear map each compiled for itself (the
// choice is made per call, not per vector); the rest (leaky_relu, hardsigmoid, and every
// activation but hardswish with the linear map) through VecPostOps' switch per vector.
template <class F>
HWY_INLINE void WithOutOfLineActivation(const PostOps& ops, const F& f) {
  if (!ops.has_linear()) {
    switch (ops.activation) {
      case Activation::kSigmoid:
        return f(TranscendentalActivation<Activation::kSigmoid>());
      case Activation::kSilu:
        return f(TranscendentalActivation<Activation::kSilu>());
      case Activation::kTanh:
        return f(TranscendentalActivation<Activation::kTanh>());
      case Activation::kGelu:
        return f(TranscendentalActivation<Activation::kGelu>());
      default:
        break;
    }
  }
  f(PostOpsActivation{VecPostOps<DF>(DF(), ops)});
}

// Calls f(act) once with the functor for the activation and linear map of `ops`, for kernels that
// apply the post-ops vector by vector outside StoreTile (Winograd's output transform).
template <class F>
HWY_INLINE void WithActivation(const PostOps& ops, const F& f) {
  if (!WithInlineActivation(ops, f)) WithOutOfLineActivation(ops, f);
}

// The activations StoreTile does not inline: one call per tile, whose loop is compiled for the
// activation (WithOutOfLineActivation).
template <size_t kRows, size_t kVecs>
HWY_NOINLINE void StoreTileOutOfLine(const VF (&acc)[kRows][kVecs], size_t rows, const float* b,
                                     const PostOps& ops, const float* r, MF last, float* y,
                                     int64_t y_stride) {
  const bool after = ops.residual_after_activation;
  const auto store = [&](const auto& act) {
    StoreTileActivatedR<kRows, kVecs, false>(acc, rows, b, act, r, after, last, y, y_stride);
  };
  WithOutOfLineActivation(ops, store);
}

// StoreTileActivatedR's call for an inlined activation: a functor, not a lambda, so that its call
// is forced inline and acc's address never escapes.
template <size_t kRows, size_t kVecs, bool kStream>
struct InlineStore {
  const VF (&acc)[kRows][kVecs];
  size_t rows;
  const float* b;
  const float* r;
  bool after;
  MF last;
  float* y;
  int64_t y_stride;
  template <class Act>
  HWY_INLINE void operator()(const Act& act) const {
    StoreTileActivatedR<kRows, kVecs, kStream>(acc, rows, b, act, r, after, last, y, y_stride);
  }
};

// The epilogue of every forward tile: bias, then (when `ops` is non-null) the residual r, the
// activation and the linear map after it. A null `ops` (a partial sum of a sliced reduction) or
// one with nothing to do takes the plain store; a clamp, or hardswish (with the linear map or
// not), inline; the others, StoreTileOutOfLine on a copy of the
// tile, so that acc's address never escapes and the caller keeps it in registers (CopyTile).
// r: as in StoreTileActivated. kStream: as in StoreRow, for the plain and inline paths (the
// others compute enough per element that the stores do not bind them).
template <size_t kRows, size_t kVecs, bool kStream = false>
HWY_INLINE void StoreTile(const VF (&acc)[kRows][kVecs], size_t rows, const float* b,
                          const PostOps* ops, const float* r, MF last, float* y, int64_t y_stride) {
  if (ops == nullptr || (!ops->has_elementwise() && r == nullptr)) {
    return StoreTilePlain<kRows, kVecs, kStream>(acc, rows, b, last, y, y_stride);
  }
  const InlineStore<kRows, kVecs, kStream> store{
      acc, rows, b, r, ops->residual_after_activation, last, y, y_stride};
  if (WithInlineActivation(*ops, store)) return;
  VF out[kRows][kVecs];
  CopyTile(acc, out);
  StoreTileOutOfLine<kRows, kVecs>(out, rows, b, *ops, r, last, y, y_stride);
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#endif  // CONVKIT_HIGHWAY_CONV2D_FWD_EPILOGUE_INL_H_ toggle
