// Per-target vector vocabulary shared by every Highway kernel (convolution and pooling): the float
// descriptor and its vector and mask types, loads and stores of a row of kVecs vectors whose last
// one is masked, and WithVecs, which turns a run-time block width into a compile-time one.
// Included once per target through foreach_target.h, hence the toggle guard instead of
// #pragma once (Highway's skeleton-inl.h pattern).
#if defined(CONVKIT_HIGHWAY_VEC_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef CONVKIT_HIGHWAY_VEC_INL_H_
#undef CONVKIT_HIGHWAY_VEC_INL_H_
#else
#define CONVKIT_HIGHWAY_VEC_INL_H_
#endif

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "hwy/cache_control.h"
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

// Stores kVecs whole vectors at p, which is aligned to the vector size, bypassing the caches
// (non-temporal): for outputs too large to stay cached until they are read, whose lines would
// otherwise be read from memory before being overwritten. The writer calls hwy::FlushStream()
// before another thread may read them.
template <size_t kVecs>
HWY_INLINE void StreamVecs(const VF (&v)[kVecs], float* HWY_RESTRICT p) {
  const DF d;
  const size_t lanes = hn::Lanes(d);
  HWY_UNROLL(4)
  for (size_t j = 0; j < kVecs; ++j) hn::Stream(v[j], d, p + j * lanes);
}

// Whether this target's GEMM kernels prefetch the weights on a panel's first pass
// (PrefetchWeightRows): the weights of a layer inside a network come from memory (ResNet-50's
// 100 MB evict each other from L3), and the hardware prefetchers leave the first pass waiting on
// them (ResNet-50 end to end 1.09x; its 3x3 Winograd layers 1.16-1.34x in the model, the same
// layers alone 0.99x). On every pass it cost 3-6 % over weights already in cache. Only AVX3 runs
// it: a second instance of every tile kernel costs compile time, and AVX3 is where time matters.
#if HWY_TARGET == HWY_AVX3
constexpr bool kPrefetchesWeights = true;
#else
constexpr bool kPrefetchesWeights = false;
#endif

// Prefetches the kVecs vectors of the weight row 32 rows after the one at w (row_stride elements
// apart; up to 8 KiB ahead in a 64-column panel). Near a panel's end it prefetches what follows:
// a prefetch never faults. 32 rows against 16 and 64, interleaved end to end: ResNet-50 15.72 /
// 15.68 / 15.71 ms against 16.29 / 15.93 / 15.84 and 16.21 / 15.83 / 15.83, YOLOv8n 5.91 / 5.89 /
// 5.93 against 6.06 / 6.06 / 6.25 and 6.16 / 5.89 / 6.08; layers alone 0.997-1.013x.
template <size_t kVecs, typename T>
HWY_INLINE void PrefetchWeightRows(const T* w, int64_t row_stride) {
  constexpr int64_t kAhead = 32;
  constexpr size_t kPerVec = 64 / sizeof(T);
  HWY_UNROLL(4)
  for (size_t j = 0; j < kVecs; ++j) hwy::Prefetch(w + kAhead * row_stride + j * kPerVec);
}

// The weights a thread reads next, prefetched into L2 while a microkernel computes: two cache lines
// per reduction step for the first `steps` steps from `lines`. A panel's first pass (above) still
// waits on weights from memory, most at the deep layers of a network, where few pixels share a
// panel (ResNet-50's 7x7 layers: a tenth of the panel's pass on its first tile, which the next
// tiles do not hide); spread over the previous panel's later tiles or row groups, the next panel
// arrives before it is read. Measured with the weights from memory (plans of one shape run round
// robin, 40-64 MB of weights) and from cache, toggled in one process: 1x1 7x7 512 -> 2048 1.15x,
// 2048 -> 512 1.07x, 14x14 256 -> 1024 1.03x; Winograd 3x3 7x7 512 1.11x, 14x14 256 1.09x; from
// cache 0.98-1.02x. ResNet-50 end to end 1.05x, YOLOv8n 1.02x, the others within noise.
struct Lookahead {
  const float* lines = nullptr;
  int64_t steps = 0;
};

