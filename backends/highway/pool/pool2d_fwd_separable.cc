// Pooling forward, the separable variant: pooling at stride 1 with large windows (YOLO's SPP and
// SPPF: 5x5, 9x9 and 13x13 over 20x20 maps) as a maximum (or sum) along W into a per-thread
// scratch, then along H: KH + KW selections or additions per output instead of KH * KW. A work
// item is one image and one block of channels; the block's row results (IH x OW pixels) stay in
// L2 between the passes. Average pooling divides the sums by the window's divisor (PoolDivisor)
// as the other variants do; the sum of each output takes the same terms grouped by window row,
// exact on integer data (DESIGN §4), like PoolFwdAverageSeparable's grouping by column.
//
// The selection is the other variants' (pool2d-inl.h): the first NaN, else the first maximal
// element in row-major window order. Per axis it keeps the first of the row (then of the rows'
// results), which is that element: a row's result comes from a row with no NaN before it, and a
// tie of +0 and -0 keeps the earlier element in both passes. Blocks without a NaN
// (ChannelsMayHoldNaN) select with one max instruction.
//
// Compiled once per Highway target through foreach_target.h (hwy/examples/skeleton.cc).
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backends/highway/common/parallel.hpp"
#include "backends/highway/common/scratch.hpp"
#include "backends/highway/pool/pool2d.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/highway/pool/pool2d_fwd_separable.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must follow foreach_target.h: re-included once per target.
#include "backends/highway/pool/pool2d-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {
namespace {

// The row maxima of one block (IH x OW pixels of the block's channels) fill at most this many
// floats: 256 KiB, in L2 beside the input rows being read.
constexpr int64_t kRowMaxFloats = int64_t{64} << 10;

// Channels per block: whole vectors, as many as kRowMaxFloats holds, and few enough that the
// threads have two items each.
int64_t BlockWidth(const Pool2dProblem& p, int threads) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(DF()));
  const int64_t vecs = (p.c + lanes - 1) / lanes;
  const int64_t fits = std::max<int64_t>(1, kRowMaxFloats / (p.ih * p.ow * lanes));
  const int64_t wanted = std::max<int64_t>(1, (2 * threads + p.n - 1) / p.n);  // blocks per image
  return std::min({fits, (vecs + wanted - 1) / wanted, vecs}) * lanes;
}

// acc = the selection of acc and v: the exact rule, or (kNaNFree) the one max instruction.
template <bool kNaNFree, size_t kVecs>
HWY_INLINE void Select(VF (&acc)[kVecs], const VF (&v)[kVecs]) {
  HWY_UNROLL(4)
  for (size_t j = 0; j < kVecs; ++j) {
    acc[j] =
        kNaNFree ? MaxOrKeep(acc[j], v[j]) : hn::IfThenElse(MaxTakes(acc[j], v[j]), v[j], acc[j]);
  }
}

// The reductions of the two passes: kMax selects (kNaNFree: with one max instruction), average
// pooling sums from +0, as the reference.
template <bool kMax, bool kNaNFree>
struct Reduce {
  template <size_t kVecs>
  HWY_INLINE static void First(const float* x, MF last, VF (&acc)[kVecs]) {
    if constexpr (kMax) {
      LoadVecs<kVecs>(x, last, acc);
    } else {
      VF v[kVecs];
      LoadVecs<kVecs>(x, last, v);
      HWY_UNROLL(4)
      for (size_t j = 0; j < kVecs; ++j) acc[j] = hn::Add(hn::Zero(DF()), v[j]);
    }
  }
  template <size_t kVecs>
  HWY_INLINE static void Next(const float* x, MF last, VF (&acc)[kVecs]) {
    VF v[kVecs];
    LoadVecs<kVecs>(x, last, v);
    if constexpr (kMax) {
      Select<kNaNFree>(acc, v);
    } else {
      HWY_UNROLL(4)
      for (size_t j = 0; j < kVecs; ++j) acc[j] = hn::Add(acc[j], v[j]);
    }
  }
};

