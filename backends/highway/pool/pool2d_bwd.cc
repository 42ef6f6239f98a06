// Pooling backward, max and average, vectorised along C: the two scatter variants (band and
// in_place; the average gather is pool2d_bwd_gather.cc). The variant list in pool2d.cpp chooses.
//
// Race-freedom: windows overlap when the stride is below the window, so dx accumulates. A work
// item (pool2d_bwd_items.hpp) owns the dx of one image, one block of channels and one band of dx
// rows. It visits the windows that touch its rows in the order (oh, ow), as the reference does (a
// window across two bands is visited by both, each adding only to its own rows), so every dx
// element receives its terms in the same order for any thread count, and the bits match the
// reference's.
//
// Two places to accumulate:
// - band (DRAM-bound calls, Pool2dArgs::stream): the rows the current windows touch accumulate in
//   a per-thread ring buffer on the stack (at most KH rows are in flight), and each dx row is
//   stored once, with streaming stores, as soon as no later window touches it. That saves the
//   zero-fill and the read-for-ownership of dx: a third of the traffic of max pooling's k3 s2.
// - in_place (otherwise: in cache, the ring's extra copy costs what the zero-fill did): in dx
//   itself, each row zeroed just before the first window touches it, so that it is still in cache
//   when accumulated.
//
// Compiled once per Highway target through foreach_target.h (hwy/examples/skeleton.cc).
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backends/highway/common/parallel.hpp"
#include "backends/highway/pool/pool2d.hpp"
#include "backends/highway/pool/pool2d_bwd_items.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/highway/pool/pool2d_bwd.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must follow foreach_target.h: re-included once per target.
#include "backends/highway/pool/pool2d-inl.h"
#include "backends/highway/pool/pool2d_bwd-inl.h"
#include "hwy/cache_control.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {
namespace {

// Floats per step of channels (ForEachChannelStep): the block unit of both variants.
int64_t StepFloats() { return static_cast<int64_t>(kPoolVecs * hn::Lanes(DF())); }

// The band of item i with its partial sums in dx itself (a slot per row, never wrapping).
template <bool kMax>
BwdBand InPlaceBand(const Pool2dArgs& a, const BwdItem& i) {
  const Pool2dProblem& p = *a.p;
  const int64_t image_size = p.ih * p.iw * p.c;
  float* dx_image = a.out + i.n * image_size;
  return {kMax ? a.x + i.n * image_size : nullptr,
          a.dy + i.n * p.oh * p.ow * p.c,
          dx_image,
          i.c_begin,
          i.c_end,
          i.r0,
          i.r1,
          dx_image + i.c_begin,
          p.ih,
          p.iw * p.c,
          p.c};
}

// The band of item i with its partial sums in `ring`: RingRows(p) slots of IW x block floats.
template <bool kMax>
BwdBand RingBand(const Pool2dArgs& a, const BwdItem& i, float* ring) {
  BwdBand b = InPlaceBand<kMax>(a, i);
  b.acc = ring;
  b.acc_rows = RingRows(*a.p);
  b.acc_row = a.p->iw * b.block();
  b.acc_pixel = b.block();
  return b;
}

// Copies count floats from src (zeros if null) to dst, with streaming stores on the vector-aligned
// part.
void StreamSpan(const float* HWY_RESTRICT src, int64_t count, float* HWY_RESTRICT dst) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  for (; i < count && !VectorAligned(dst + i); ++i) {
    dst[i] = src != nullptr ? src[i] : 0.0f;
  }
  for (; i + lanes <= count; i += lanes) {
    hn::Stream(src != nullptr ? hn::LoadU(d, src + i) : hn::Zero(d), d, dst + i);
  }
  for (; i < count; ++i) dst[i] = src != nullptr ? src[i] : 0.0f;
}

// Stores dx row ih of the band from its ring slot, or zeros if no window touches it.
void FlushRow(const Pool2dProblem& p, const BwdBand& b, int64_t ih, bool touched) {
  const float* src = touched ? b.AccRow(ih) : nullptr;
  float* dst = b.dx_image + ih * p.iw * p.c + b.c_begin;
  if (b.block() == p.c) return StreamSpan(src, p.iw * p.c, dst);
  for (int64_t iw = 0; iw < p.iw; ++iw) {
    StreamSpan(src != nullptr ? src + iw * b.block() : nullptr, b.block(), dst + iw * p.c);
  }
}

// Whether the windows tile dx: none overlaps another, and along W they cover every column, so
// that each dx element of a row a window row covers receives exactly one term.
bool WindowsTile(const Pool2dProblem& p) {
  if (p.stride_h < p.kh || p.stride_w < p.kw) return false;
  int64_t covered = 0;
  for (int64_t ow = 0; ow < p.ow; ++ow) {
    const PoolSpan cols = PoolCols(p, ow);
    if (cols.begin != covered) return false;
    covered = cols.end;
  }
  return covered == p.iw;
}

