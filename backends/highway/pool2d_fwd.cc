// Pooling forward, max and average: one output row (n, oh) per work item, vectorised along C.
// Output elements are independent, so any split over threads gives the same bits.
//
// Compiled once per Highway target through foreach_target.h (hwy/examples/skeleton.cc).
#include <cstddef>
#include <cstdint>

#include "backends/highway/pool2d.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/highway/pool2d_fwd.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must follow foreach_target.h: re-included once per target.
#include "backends/highway/pool2d-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {

// Output row oh of image n: y(n, oh, ow, c) for every ow and c.
template <bool kMax>
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
      StoreVecs<kVecs>(v, last, y0 + c0);
    });
  }
}

template <bool kMax>
void PoolFwd(const Pool2dArgs& a) {
  const Pool2dProblem& p = *a.p;
  const int64_t items = p.n * p.oh;
  if (a.threads <= 1) {
    for (int64_t t = 0; t < items; ++t) PoolFwdRow<kMax>(p, a.x, a.out, t / p.oh, t % p.oh);
    return;
  }
  // Static schedule: each thread takes consecutive rows, so the input row two windows share
  // (stride < window) is still in its cache.
#pragma omp parallel for num_threads(a.threads) schedule(static)
  for (int64_t t = 0; t < items; ++t) PoolFwdRow<kMax>(p, a.x, a.out, t / p.oh, t % p.oh);
}

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
