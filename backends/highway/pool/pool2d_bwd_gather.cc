// Pooling backward, the avg_gather variant: average pooling in gather form, one axis at a time.
// Each dy row's shares dy / divisor are first gathered along W (per dx column, +0 plus the shares
// of the windows covering it, in ow order) into a per-thread stack ring (kShareFloats); each dx
// row is then +0 plus the ring rows of the dy rows covering it, in oh order, as one flat sequence
// of vectors. The terms are the reference's; only their grouping differs (exact on the integer
// data of the equivalence tests, DESIGN §4). One store per dx element (streaming when
// DRAM-bound), no zero-fill and no read-modify-write. A work item (pool2d_bwd_items.hpp) owns one
// image, one channel block and one band of dx rows; rows are independent, so any split gives the
// same bits. Per element, the window bookkeeping of a direct gather cost more than its adds (its
// per-pixel loops ran over every dx row; now over the dy rows only).
//
// Compiled once per Highway target through foreach_target.h (hwy/examples/skeleton.cc).
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backends/highway/common/parallel.hpp"
#include "backends/highway/pool/pool2d.hpp"
#include "backends/highway/pool/pool2d_bwd_items.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/highway/pool/pool2d_bwd_gather.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must follow foreach_target.h: re-included once per target.
#include "backends/highway/pool/pool2d-inl.h"
#include "hwy/cache_control.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {
namespace {

// Neither form adds b: a stride near 2^63 is valid (one output) and would overflow.
int64_t FloorDiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a - 1) / b) - 1; }

// The dy rows (or columns) whose windows cover input index i: [lo, hi], empty when lo > hi.
struct Covering {
  int64_t lo, hi;
};
Covering CoveringOf(int64_t i, int64_t stride, int64_t pad_before, int64_t window, int64_t out) {
  return {std::max<int64_t>(0, FloorDiv(i + pad_before - window, stride) + 1),
          std::min(out - 1, FloorDiv(i + pad_before, stride))};
}

// dy / divisor of dy row oh, channels [c_begin, c_end), into slot: OW x block floats. Windows of
// one divisor (all but the clipped ones at the row's ends) go as one run; with every channel in
// the block, dy's and the slot's pixels of a run are contiguous and go as one flat sequence of
// vectors (a window's divisor, mask and loop set-up per pixel were a third of the 18x18x16 3x3/2
// average backward at batch 32).
void ShareRow(const Pool2dProblem& p, const float* dy_image, int64_t oh, int64_t c_begin,
              int64_t c_end, float* slot) {
  const DF d;
  const PoolSpan rows = PoolRows(p, oh);
  const int64_t block = c_end - c_begin;
  const bool flat = block == p.c;
  for (int64_t ow = 0; ow < p.ow;) {
    const float divisor = PoolDivisor(p, rows, PoolCols(p, ow));
    int64_t end = ow + 1;
    while (end < p.ow && PoolDivisor(p, rows, PoolCols(p, end)) == divisor) ++end;
    const VF div = hn::Set(d, divisor);
    const auto share = [&](const float* dy0, float* to, int64_t count) {
      ForEachChannelStep(0, count, [&]<size_t kVecs>(int64_t c0, MF last) {
        VF g[kVecs];
        LoadVecs<kVecs>(dy0 + c0, last, g);
        HWY_UNROLL(16)
        for (size_t j = 0; j < kVecs; ++j) g[j] = hn::Div(g[j], div);  // distribute_value's
        StoreVecs<kVecs>(g, last, to + c0);
      });
    };
    const float* dy_row = dy_image + oh * p.ow * p.c + c_begin;
    if (flat) {
      share(dy_row + ow * p.c, slot + ow * block, (end - ow) * block);
    } else {
      for (int64_t o = ow; o < end; ++o) share(dy_row + o * p.c, slot + o * block, block);
    }
    ow = end;
  }
}