// Layers whose weights are at least this large come from memory inside a network (an L2 is 1 MiB)
// and prefetch the next panel (Lookahead).
constexpr int64_t kLookaheadWeightBytes = int64_t{1} << 20;

// Whether a kernel reading `weight_bytes` of weights in packed panels (each panel's rows
// consecutive, so a panel is one contiguous run) prefetches the next panel: on targets that
// prefetch weights at all (kPrefetchesWeights), for weights from memory.
HWY_INLINE bool LooksAhead(bool packed, int64_t weight_bytes) {
  return kPrefetchesWeights && packed && weight_bytes >= kLookaheadWeightBytes;
}

// Part `part` of `parts` of the contiguous floats [w, w + floats): the Lookahead of one of `parts`
// microkernel calls that together prefetch them. A call prefetches at most two lines a reduction
// step (the rest of a larger part stays to the panel's own first pass) and may prefetch one line
// past its part: a prefetch never faults.
HWY_INLINE Lookahead LookaheadPart(const float* w, int64_t floats, int64_t part, int64_t parts) {
  constexpr int64_t kLineFloats = 64 / sizeof(float);
  const int64_t lines = (floats + kLineFloats - 1) / kLineFloats;
  const int64_t begin = lines * part / parts, end = lines * (part + 1) / parts;
  return {w + begin * kLineFloats, (end - begin + 1) / 2};
}

// Reduction step c's share of `ahead`: lines 2c and 2c + 1, into L2 (prefetcht1: into L1 the
// prefetches of a panel from memory held the L1's miss buffers, which the microkernel's own
// loads need, and gained nothing on 7x7 512 -> 512 Winograd; into L2 1.11x).
HWY_INLINE void PrefetchAhead(const Lookahead& ahead, int64_t c) {
  if (c < ahead.steps) {
    __builtin_prefetch(ahead.lines + c * 32, 0, 2);
    __builtin_prefetch(ahead.lines + c * 32 + 16, 0, 2);
  }
}

// Sets kVecs vectors, or a tile of kRows x kVecs, to zero (accumulators summing from +0).
template <size_t kVecs>
HWY_INLINE void ZeroVecs(VF (&v)[kVecs]) {
  HWY_UNROLL(16)
  for (size_t j = 0; j < kVecs; ++j) v[j] = hn::Zero(DF());
}
template <size_t kRows, size_t kVecs>
HWY_INLINE void ZeroTile(VF (&acc)[kRows][kVecs]) {
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) ZeroVecs(acc[i]);
}

// to = from, for a tile of accumulators. Kernels sum into a local tile whose address never leaves
// inlined code and copy it out only for the (out-of-line) store: once a tile's address escapes,
// GCC keeps it in memory, and every FMA into it became a load, the FMA and a store (the depthwise
// kernels ran at 40 % of their speed that way).
template <size_t kRows, size_t kVecs>
HWY_INLINE void CopyTile(const VF (&from)[kRows][kVecs], VF (&to)[kRows][kVecs]) {
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) {
    HWY_UNROLL(16)
    for (size_t j = 0; j < kVecs; ++j) to[i][j] = from[i][j];
  }
}

// Calls f(std::integral_constant<size_t, V>()) for V = vecs clamped to [1, min(kMax, 4)]: turns a
// run-time block width (in vectors) into the compile-time one a kernel is instantiated for. kMax
// is the widest block the calling kernel holds in registers on this target.
template <size_t kMax, class F>
HWY_INLINE void WithVecs(int64_t vecs, const F& f) {
  if constexpr (kMax >= 4) {
    if (vecs >= 4) return f(std::integral_constant<size_t, 4>());
  }
  if constexpr (kMax >= 3) {
    if (vecs >= 3) return f(std::integral_constant<size_t, 3>());
  }
  if constexpr (kMax >= 2) {
    if (vecs >= 2) return f(std::integral_constant<size_t, 2>());
  }
  f(std::integral_constant<size_t, 1>());
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#endif  // CONVKIT_HIGHWAY_VEC_INL_H_ toggle
