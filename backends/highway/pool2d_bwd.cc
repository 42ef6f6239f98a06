// Pooling backward, max and average, vectorised along C.
//
// Race-freedom: windows overlap when the stride is below the window, so dx accumulates. A work
// item owns the dx of one image and one block of channels: no other item writes it. It visits
// the windows in the order (oh, ow), as the reference does, so every dx element receives its
// terms in the same order for any thread count, and the bits match the reference's. dx rows are
// zeroed just before the first window touches them, so they are still in cache when accumulated.
// Max pooling recomputes each window's selected element from x (WindowMax, as the forward pass).
//
// Compiled once per Highway target through foreach_target.h (hwy/examples/skeleton.cc).
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backends/highway/pool2d.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/highway/pool2d_bwd.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must follow foreach_target.h: re-included once per target.
#include "backends/highway/pool2d-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {

// Channels [c_begin, c_end) of dx rows [from, to) of one image, set to zero.
void ZeroRows(const Pool2dProblem& p, float* dx_image, int64_t c_begin, int64_t c_end, int64_t from,
              int64_t to) {
  if (from >= to) return;
  if (c_begin == 0 && c_end == p.c) {
    std::fill(dx_image + from * p.iw * p.c, dx_image + to * p.iw * p.c, 0.0f);
    return;
  }
  for (int64_t pixel = from * p.iw; pixel < to * p.iw; ++pixel) {
    std::fill(dx_image + pixel * p.c + c_begin, dx_image + pixel * p.c + c_end, 0.0f);
  }
}

// dx of image n, channels [c_begin, c_end).
template <bool kMax>
void PoolBwdItem(const Pool2dProblem& p, const float* x, const float* dy, float* dx, int64_t n,
                 int64_t c_begin, int64_t c_end) {
  const DF d;
  const int64_t image_size = p.ih * p.iw * p.c;
  const float* x_image = x + n * image_size;  // x is null for average pooling: never read
  float* dx_image = dx + n * image_size;
  int64_t zeroed = 0;  // dx rows [0, zeroed) are zero or hold partial sums
  for (int64_t oh = 0; oh < p.oh; ++oh) {
    const PoolSpan rows = PoolRows(p, oh);
    ZeroRows(p, dx_image, c_begin, c_end, zeroed, rows.end);
    zeroed = std::max(zeroed, rows.end);
    for (int64_t ow = 0; ow < p.ow; ++ow) {
      const PoolSpan cols = PoolCols(p, ow);
      const int64_t offset = (rows.begin * p.iw + cols.begin) * p.c;
      const int64_t height = rows.end - rows.begin, width = cols.end - cols.begin;
      const int64_t row_stride = p.iw * p.c;
      const float* dy0 = dy + ((n * p.oh + oh) * p.ow + ow) * p.c;
      const float divisor = kMax ? 1.0f : PoolDivisor(p, rows, cols);
      ForEachChannelStep(c_begin, c_end, [&]<size_t kVecs>(int64_t c0, MF last) {
        VF g[kVecs];
        LoadVecs<kVecs>(dy0 + c0, last, g);
        float* dx0 = dx_image + offset + c0;
        if constexpr (kMax) {
          VF unused[kVecs], idx[kVecs];
          WindowMax<kVecs, true>({x_image + offset + c0, height, width, p.c, row_stride}, last,
                                 unused, idx);
          // The reference's dx[mask] += dy: lanes whose selection is element k add g there.
          float k = 0.0f;
          for (int64_t h = 0; h < height; ++h) {
            for (int64_t i = 0; i < width; ++i, k += 1.0f) {
              float* at = dx0 + h * row_stride + i * p.c;
              VF v[kVecs];
              LoadVecs<kVecs>(at, last, v);
              HWY_UNROLL(16)
              for (size_t j = 0; j < kVecs; ++j) {
                v[j] = hn::IfThenElse(hn::Eq(idx[j], hn::Set(d, k)), hn::Add(v[j], g[j]), v[j]);
              }
              StoreVecs<kVecs>(v, last, at);
            }
          }
        } else {
          // The reference's distribute_value: dy / divisor (a division), added to each element.
          HWY_UNROLL(16)
          for (size_t j = 0; j < kVecs; ++j) g[j] = hn::Div(g[j], hn::Set(d, divisor));
          for (int64_t h = 0; h < height; ++h) {
            for (int64_t i = 0; i < width; ++i) {
              float* at = dx0 + h * row_stride + i * p.c;
              VF v[kVecs];
              LoadVecs<kVecs>(at, last, v);
              HWY_UNROLL(16)
              for (size_t j = 0; j < kVecs; ++j) v[j] = hn::Add(v[j], g[j]);
              StoreVecs<kVecs>(v, last, at);
            }
          }
        }
      });
    }
  }
  ZeroRows(p, dx_image, c_begin, c_end, zeroed, p.ih);  // rows no window reads
}

template <bool kMax>
void PoolBwd(const Pool2dArgs& a) {
  const Pool2dProblem& p = *a.p;
  if (p.n == 0) return;
  // Channel blocks, whole steps of kPoolVecs vectors, only as many as it takes to give every
  // thread ~4 items when the batch alone does not.
  const int64_t step = static_cast<int64_t>(kPoolVecs * hn::Lanes(DF()));
  const int64_t steps = (p.c + step - 1) / step;
  const int64_t wanted = a.threads <= 1 ? 1 : (4 * a.threads + p.n - 1) / p.n;
  const int64_t blocks_wanted = std::max<int64_t>(1, std::min(steps, wanted));
  const int64_t block_c = (steps + blocks_wanted - 1) / blocks_wanted * step;
  const int64_t blocks = (p.c + block_c - 1) / block_c;
  const int64_t items = p.n * blocks;
  const auto run_item = [&](int64_t t) {
    const int64_t c_begin = (t % blocks) * block_c;
    PoolBwdItem<kMax>(p, a.x, a.dy, a.out, t / blocks, c_begin, std::min(p.c, c_begin + block_c));
  };
  if (a.threads <= 1) {
    for (int64_t t = 0; t < items; ++t) run_item(t);
    return;
  }
#pragma omp parallel for num_threads(a.threads) schedule(static)
  for (int64_t t = 0; t < items; ++t) run_item(t);
}

Pool2dKernels GetPool2dBwdKernels() {
  return {&PoolBwd<true>, &PoolBwd<false>, hwy::TargetName(HWY_TARGET)};
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace convkit::internal::highway {

HWY_EXPORT(GetPool2dBwdKernels);

Pool2dKernels Pool2dBwdKernels() { return HWY_DYNAMIC_DISPATCH(GetPool2dBwdKernels)(); }

}  // namespace convkit::internal::highway
#endif  // HWY_ONCE
