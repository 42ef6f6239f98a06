// Per-target window reductions shared by the pooling kernels (pool2d_fwd.cc, pool2d_bwd.cc,
// pool2d_bwd_gather.cc), so that forward and backward pick the same element. Included once per
// target through foreach_target.h, hence the toggle guard (Highway's skeleton-inl.h pattern).
#if defined(CONVKIT_HIGHWAY_POOL2D_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef CONVKIT_HIGHWAY_POOL2D_INL_H_
#undef CONVKIT_HIGHWAY_POOL2D_INL_H_
#else
#define CONVKIT_HIGHWAY_POOL2D_INL_H_
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backends/highway/common/parallel.hpp"
#include "backends/highway/common/vec-inl.h"
#include "backends/highway/pool/pool2d.hpp"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {

// Vectors of channels per step: enough independent compare/blend (or add) chains to hide their
// latency (3-4 cycles) behind the loads; 4 x 16 = 64 channels on AVX-512, a common C.
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX2
constexpr size_t kPoolVecs = 4;
#else
constexpr size_t kPoolVecs = 2;
#endif

// Above this many channels (three steps), a window is reduced in pixel-major order (forward
// PoolFwdWindowWide, backward AddWindowWide): the step-major order reads each window element once
// per step, at a stride of C floats, which the prefetchers do not follow (global pooling 7x7x2048
// forward: 9 GB/s).
constexpr int64_t kWideC = static_cast<int64_t>(3 * kPoolVecs * hn::MaxLanes(DF()));

// Where a window lies in an NHWC image: x0 points at its first element (row rows.begin, column
// cols.begin) at the first channel of the step; pixels are `c` floats apart, rows `row_stride`.
struct WindowAt {
  const float* x0;
  int64_t rows, cols;  // clipped extents, >= 1
  int64_t c, row_stride;
};

// Without NaN, the selection below (WindowMax) is "take v only if v > acc" (ties keep the earlier
// element): one instruction on x86, whose max(a, b) is a > b ? a : b (Highway's Max there is that
// instruction; its emulation on other targets resolves NaN and ties differently).
HWY_INLINE VF MaxOrKeep(VF acc, VF v) {
#if HWY_ARCH_X86 && HWY_TARGET != HWY_EMU128 && HWY_TARGET != HWY_SCALAR
  return hn::Max(v, acc);
#else
  return hn::IfThenElse(hn::Gt(v, acc), v, acc);
#endif
}

// The max-pooling selection over a window, per lane: the first NaN if there is one, else the first
// maximal element in row-major window order (DESIGN §4, the reference's create_mask_from_window).
// A step takes v only when acc is not NaN and !(acc >= v), i.e. v > acc or v is NaN: the same
// compare + IfThenElse in the body and the masked tail (hn::Max is asymmetric on NaN and may pick
// either zero of a +0/-0 tie). With kIndex, idx holds the selected element's row-major position in
// the window, as a float.
// One step of that selection: whether acc takes v (v > acc, or v is NaN and acc is not).
HWY_INLINE MF MaxTakes(VF acc, VF v) { return hn::AndNot(hn::Ge(acc, v), hn::Eq(acc, acc)); }

// kNaNFree: the caller knows the window holds no NaN (NaNRows), so a step takes v only when
// v > acc: one compare instead of three.
template <size_t kVecs, bool kIndex, bool kNaNFree = false>
HWY_INLINE void WindowMax(const WindowAt& w, MF last, VF (&acc)[kVecs], VF (&idx)[kVecs]) {
  const DF d;
  LoadVecs<kVecs>(w.x0, last, acc);  // element 0 compares equal to itself (or is NaN): kept
  ZeroVecs(idx);
  float k = 0.0f;
  for (int64_t h = 0; h < w.rows; ++h) {
    const float* row = w.x0 + h * w.row_stride;
    for (int64_t i = 0; i < w.cols; ++i, k += 1.0f) {
      VF v[kVecs];
      LoadVecs<kVecs>(row + i * w.c, last, v);
      HWY_UNROLL(16)
      for (size_t j = 0; j < kVecs; ++j) {
        if constexpr (kNaNFree && !kIndex) {
          acc[j] = MaxOrKeep(acc[j], v[j]);
          continue;
        }
        const MF take = kNaNFree ? hn::Gt(v[j], acc[j]) : MaxTakes(acc[j], v[j]);
        acc[j] = hn::IfThenElse(take, v[j], acc[j]);
        if constexpr (kIndex) idx[j] = hn::IfThenElse(take, hn::Set(d, k), idx[j]);
      }
    }
  }
}

// Whether the count floats at x may hold a NaN: their sum is NaN then (and also when it meets
// both infinities, a false alarm that costs only the exact path).
inline bool MayHoldNaN(const float* HWY_RESTRICT x, int64_t count) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  VF s0 = hn::Zero(d), s1 = hn::Zero(d), s2 = hn::Zero(d), s3 = hn::Zero(d);
  int64_t i = 0;
  for (; i + 4 * lanes <= count; i += 4 * lanes) {
    s0 = hn::Add(s0, hn::LoadU(d, x + i));
    s1 = hn::Add(s1, hn::LoadU(d, x + i + lanes));
    s2 = hn::Add(s2, hn::LoadU(d, x + i + 2 * lanes));
    s3 = hn::Add(s3, hn::LoadU(d, x + i + 3 * lanes));
  }
  for (; i + lanes <= count; i += lanes) s0 = hn::Add(s0, hn::LoadU(d, x + i));
  if (i < count) {
    s1 = hn::Add(s1, hn::MaskedLoad(hn::FirstN(d, static_cast<size_t>(count - i)), d, x + i));
  }
  const VF s = hn::Add(hn::Add(s0, s1), hn::Add(s2, s3));
  return !hn::AllTrue(d, hn::Eq(s, s));
}