// The band variant's work item: rows [b.r0, b.r1) of dx, channels [b.c_begin, b.c_end), every
// window that touches them in (oh, ow) order, each dx row stored from the ring once final.
// kDirect: the windows tile dx (WindowsTile), so each ring row is written, not zeroed and
// accumulated (VGG's pool1 2x2/2 max backward at N = 32, one thread: 91 -> 85 ms).
template <bool kMax, bool kDirect>
HWY_NOINLINE void PoolBwdBandItem(const Pool2dProblem& p, const BwdBand& b) {
  NaNRows nan_rows(b.x_image, p.iw * p.c);  // max pooling: which x rows may hold a NaN
  int64_t flushed = b.r0;                   // dx rows [r0, flushed) are stored
  int64_t in_ring = b.r0;                   // rows [flushed, in_ring) accumulate in the ring
  for (int64_t oh = 0; oh < p.oh; ++oh) {
    const PoolSpan rows = PoolRows(p, oh);
    if (rows.end <= b.r0) continue;
    if (rows.begin >= b.r1) break;  // rows.begin grows with oh
    // Rows above this window row are final: no later window touches them.
    for (; flushed < rows.begin; ++flushed) FlushRow(p, b, flushed, flushed < in_ring);
    in_ring = std::max(in_ring, flushed);
    const int64_t end = std::min(rows.end, b.r1);
    if constexpr (!kDirect) {
      for (int64_t ih = in_ring; ih < end; ++ih) std::fill_n(b.AccRow(ih), p.iw * b.block(), 0.0f);
    }
    in_ring = std::max(in_ring, end);
    const bool nan_free = kMax && !nan_rows.Any(rows.begin, rows.end);
    // dy comes from DRAM (the band variant runs DRAM-bound calls): a row read in one sweep ahead
    // of its windows, whose reads of one channel step each, between x's, waited on misses (VGG's
    // pool1 max backward at N = 32: 85 -> 40 ms on one thread, 50 -> 30 ms on two; oneDNN 56, 29).
    ReadAhead(b.dy_image + oh * p.ow * p.c, p.ow * p.c);
    AddWindowRow<kMax, kDirect>(p, b, rows, oh, nan_free);
  }
  for (; flushed < b.r1; ++flushed) FlushRow(p, b, flushed, flushed < in_ring);
  hwy::FlushStream();  // order the streaming stores before the caller's barrier
}

// The band variant: channel blocks that fit the ring (BandBlock), a ring per thread.
template <bool kMax>
void PoolBwdBand(const Pool2dArgs& a) {
  const Pool2dProblem& p = *a.p;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(DF()));
  const BwdItems items(p, a.threads, BandBlock(p, lanes, StepFloats()));
  const bool direct = WindowsTile(p);
  ParallelRanges(a.threads, items.count(), [&](int64_t begin, int64_t end) {
    HWY_ALIGN float ring[kRingFloats];
    for (int64_t t = begin; t < end; ++t) {
      const BwdBand b = RingBand<kMax>(a, items[t], ring);
      if (direct) {
        PoolBwdBandItem<kMax, true>(p, b);
      } else {
        PoolBwdBandItem<kMax, false>(p, b);
      }
    }
  });
}

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

// The in_place variant's work item: dx rows [b.r0, b.r1), channels [b.c_begin, b.c_end),
// accumulated in place. kDirect: the windows tile dx (WindowsTile), so only the rows no window
// covers are zeroed, and the others written directly.
template <bool kMax, bool kDirect>
HWY_NOINLINE void PoolBwdInPlaceItem(const Pool2dProblem& p, const BwdBand& b) {
  NaNRows nan_rows(b.x_image, p.iw * p.c);  // max pooling: which x rows may hold a NaN
  int64_t zeroed = b.r0;                    // dx rows [r0, zeroed) are zero or hold partial sums
  for (int64_t oh = 0; oh < p.oh; ++oh) {
    const PoolSpan rows = PoolRows(p, oh);
    if (rows.end <= b.r0) continue;
    if (rows.begin >= b.r1) break;  // rows.begin grows with oh
    ZeroRows(p, b.dx_image, b.c_begin, b.c_end, zeroed,
             std::min(b.r1, kDirect ? rows.begin : rows.end));
    zeroed = std::max(zeroed, std::min(b.r1, rows.end));
    const bool nan_free = kMax && !nan_rows.Any(rows.begin, rows.end);
    AddWindowRow<kMax, kDirect>(p, b, rows, oh, nan_free);
  }
  ZeroRows(p, b.dx_image, b.c_begin, b.c_end, zeroed, b.r1);  // rows no window reads
}

// The in_place variant: channel blocks of whole steps (InPlaceBlock).
template <bool kMax>
void PoolBwdInPlace(const Pool2dArgs& a) {
  const Pool2dProblem& p = *a.p;
  const BwdItems items(p, a.threads, InPlaceBlock(p, a.threads, StepFloats()));
  const bool direct = WindowsTile(p);
  ParallelFor(a.threads, items.count(), [&](int64_t t) {
    const BwdBand b = InPlaceBand<kMax>(a, items[t]);
    if (direct) return PoolBwdInPlaceItem<kMax, true>(p, b);
    PoolBwdInPlaceItem<kMax, false>(p, b);
  });
}

}  // namespace

Pool2dBwdKernels GetPool2dBwdKernels() {
  Pool2dBwdKernels k;
  k.band = {&PoolBwdBand<true>, &PoolBwdBand<false>};
  k.in_place = {&PoolBwdInPlace<true>, &PoolBwdInPlace<false>};
  k.lanes = static_cast<int64_t>(hn::Lanes(DF()));
  k.isa = hwy::TargetName(HWY_TARGET);
  return k;
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace convkit::internal::highway {

HWY_EXPORT(GetPool2dBwdKernels);

Pool2dBwdKernels ChosenPool2dBwdKernels() {
  Pool2dBwdKernels k = HWY_DYNAMIC_DISPATCH(GetPool2dBwdKernels)();
  k.avg_gather = ChosenPool2dBwdGather();
  return k;
}

}  // namespace convkit::internal::highway
#endif  // HWY_ONCE