// The `covering` rows of shares `slots` (OW x block floats each, in oh order) gathered along W
// into `out` (pixels `pixel` floats apart, channel 0 of the block at out): per dx column iw, +0
// plus, row after row, the shares of the windows that cover it, in ow order. kStream: every
// store is a streaming one.
template <bool kStream>
HWY_INLINE void GatherAlongW(const Pool2dProblem& p, const float* const* slots, int64_t covering,
                             int64_t block, float* out, int64_t pixel) {
  // Locals, not p's fields, and the windows' bounds advanced by additions: per element, reloads
  // (the vector stores may alias p as far as GCC knows) and multiplications cost more than the
  // adds (18x18x16 k3 s2 at N = 32, one thread: 38 -> 32 us).
  const int64_t iw_end = p.iw, kw = p.kw, stride = p.stride_w, pad = p.pad.left, columns = p.ow;
  ForEachChannelStep(0, block, [&]<size_t kVecs>(int64_t c0, MF last) {
    float* o = out + c0;
    // Dy columns [lo, hi) cover iw: column hi's window starts at hi_start, lo's ends at lo_end.
    int64_t lo = 0, hi = 0, hi_start = -pad, lo_end = kw - pad;
    for (int64_t iw = 0; iw < iw_end; ++iw, o += pixel) {
      for (; hi < columns && hi_start <= iw; hi_start += stride) ++hi;
      for (; lo < hi && lo_end <= iw; lo_end += stride) ++lo;
      VF sum[kVecs];
      ZeroVecs(sum);
      for (int64_t r = 0; r < covering; ++r) {
        const float* g0 = slots[r] + c0 + lo * block;
        for (int64_t w = lo; w < hi; ++w, g0 += block) {
          VF g[kVecs];
          LoadVecs<kVecs>(g0, last, g);
          HWY_UNROLL(16)
          for (size_t j = 0; j < kVecs; ++j) sum[j] = hn::Add(sum[j], g[j]);
        }
      }
      StoreOrStreamVecs<kStream, kVecs>(sum, last, o);
    }
  });
}

// dx row dx_row, channels [c_begin, c_end): +0 plus the `covering` ring slots (dy rows already
// gathered along W, IW x block floats each) in oh order. The channels of every pixel (block ==
// C) go as one flat sequence of vectors.
HWY_INLINE void SumSlots(const Pool2dProblem& p, const float* const* slots, int64_t covering,
                         int64_t c_begin, int64_t c_end, float* dx_row) {
  const int64_t block = c_end - c_begin;
  // Floats [begin, end) of the slots into out[begin, end).
  const auto sum_span = [&](int64_t begin, int64_t end, float* out) {
    ForEachChannelStep(begin, end, [&]<size_t kVecs>(int64_t i, MF last) {
      VF sum[kVecs];
      ZeroVecs(sum);
      for (int64_t r = 0; r < covering; ++r) {
        VF v[kVecs];
        LoadVecs<kVecs>(slots[r] + i, last, v);
        HWY_UNROLL(16)
        for (size_t j = 0; j < kVecs; ++j) sum[j] = hn::Add(sum[j], v[j]);
      }
      StoreVecs<kVecs>(sum, last, out + i);
    });
  };
  if (block == p.c) return sum_span(0, p.iw * block, dx_row);
  for (int64_t iw = 0; iw < p.iw; ++iw) {
    sum_span(iw * block, (iw + 1) * block, dx_row + iw * (p.c - block) + c_begin);
  }
}