// Reads the count floats at x (MayHoldNaN's loads, its answer dropped through a volatile), so
// that they are in cache when the windows come to them: the streaming variants' inputs come from
// DRAM, and the windows' short, overlapping reads left average pooling waiting on misses (ResNet's
// 3x3/2 max pool at N = 32 ran 1.5x faster than the same average pool, its NaN scan reading
// ahead).
inline void ReadAhead(const float* HWY_RESTRICT x, int64_t count) {
  volatile bool sink = MayHoldNaN(x, count);
  (void)sink;
}

// Whether channels `ch` of `pixels` consecutive pixels (C floats each) may hold a NaN, decided
// as MayHoldNaN decides it (a sum that is NaN), with four chains over the pixels.
inline bool ChannelsMayHoldNaN(const float* x, int64_t pixels, int64_t c, ChannelRange ch) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  VF s[4] = {hn::Zero(d), hn::Zero(d), hn::Zero(d), hn::Zero(d)};
  for (int64_t c0 = ch.begin; c0 < ch.end; c0 += lanes) {
    const MF m = hn::FirstN(d, static_cast<size_t>(std::min(lanes, ch.end - c0)));
    int64_t i = 0;
    for (; i + 4 <= pixels; i += 4) {
      HWY_UNROLL(4)
      for (int64_t k = 0; k < 4; ++k)
        s[k] = hn::Add(s[k], hn::MaskedLoad(m, d, x + (i + k) * c + c0));
    }
    for (; i < pixels; ++i) s[0] = hn::Add(s[0], hn::MaskedLoad(m, d, x + i * c + c0));
  }
  const VF sum = hn::Add(hn::Add(s[0], s[1]), hn::Add(s[2], s[3]));
  return !hn::AllTrue(d, hn::Eq(sum, sum));
}

// Which rows of one image hold a NaN, for a caller that asks about row ranges whose begin and end
// never decrease (the windows of consecutive output rows): each row is scanned once.
class NaNRows {
 public:
  // image: the image's first element; row: floats per row.
  NaNRows(const float* image, int64_t row) : image_(image), row_(row) {}
  // Whether any of the rows [begin, end) may hold a NaN.
  bool Any(int64_t begin, int64_t end) {
    for (int64_t h = std::max(begin, scanned_); h < end; ++h) {
      if (MayHoldNaN(image_ + h * row_, row_)) last_ = h;
    }
    scanned_ = std::max(scanned_, end);
    return last_ >= begin;  // the last NaN row scanned, if any, is below end
  }

 private:
  const float* image_;
  int64_t row_;
  int64_t scanned_ = 0;
  int64_t last_ = -1;
};

// Whether p is aligned for whole-vector (streaming) stores.
HWY_INLINE bool VectorAligned(const float* p) {
  return reinterpret_cast<uintptr_t>(p) % (hn::Lanes(DF()) * sizeof(float)) == 0;
}

// Stores kVecs vectors at p: with kStream, streaming stores of whole vectors (p vector-aligned,
// `last` all true); otherwise StoreVecs.
template <bool kStream, size_t kVecs>
HWY_INLINE void StoreOrStreamVecs(const VF (&v)[kVecs], MF last, float* HWY_RESTRICT p) {
  if constexpr (kStream) {
    const DF d;
    HWY_UNROLL(16)
    for (size_t j = 0; j < kVecs; ++j) hn::Stream(v[j], d, p + j * hn::Lanes(d));
  } else {
    StoreVecs<kVecs>(v, last, p);
  }
}

// Calls f.template operator()<vecs>(c0, last) for every step of channels [c_begin, c_end): full
// steps of kPoolVecs vectors, then one step of as many vectors as the remainder needs, its last
// vector masked.
template <class F>
HWY_INLINE void ForEachChannelStep(int64_t c_begin, int64_t c_end, const F& f) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const int64_t step = static_cast<int64_t>(kPoolVecs) * lanes;
  const MF all = hn::FirstN(d, static_cast<size_t>(lanes));
  int64_t c0 = c_begin;
  for (; c0 + step <= c_end; c0 += step) f.template operator()<kPoolVecs>(c0, all);
  const int64_t rest = c_end - c0;
  if (rest <= 0) return;
  const int64_t vecs = (rest + lanes - 1) / lanes;
  const MF last = hn::FirstN(d, static_cast<size_t>(rest - (vecs - 1) * lanes));
  if constexpr (kPoolVecs >= 4) {
    if (vecs == 4) return f.template operator()<4>(c0, last);
    if (vecs == 3) return f.template operator()<3>(c0, last);
  }
  if (vecs == 2) return f.template operator()<2>(c0, last);
  f.template operator()<1>(c0, last);
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#endif  // CONVKIT_HIGHWAY_POOL2D_INL_H_ toggle