// out[0, count) = the reduction over the `run` pixels from `first`, `stride` floats apart, of
// their channels [0, count), divided by `divisor` when it is not 1 (average pooling's second
// pass): one pass's reduction (along W in x, along H in the row results).
template <class R>
HWY_INLINE void ReduceRun(const float* first, int64_t stride, int64_t run, int64_t count,
                          float divisor, float* out) {
  ForEachChannelStep(0, count, [&]<size_t kVecs>(int64_t j0, MF last) {
    VF acc[kVecs];
    R::template First<kVecs>(first + j0, last, acc);
    for (int64_t k = 1; k < run; ++k) R::template Next<kVecs>(first + k * stride + j0, last, acc);
    if (divisor != 1.0f) {
      HWY_UNROLL(4)
      for (size_t j = 0; j < kVecs; ++j) acc[j] = hn::Div(acc[j], hn::Set(DF(), divisor));
    }
    StoreVecs<kVecs>(acc, last, out + j0);
  });
}

// rows[ih][ow][0, count) (pixels `stride` floats apart) = the reduction of image row ih over the
// window columns of ow, channels [c0, c0 + count).
template <class R>
void AlongW(const Pool2dProblem& p, const float* image, int64_t c0, int64_t count, int64_t stride,
            float* rows) {
  for (int64_t ih = 0; ih < p.ih; ++ih) {
    const float* x_row = image + ih * p.iw * p.c + c0;
    for (int64_t ow = 0; ow < p.ow; ++ow) {
      const PoolSpan cols = PoolCols(p, ow);
      ReduceRun<R>(x_row + cols.begin * p.c, p.c, cols.end - cols.begin, count, 1.0f,
                   rows + (ih * p.ow + ow) * stride);
    }
  }
}

// y's channels [c0, c0 + count) of one image = the reduction of `rows` over the window rows of
// each output row; average pooling then divides by the window's divisor (PoolDivisor, the
// reference's division).
template <bool kMax, class R>
void AlongH(const Pool2dProblem& p, const float* rows, int64_t c0, int64_t count, int64_t stride,
            float* y_image) {
  const int64_t row_floats = p.ow * stride;
  for (int64_t oh = 0; oh < p.oh; ++oh) {
    const PoolSpan span = PoolRows(p, oh);
    for (int64_t ow = 0; ow < p.ow; ++ow) {
      const float divisor = kMax ? 1.0f : PoolDivisor(p, span, PoolCols(p, ow));
      ReduceRun<R>(rows + span.begin * row_floats + ow * stride, row_floats, span.end - span.begin,
                   count, divisor, y_image + (oh * p.ow + ow) * p.c + c0);
    }
  }
}

// One image's channels [c0, c0 + count), both passes, in the calling thread's scratch (blocks of
// `width` channels; the last one may hold fewer).
template <bool kMax, bool kNaNFree>
void PoolFwdSeparableBlock(const Pool2dProblem& p, const float* image, int64_t c0, int64_t count,
                           int64_t width, float* y_image) {
  using R = Reduce<kMax, kNaNFree>;
  float* rows = ThreadScratch(p.ih * p.ow * width);
  AlongW<R>(p, image, c0, count, width, rows);
  AlongH<kMax, R>(p, rows, c0, count, width, y_image);
}

template <bool kMax>
void PoolFwdSeparable(const Pool2dArgs& a) {
  const Pool2dProblem& p = *a.p;
  const int64_t width = BlockWidth(p, a.threads);
  const int64_t blocks = (p.c + width - 1) / width;
  ParallelFor(a.threads, p.n * blocks, [&](int64_t t) {
    const int64_t n = t / blocks, c0 = t % blocks * width;
    const int64_t c_end = std::min(p.c, c0 + width);
    const float* image = a.x + n * p.ih * p.iw * p.c;
    float* y_image = a.out + n * p.oh * p.ow * p.c;
    if (!kMax) {
      PoolFwdSeparableBlock<false, true>(p, image, c0, c_end - c0, width, y_image);
    } else if (ChannelsMayHoldNaN(image, p.ih * p.iw, p.c, {c0, c_end})) {
      PoolFwdSeparableBlock<true, false>(p, image, c0, c_end - c0, width, y_image);
    } else {
      PoolFwdSeparableBlock<true, true>(p, image, c0, c_end - c0, width, y_image);
    }
  });
}

}  // namespace

Pool2dEntry GetPool2dFwdSeparable() { return {&PoolFwdSeparable<true>, &PoolFwdSeparable<false>}; }

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace convkit::internal::highway {

HWY_EXPORT(GetPool2dFwdSeparable);

Pool2dEntry ChosenPool2dFwdSeparable() { return HWY_DYNAMIC_DISPATCH(GetPool2dFwdSeparable)(); }

}  // namespace convkit::internal::highway
#endif  // HWY_ONCE