// Work item i: dx rows [r0, r1) of image n, channels [c_begin, c_end). kStream: every store is a
// streaming one (dx vector-aligned, C and c_begin multiples of the vector length). kSeparable:
// the ring holds ShareRingRows slots of IW x block floats (dy rows gathered along W) and, after
// them, one row of OW x block shares, and each dx row sums its slots (SumSlots); otherwise the
// ring holds ShareRingRows slots of OW x block shares, and each dx row is gathered from them in
// one pass.
template <bool kStream, bool kSeparable>
HWY_NOINLINE void PoolBwdAvgGatherItem(const Pool2dProblem& p, const float* dy, float* dx,
                                       const BwdItem& i, float* ring) {
  const int64_t block = i.c_end - i.c_begin;
  const int64_t ring_rows = ShareRingRows(p), slot = (kSeparable ? p.iw : p.ow) * block;
  float* shares = ring + ring_rows * slot;
  const float* dy_image = dy + i.n * p.oh * p.ow * p.c;
  float* dx_image = dx + i.n * p.ih * p.iw * p.c;
  int64_t gathered = -1;  // dy rows up to this one are in the ring (the last ring_rows of them)
  for (int64_t ih = i.r0; ih < i.r1; ++ih) {
    const Covering oh = CoveringOf(ih, p.stride_h, p.pad.top, p.kh, p.oh);
    for (int64_t r = std::max(gathered + 1, oh.lo); r <= oh.hi; ++r) {
      float* to = ring + (r % ring_rows) * slot;
      ShareRow(p, dy_image, r, i.c_begin, i.c_end, kSeparable ? shares : to);
      if constexpr (kSeparable) GatherAlongW<false>(p, &shares, 1, block, to, block);
    }
    gathered = std::max(gathered, oh.hi);
    const int64_t covering = std::max<int64_t>(0, oh.hi - oh.lo + 1);
    const float* slots[kMaxShareRows];
    for (int64_t r = 0; r < covering; ++r) slots[r] = ring + ((oh.lo + r) % ring_rows) * slot;
    float* dx_row = dx_image + ih * p.iw * p.c;
    if constexpr (kSeparable) {
      SumSlots(p, slots, covering, i.c_begin, i.c_end, dx_row);
    } else {
      GatherAlongW<kStream>(p, slots, covering, block, dx_row + i.c_begin, p.c);
    }
  }
  if constexpr (kStream) hwy::FlushStream();  // order the streaming stores before the barrier
}

// The avg_gather variant: channel blocks whose ring fits kShareFloats (GatherBlock > 0, as the
// variant list checked), a ring per thread. Separable when the call is in cache and the ring's
// rows fit in L1 (kGatherL1Floats); where they do not, the extra pass over them cost more than
// the per-element work it saves (VGG's pool1 and ResNet-50's stem pool at N = 1: 0.7x), and so it
// did on DRAM-bound calls.
void PoolBwdAvgGather(const Pool2dArgs& a) {
  const Pool2dProblem& p = *a.p;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(DF()));
  const int64_t block = GatherBlock(p, lanes);
  const BwdItems items(p, a.threads, block);
  const bool stream = a.stream && p.c % lanes == 0 && VectorAligned(a.out);
  const bool separable = !stream && GatherRingPixels(p) * std::min(block, p.c) <= kGatherL1Floats;
  ParallelRanges(a.threads, items.count(), [&](int64_t begin, int64_t end) {
    HWY_ALIGN float ring[kShareFloats];
    for (int64_t t = begin; t < end; ++t) {
      if (stream) {
        PoolBwdAvgGatherItem<true, false>(p, a.dy, a.out, items[t], ring);
      } else if (separable) {
        PoolBwdAvgGatherItem<false, true>(p, a.dy, a.out, items[t], ring);
      } else {
        PoolBwdAvgGatherItem<false, false>(p, a.dy, a.out, items[t], ring);
      }
    }
  });
}

}  // namespace

Pool2dEntry GetPool2dBwdGather() { return {nullptr, &PoolBwdAvgGather}; }

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace convkit::internal::highway {

HWY_EXPORT(GetPool2dBwdGather);

Pool2dEntry ChosenPool2dBwdGather() { return HWY_DYNAMIC_DISPATCH(GetPool2dBwdGather)(); }

}  // namespace convkit::internal::highway
#endif  // HWY_ONCE
