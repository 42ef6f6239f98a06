// Pooling forward, max and average: one output row (n, oh) per work item, vectorised along C.
// Output elements are independent, so any split over threads gives the same bits.
//
// Compiled once per Highway target through foreach_target.h (hwy/examples/skeleton.cc).
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backends/highway/pool2d.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/highway/pool2d_fwd.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must follow foreach_target.h: re-included once per target.
#include "backends/highway/pool2d-inl.h"
#include "hwy/cache_control.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {
namespace {

// The window w (at channel 0) into y0, in pixel-major order: for each element of the window in
// row-major order, every channel of a block, accumulating in an L1 buffer. Per lane, the same
// steps in the same order as WindowMax / WindowSum, hence the same bits.
template <bool kMax>
void PoolFwdWindowWide(const WindowAt& w, float divisor, float* y0) {
  const DF d;
  HWY_ALIGN float acc[kWideBlock];
  for (int64_t b0 = 0; b0 < w.c; b0 += kWideBlock) {
    const int64_t b1 = std::min(w.c, b0 + kWideBlock);
    for (int64_t h = 0; h < w.rows; ++h) {
      for (int64_t i = 0; i < w.cols; ++i) {
        const float* xp = w.x0 + h * w.row_stride + i * w.c;
        const bool first = h == 0 && i == 0;
        ForEachChannelStep(b0, b1, [&]<size_t kVecs>(int64_t c0, MF last) {
          VF v[kVecs], a[kVecs];
          LoadVecs<kVecs>(xp + c0, last, v);
          if (first) {
            HWY_UNROLL(16)  // max keeps element 0; a sum starts from +0, as WindowSum
            for (size_t j = 0; j < kVecs; ++j) a[j] = kMax ? v[j] : hn::Add(hn::Zero(d), v[j]);
          } else {
            LoadVecs<kVecs>(acc + (c0 - b0), last, a);
            HWY_UNROLL(16)
            for (size_t j = 0; j < kVecs; ++j) {
              a[j] = kMax ? hn::IfThenElse(MaxTakes(a[j], v[j]), v[j], a[j]) : hn::Add(a[j], v[j]);
            }
          }
          StoreVecs<kVecs>(a, last, acc + (c0 - b0));
        });
      }
    }
    ForEachChannelStep(b0, b1, [&]<size_t kVecs>(int64_t c0, MF last) {
      VF a[kVecs];
      LoadVecs<kVecs>(acc + (c0 - b0), last, a);
      if constexpr (!kMax) {
        HWY_UNROLL(16)
        for (size_t j = 0; j < kVecs; ++j) a[j] = hn::Div(a[j], hn::Set(d, divisor));
      }
      StoreVecs<kVecs>(a, last, y0 + c0);
    });
  }
}

// Output row oh of image n: y(n, oh, ow, c) for every ow and c. With kStream, y is vector-aligned,
// C a multiple of the vector length, and every store a streaming store.
template <bool kMax, bool kStream>
void PoolFwdRow(const Pool2dProblem& p, const float* x, float* y, int64_t n, int64_t oh) {
  const PoolSpan rows = PoolRows(p, oh);
  const float* image = x + n * p.ih * p.iw * p.c;
  float* y_row = y + (n * p.oh + oh) * p.ow * p.c;
  for (int64_t ow = 0; ow < p.ow; ++ow) {
    const PoolSpan cols = PoolCols(p, ow);
    const float* x0 = image + (rows.begin * p.iw + cols.begin) * p.c;
    float* y0 = y_row + ow * p.c;
    const WindowAt w{x0, rows.end - rows.begin, cols.end - cols.begin, p.c, p.iw * p.c};
    const float divisor = kMax ? 1.0f : PoolDivisor(p, rows, cols);
    if (!kStream && p.c > kWideC) {
      PoolFwdWindowWide<kMax>(w, divisor, y0);
      continue;
    }
    ForEachChannelStep(0, p.c, [&]<size_t kVecs>(int64_t c0, MF last) {
      const WindowAt wc{w.x0 + c0, w.rows, w.cols, w.c, w.row_stride};
      VF v[kVecs];
      if constexpr (kMax) {
        VF unused[kVecs];
        WindowMax<kVecs, false>(wc, last, v, unused);
      } else {
        WindowSum<kVecs>(wc, last, v);
        // A division, not a multiplication by the reciprocal: the reference's bits.
        const VF div = hn::Set(DF(), divisor);
        HWY_UNROLL(16)
        for (size_t j = 0; j < kVecs; ++j) v[j] = hn::Div(v[j], div);
      }
      if constexpr (kStream) {
        const DF d;
        HWY_UNROLL(16)
        for (size_t j = 0; j < kVecs; ++j) hn::Stream(v[j], d, y0 + c0 + j * hn::Lanes(d));
      } else {
        StoreVecs<kVecs>(v, last, y0 + c0);
      }
    });
  }
  if constexpr (kStream) hwy::FlushStream();  // order the streaming stores before the barrier
}

template <bool kMax, bool kStream>
void PoolFwdRows(const Pool2dArgs& a) {
  const Pool2dProblem& p = *a.p;
  const int64_t items = p.n * p.oh;
  if (a.threads <= 1) {
    for (int64_t t = 0; t < items; ++t) {
      PoolFwdRow<kMax, kStream>(p, a.x, a.out, t / p.oh, t % p.oh);
    }
    return;
  }
  // Static schedule: each thread takes consecutive rows, so the input row two windows share
  // (stride < window) is still in its cache.
#pragma omp parallel for num_threads(a.threads) schedule(static)
  for (int64_t t = 0; t < items; ++t) PoolFwdRow<kMax, kStream>(p, a.x, a.out, t / p.oh, t % p.oh);
}

template <bool kMax>
void PoolFwd(const Pool2dArgs& a) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(DF()));
  const bool aligned =
      reinterpret_cast<uintptr_t>(a.out) % (lanes * sizeof(float)) == 0 && a.p->c % lanes == 0;
  if (a.stream && aligned) return PoolFwdRows<kMax, true>(a);
  PoolFwdRows<kMax, false>(a);
}

}  // namespace

Pool2dKernels GetPool2dFwdKernels() {
  return {&PoolFwd<true>, &PoolFwd<false>, hwy::TargetName(HWY_TARGET)};
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace convkit::internal::highway {

HWY_EXPORT(GetPool2dFwdKernels);

Pool2dKernels Pool2dFwdKernels() { return HWY_DYNAMIC_DISPATCH(GetPool2dFwdKernels)(); }

}  // namespace convkit::internal::highway
#endif  // HWY_ONCE
