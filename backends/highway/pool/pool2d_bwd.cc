// Pooling backward, max and average, vectorised along C.
//
// Race-freedom: windows overlap when the stride is below the window, so dx accumulates. A work
// item owns the dx of one image, one block of channels and (ring path) one band of dx rows: no
// other item writes it. It visits the windows that touch its rows in the order (oh, ow), as the
// reference does (a window across two bands is visited by both, each adding only to its own
// rows), so every dx element receives its terms in the same order for any thread count, and the
// bits match the reference's. Max pooling recomputes each window's selected element from x
// (WindowMax, as the forward pass).
//
// Average pooling gathers instead when its shares fit a stack ring (PoolBwdAvgGather): each dx
// element sums, in (oh, ow) order, the dy / divisor of the windows that cover it, and is stored
// once. Max pooling scatters, as follows, and selects with WindowMax's one-compare rule on window
// rows free of NaN (NaNRows).
//
// Two places to accumulate (the scatter):
// - DRAM-bound calls (Pool2dArgs::stream): the rows the current windows touch accumulate in a
//   per-thread ring buffer on the stack (at most KH rows are in flight), and each dx row is
//   stored once, with streaming stores, as soon as no later window touches it. That saves the
//   zero-fill and the read-for-ownership of dx: a third of the traffic of max pooling's k3 s2.
// - Otherwise in dx itself, each row zeroed just before the first window touches it, so that it
//   is still in cache when accumulated.
//
// Compiled once per Highway target through foreach_target.h (hwy/examples/skeleton.cc).
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backends/highway/pool/pool2d.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/highway/pool/pool2d_bwd.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must follow foreach_target.h: re-included once per target.
#include "backends/highway/pool/pool2d-inl.h"
#include "hwy/cache_control.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {
namespace {

// The ring buffer of dx rows, in floats: 96 KB on the stack, within the 1 MB L2. It holds the
// KH x IW x C_block partial sums in flight: 3 x 112 x 64 floats (86 KB) for ResNet-50's stem
// pool, so its channels need no split.
constexpr int64_t kRingFloats = 24 * 1024;

// The rows [r0, r1) of dx of one image, channels [c_begin, c_end), and where their partial sums
// accumulate: dx row ih, channel c at acc + (ih % acc_rows) * acc_row + iw * acc_pixel + c -
// c_begin (the ring buffer, or dx itself).
struct BwdBand {
  const float* x_image;  // null for average pooling: never read
  const float* dy_image;
  float* dx_image;
  int64_t c_begin, c_end;
  int64_t r0, r1;
  float* acc;
  int64_t acc_rows, acc_row, acc_pixel;

  int64_t block() const { return c_end - c_begin; }
  float* AccRow(int64_t ih) const { return acc + (ih % acc_rows) * acc_row; }
};

// Copies count floats from src (zeros if null) to dst, with streaming stores on the vector-aligned
// part.
void StreamSpan(const float* HWY_RESTRICT src, int64_t count, float* HWY_RESTRICT dst) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const uintptr_t align = static_cast<uintptr_t>(lanes) * sizeof(float);
  int64_t i = 0;
  for (; i < count && reinterpret_cast<uintptr_t>(dst + i) % align != 0; ++i) {
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

// Adds window (oh, ow)'s gradient to the band's rows in the ring: dy to the selected element
// (max) or dy / divisor to every element (average), channels of one step at c0. kDirect: no other
// window touches these elements (stride >= window), so they are written as +0 + term, the
// reference's bits, without reading them back.
// kNaNFree: the window's rows hold no NaN (NaNRows): WindowMax's cheaper selection.
template <bool kMax, size_t kVecs, bool kDirect = false, bool kNaNFree = false>
HWY_INLINE void AddWindow(const Pool2dProblem& p, const BwdBand& b, const PoolSpan& rows,
                          const PoolSpan& cols, const float* dy0, int64_t c0, MF last) {
  const DF d;
  const int64_t width = cols.end - cols.begin;
  VF g[kVecs];
  LoadVecs<kVecs>(dy0 + c0, last, g);
  VF idx[kVecs];
  if constexpr (kMax) {
    VF unused[kVecs];
    const float* x0 = b.x_image + (rows.begin * p.iw + cols.begin) * p.c + c0;
    WindowMax<kVecs, true, kNaNFree>({x0, rows.end - rows.begin, width, p.c, p.iw * p.c}, last,
                                     unused, idx);
  } else {
    // The reference's distribute_value: dy / divisor (a division), added to each element.
    const VF div = hn::Set(d, PoolDivisor(p, rows, cols));
    HWY_UNROLL(16)
    for (size_t j = 0; j < kVecs; ++j) g[j] = hn::Div(g[j], div);
  }
  const int64_t h_begin = std::max(rows.begin, b.r0), h_end = std::min(rows.end, b.r1);
  for (int64_t ih = h_begin; ih < h_end; ++ih) {
    float* at = b.AccRow(ih) + cols.begin * b.acc_pixel + (c0 - b.c_begin);
    // The selected element's row-major position in the window, for this row's first column.
    float k = static_cast<float>((ih - rows.begin) * width);
    for (int64_t i = 0; i < width; ++i, k += 1.0f, at += b.acc_pixel) {
      VF v[kVecs];
      if constexpr (kDirect) {
        HWY_UNROLL(16)
        for (size_t j = 0; j < kVecs; ++j) v[j] = hn::Zero(d);
      } else {
        LoadVecs<kVecs>(at, last, v);
      }
      HWY_UNROLL(16)
      for (size_t j = 0; j < kVecs; ++j) {
        if constexpr (kMax) {
          // The reference's dx[mask] += dy: lanes whose selection is element k add g there.
          v[j] = hn::IfThenElse(hn::Eq(idx[j], hn::Set(d, k)), hn::Add(v[j], g[j]), v[j]);
        } else {
          v[j] = hn::Add(v[j], g[j]);
        }
      }
      StoreVecs<kVecs>(v, last, at);
    }
  }
}

// AddWindow for the whole channel block at once, in pixel-major order (block > kWideC, at most
// kWideBlock): the selection (or dy / divisor) of every channel goes to an L1 buffer first, then
// each window element adds it for every channel. Per lane, the same steps as AddWindow.
template <bool kMax, bool kDirect = false>
void AddWindowWide(const Pool2dProblem& p, const BwdBand& b, const PoolSpan& rows,
                   const PoolSpan& cols, const float* dy0) {
  const DF d;
  const int64_t width = cols.end - cols.begin;
  HWY_ALIGN float share[kWideBlock];  // average: dy / divisor; max: the selected value
  HWY_ALIGN float index[kWideBlock];  // max: the selected element's position, as in WindowMax
  if constexpr (kMax) {
    const float* x0 = b.x_image + (rows.begin * p.iw + cols.begin) * p.c;
    float k = 0.0f;
    for (int64_t h = 0; h < rows.end - rows.begin; ++h) {
      for (int64_t i = 0; i < width; ++i, k += 1.0f) {
        const float* xp = x0 + h * p.iw * p.c + i * p.c;
        ForEachChannelStep(b.c_begin, b.c_end, [&]<size_t kVecs>(int64_t c0, MF last) {
          VF v[kVecs], a[kVecs], id[kVecs];
          LoadVecs<kVecs>(xp + c0, last, v);
          if (k == 0.0f) {  // element 0 is kept (or is NaN), as in WindowMax
            StoreVecs<kVecs>(v, last, share + (c0 - b.c_begin));
            HWY_UNROLL(16)
            for (size_t j = 0; j < kVecs; ++j) id[j] = hn::Zero(d);
            StoreVecs<kVecs>(id, last, index + (c0 - b.c_begin));
            return;
          }
          LoadVecs<kVecs>(share + (c0 - b.c_begin), last, a);
          LoadVecs<kVecs>(index + (c0 - b.c_begin), last, id);
          HWY_UNROLL(16)
          for (size_t j = 0; j < kVecs; ++j) {
            const MF take = MaxTakes(a[j], v[j]);
            a[j] = hn::IfThenElse(take, v[j], a[j]);
            id[j] = hn::IfThenElse(take, hn::Set(d, k), id[j]);
          }
          StoreVecs<kVecs>(a, last, share + (c0 - b.c_begin));
          StoreVecs<kVecs>(id, last, index + (c0 - b.c_begin));
        });
      }
    }
  } else {
    const VF div = hn::Set(d, PoolDivisor(p, rows, cols));
    ForEachChannelStep(b.c_begin, b.c_end, [&]<size_t kVecs>(int64_t c0, MF last) {
      VF g[kVecs];
      LoadVecs<kVecs>(dy0 + c0, last, g);
      HWY_UNROLL(16)
      for (size_t j = 0; j < kVecs; ++j) g[j] = hn::Div(g[j], div);
      StoreVecs<kVecs>(g, last, share + (c0 - b.c_begin));
    });
  }
  const int64_t h_begin = std::max(rows.begin, b.r0), h_end = std::min(rows.end, b.r1);
  for (int64_t ih = h_begin; ih < h_end; ++ih) {
    float* at = b.AccRow(ih) + cols.begin * b.acc_pixel;
    float k = static_cast<float>((ih - rows.begin) * width);
    for (int64_t i = 0; i < width; ++i, k += 1.0f, at += b.acc_pixel) {
      ForEachChannelStep(b.c_begin, b.c_end, [&]<size_t kVecs>(int64_t c0, MF last) {
        VF v[kVecs], g[kVecs];
        if constexpr (kDirect) {
          HWY_UNROLL(16)
          for (size_t j = 0; j < kVecs; ++j) v[j] = hn::Zero(d);
        } else {
          LoadVecs<kVecs>(at + (c0 - b.c_begin), last, v);
        }
        LoadVecs<kVecs>(kMax ? dy0 + c0 : share + (c0 - b.c_begin), last, g);
        if constexpr (kMax) {
          VF id[kVecs];
          LoadVecs<kVecs>(index + (c0 - b.c_begin), last, id);
          HWY_UNROLL(16)
          for (size_t j = 0; j < kVecs; ++j) {
            v[j] = hn::IfThenElse(hn::Eq(id[j], hn::Set(d, k)), hn::Add(v[j], g[j]), v[j]);
          }
        } else {
          HWY_UNROLL(16)
          for (size_t j = 0; j < kVecs; ++j) v[j] = hn::Add(v[j], g[j]);
        }
        StoreVecs<kVecs>(v, last, at + (c0 - b.c_begin));
      });
    }
  }
}

// Rows [b.r0, b.r1) of dx, channels [b.c_begin, b.c_end), of image n: every window that touches
// them, in (oh, ow) order.
template <bool kMax>
void PoolBwdBand(const Pool2dProblem& p, const BwdBand& b, int64_t n) {
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
    for (; in_ring < end; ++in_ring) {
      std::fill_n(b.AccRow(in_ring), p.iw * b.block(), 0.0f);
    }
    const float* dy_row = b.dy_image + oh * p.ow * p.c;
    const bool nan_free = kMax && !nan_rows.Any(rows.begin, rows.end);
    for (int64_t ow = 0; ow < p.ow; ++ow) {
      const PoolSpan cols = PoolCols(p, ow);
      if (b.block() > kWideC) {
        AddWindowWide<kMax>(p, b, rows, cols, dy_row + ow * p.c);
        continue;
      }
      ForEachChannelStep(b.c_begin, b.c_end, [&]<size_t kVecs>(int64_t c0, MF last) {
        const float* dy0 = dy_row + ow * p.c;
        if (nan_free) return AddWindow<kMax, kVecs, false, true>(p, b, rows, cols, dy0, c0, last);
        AddWindow<kMax, kVecs>(p, b, rows, cols, dy0, c0, last);
      });
    }
  }
  for (; flushed < b.r1; ++flushed) FlushRow(p, b, flushed, flushed < in_ring);
  hwy::FlushStream();  // order the streaming stores before the caller's barrier
}

// Without streaming stores, or for rows too wide for the ring (KH x IW x lanes > kRingFloats):
// accumulates in dx itself, zeroing each dx row just before the first window touches it. A work
// item is one image, one block of channels and one band of dx rows (bands only when the images and
// channel blocks alone leave a thread idle: ResNet-50's stem pool at N = 1).

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

// dx rows [r0, r1) of image n, channels [c_begin, c_end), accumulated in place. kDirect: the
// windows tile dx (WindowsTile), so only the rows no window covers are zeroed, and the others
// written directly.
template <bool kMax, bool kDirect>
void PoolBwdInPlaceItem(const Pool2dProblem& p, const float* x, const float* dy, float* dx,
                        int64_t n, int64_t c_begin, int64_t c_end, int64_t r0, int64_t r1) {
  const int64_t image_size = p.ih * p.iw * p.c;
  // dx itself is the ring (a slot per row, never wrapping).
  const BwdBand b{x != nullptr ? x + n * image_size : nullptr,
                  dy + n * p.oh * p.ow * p.c,
                  dx + n * image_size,
                  c_begin,
                  c_end,
                  r0,
                  r1,
                  dx + n * image_size + c_begin,
                  p.ih,
                  p.iw * p.c,
                  p.c};
  NaNRows nan_rows(b.x_image, p.iw * p.c);  // max pooling: which x rows may hold a NaN
  int64_t zeroed = r0;                      // dx rows [r0, zeroed) are zero or hold partial sums
  for (int64_t oh = 0; oh < p.oh; ++oh) {
    const PoolSpan rows = PoolRows(p, oh);
    if (rows.end <= r0) continue;
    if (rows.begin >= r1) break;  // rows.begin grows with oh
    ZeroRows(p, b.dx_image, c_begin, c_end, zeroed, std::min(r1, kDirect ? rows.begin : rows.end));
    zeroed = std::max(zeroed, std::min(r1, rows.end));
    const float* dy_row = b.dy_image + oh * p.ow * p.c;
    const bool nan_free = kMax && !nan_rows.Any(rows.begin, rows.end);
    for (int64_t ow = 0; ow < p.ow; ++ow) {
      const PoolSpan cols = PoolCols(p, ow);
      if (b.block() > kWideC) {
        AddWindowWide<kMax, kDirect>(p, b, rows, cols, dy_row + ow * p.c);
        continue;
      }
      ForEachChannelStep(c_begin, c_end, [&]<size_t kVecs>(int64_t c0, MF last) {
        const float* dy0 = dy_row + ow * p.c;
        if (nan_free) return AddWindow<kMax, kVecs, kDirect, true>(p, b, rows, cols, dy0, c0, last);
        AddWindow<kMax, kVecs, kDirect>(p, b, rows, cols, dy0, c0, last);
      });
    }
  }
  ZeroRows(p, b.dx_image, c_begin, c_end, zeroed, r1);  // rows no window reads
}

// The height of the bands of dx rows each image is cut into when `per_band` items (images x channel
// blocks) would leave threads idle: ~4 items per thread, bands at least KH rows high so that a
// window is recomputed by at most two bands (each adds only to its own rows: no race, and every
// element still receives its terms in (oh, ow) order, so the bits do not depend on the split).
int64_t BandHeight(const Pool2dProblem& p, int threads, int64_t per_band) {
  const int64_t wanted = threads <= 1 ? 1 : 4 * threads;
  if (per_band >= wanted) return p.ih;
  const int64_t bands = std::min((wanted + per_band - 1) / per_band, p.ih / p.kh);
  return bands > 1 ? (p.ih + bands - 1) / bands : p.ih;
}

template <bool kMax>
void PoolBwdInPlace(const Pool2dArgs& a) {
  const Pool2dProblem& p = *a.p;
  // Channel blocks, whole steps of kPoolVecs vectors, only as many as it takes to give every
  // thread ~4 items when the batch alone does not.
  const int64_t step = static_cast<int64_t>(kPoolVecs * hn::Lanes(DF()));
  const int64_t steps = (p.c + step - 1) / step;
  const int64_t wanted = a.threads <= 1 ? 1 : (4 * a.threads + p.n - 1) / p.n;
  const int64_t blocks_wanted = std::max<int64_t>(1, std::min(steps, wanted));
  const int64_t block_c =
      std::min(kWideBlock / step, (steps + blocks_wanted - 1) / blocks_wanted) * step;
  const int64_t blocks = (p.c + block_c - 1) / block_c;
  const int64_t band_h = BandHeight(p, a.threads, p.n * blocks);
  const int64_t bands = (p.ih + band_h - 1) / band_h;
  const int64_t items = p.n * blocks * bands;
  const bool direct = WindowsTile(p);
  const auto run_item = [&](int64_t t) {
    const int64_t n = t / (blocks * bands), rest = t % (blocks * bands);
    const int64_t c_begin = (rest % blocks) * block_c;
    const int64_t c_end = std::min(p.c, c_begin + block_c);
    const int64_t r0 = (rest / blocks) * band_h, r1 = std::min(p.ih, r0 + band_h);
    const float* x = kMax ? a.x : nullptr;
    if (direct) return PoolBwdInPlaceItem<kMax, true>(p, x, a.dy, a.out, n, c_begin, c_end, r0, r1);
    PoolBwdInPlaceItem<kMax, false>(p, x, a.dy, a.out, n, c_begin, c_end, r0, r1);
  };
  if (a.threads <= 1) {
    for (int64_t t = 0; t < items; ++t) run_item(t);
    return;
  }
#pragma omp parallel for num_threads(a.threads) schedule(static)
  for (int64_t t = 0; t < items; ++t) run_item(t);
}

// The split of the work: channel blocks that fit the ring, then bands of dx rows, until every
// thread has ~4 items.
struct BwdSplit {
  int64_t block_c, blocks;
  int64_t band_h, bands;
  int64_t items() const { return blocks * bands; }
};

BwdSplit SplitBwd(const Pool2dProblem& p, int threads) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(DF()));
  const int64_t step = static_cast<int64_t>(kPoolVecs) * lanes;
  const int64_t ring_rows = std::min(p.kh, p.ih);
  // Channels the ring holds, whole steps when it holds one, else whole vectors (>= 1, as the
  // caller checks).
  int64_t fit = kRingFloats / (ring_rows * p.iw);
  fit = fit >= step ? fit / step * step : fit / lanes * lanes;
  const int64_t block_c = std::min({fit, kWideBlock, (p.c + lanes - 1) / lanes * lanes});
  BwdSplit s{block_c, (p.c + block_c - 1) / block_c, p.ih, 1};
  s.band_h = BandHeight(p, threads, p.n * s.blocks);
  s.bands = (p.ih + s.band_h - 1) / s.band_h;
  return s;
}

// Average pooling in gather form: each dx element is the sum, from +0, of the shares dy / divisor
// of the windows that cover it, visited in (oh, ow) order: the terms the reference adds to it, in
// its order, hence its bits. One store per dx element (streaming when DRAM-bound), no zero-fill
// and no read-modify-write. A work item owns one image, one channel block and one band of dx rows;
// rows are independent, so any split gives the same bits. The shares of the R = ceil(KH / SH) dy
// rows a dx row can meet are computed once per item into a stack ring: R x OW x block floats.
constexpr int64_t kShareFloats = 24 * 1024;

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

int64_t ShareRingRows(const Pool2dProblem& p) {
  return std::min(p.oh, p.kh / p.stride_h + (p.kh % p.stride_h != 0));  // ceil, no overflow
}

// The most dy rows a dx row can meet that the gather takes (GatherBlock): windows up to 64 rows
// high at stride 1; taller ones scatter.
constexpr int64_t kMaxShareRows = 64;

// Channels per block of the gather: whole vectors, the ring within kShareFloats; 0 if not even
// one vector fits (the caller then scatters).
int64_t GatherBlock(const Pool2dProblem& p) {
  if (ShareRingRows(p) > kMaxShareRows) return 0;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(DF()));
  const int64_t fit = kShareFloats / std::max<int64_t>(1, ShareRingRows(p) * p.ow) / lanes * lanes;
  return std::min(fit, (p.c + lanes - 1) / lanes * lanes);
}

// dy / divisor of dy row oh, channels [c_begin, c_end), into slot: OW x block floats.
void ShareRow(const Pool2dProblem& p, const float* dy_image, int64_t oh, int64_t c_begin,
              int64_t c_end, float* slot) {
  const DF d;
  const PoolSpan rows = PoolRows(p, oh);
  const int64_t block = c_end - c_begin;
  for (int64_t ow = 0; ow < p.ow; ++ow) {
    const VF div = hn::Set(d, PoolDivisor(p, rows, PoolCols(p, ow)));
    const float* dy0 = dy_image + (oh * p.ow + ow) * p.c;
    ForEachChannelStep(c_begin, c_end, [&]<size_t kVecs>(int64_t c0, MF last) {
      VF g[kVecs];
      LoadVecs<kVecs>(dy0 + c0, last, g);
      HWY_UNROLL(16)
      for (size_t j = 0; j < kVecs; ++j) g[j] = hn::Div(g[j], div);  // distribute_value's division
      StoreVecs<kVecs>(g, last, slot + ow * block + (c0 - c_begin));
    });
  }
}

// dx rows [r0, r1) of image n, channels [c_begin, c_end). kStream: every store is a streaming one
// (dx vector-aligned, C and c_begin multiples of the vector length).
template <bool kStream>
void PoolBwdAvgGatherItem(const Pool2dProblem& p, const float* dy, float* dx, int64_t n,
                          int64_t c_begin, int64_t c_end, int64_t r0, int64_t r1, float* ring) {
  const DF d;
  const int64_t block = c_end - c_begin;
  const int64_t ring_rows = ShareRingRows(p);
  const float* dy_image = dy + n * p.oh * p.ow * p.c;
  float* dx_image = dx + n * p.ih * p.iw * p.c;
  int64_t shared = -1;  // dy rows up to this one are in the ring (the last ring_rows of them)
  for (int64_t ih = r0; ih < r1; ++ih) {
    const Covering oh = CoveringOf(ih, p.stride_h, p.pad.top, p.kh, p.oh);
    for (int64_t r = std::max(shared + 1, oh.lo); r <= oh.hi; ++r) {
      ShareRow(p, dy_image, r, c_begin, c_end, ring + (r % ring_rows) * p.ow * block);
    }
    shared = std::max(shared, oh.hi);
    // Per row, not per dx element: the ring slots of the covering dy rows (a modulo each) and the
    // channel steps (ForEachChannelStep's masks and branches). Per element, the scalar work cost
    // more than the adds at 16 channels (18x18x16 k3 s2 at N = 32 ran at half oneDNN's speed).
    const int64_t covering = std::max<int64_t>(0, oh.hi - oh.lo + 1);
    const float* slots[kMaxShareRows];
    for (int64_t r = 0; r < covering; ++r) {
      slots[r] = ring + ((oh.lo + r) % ring_rows) * p.ow * block;
    }
    float* dx_row = dx_image + ih * p.iw * p.c;
    ForEachChannelStep(c_begin, c_end, [&]<size_t kVecs>(int64_t c0, MF last) {
      Covering ow{0, -1};  // advanced incrementally along iw
      for (int64_t iw = 0; iw < p.iw; ++iw) {
        while (ow.hi + 1 < p.ow && (ow.hi + 1) * p.stride_w - p.pad.left <= iw) ++ow.hi;
        while (ow.lo < p.ow && ow.lo * p.stride_w - p.pad.left + p.kw <= iw) ++ow.lo;
        VF sum[kVecs];
        HWY_UNROLL(16)
        for (size_t j = 0; j < kVecs; ++j) sum[j] = hn::Zero(d);
        for (int64_t r = 0; r < covering; ++r) {
          const float* slot = slots[r] + (c0 - c_begin);
          for (int64_t o = ow.lo; o <= ow.hi; ++o) {
            VF g[kVecs];
            LoadVecs<kVecs>(slot + o * block, last, g);
            HWY_UNROLL(16)
            for (size_t j = 0; j < kVecs; ++j) sum[j] = hn::Add(sum[j], g[j]);
          }
        }
        float* dx0 = dx_row + iw * p.c + c0;
        if constexpr (kStream) {
          HWY_UNROLL(16)
          for (size_t j = 0; j < kVecs; ++j) hn::Stream(sum[j], d, dx0 + j * hn::Lanes(d));
        } else {
          StoreVecs<kVecs>(sum, last, dx0);
        }
      }
    });
  }
  if constexpr (kStream) hwy::FlushStream();  // order the streaming stores before the barrier
}

void PoolBwdAvgGather(const Pool2dArgs& a, int64_t block_c) {
  const Pool2dProblem& p = *a.p;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(DF()));
  const int64_t blocks = (p.c + block_c - 1) / block_c;
  const int64_t band_h = BandHeight(p, a.threads, p.n * blocks);
  const int64_t bands = (p.ih + band_h - 1) / band_h;
  const int64_t items = p.n * blocks * bands;
  const bool stream = a.stream && p.c % lanes == 0 &&
                      reinterpret_cast<uintptr_t>(a.out) % (lanes * sizeof(float)) == 0;
  const auto run_item = [&](int64_t t, float* ring) {
    const int64_t n = t / (blocks * bands), rest = t % (blocks * bands);
    const int64_t c_begin = (rest % blocks) * block_c, c_end = std::min(p.c, c_begin + block_c);
    const int64_t r0 = (rest / blocks) * band_h, r1 = std::min(p.ih, r0 + band_h);
    if (stream) return PoolBwdAvgGatherItem<true>(p, a.dy, a.out, n, c_begin, c_end, r0, r1, ring);
    PoolBwdAvgGatherItem<false>(p, a.dy, a.out, n, c_begin, c_end, r0, r1, ring);
  };
  if (a.threads <= 1) {
    HWY_ALIGN float ring[kShareFloats];
    for (int64_t t = 0; t < items; ++t) run_item(t, ring);
    return;
  }
#pragma omp parallel num_threads(a.threads)
  {
    HWY_ALIGN float ring[kShareFloats];
#pragma omp for schedule(static)
    for (int64_t t = 0; t < items; ++t) run_item(t, ring);
  }
}

template <bool kMax>
void PoolBwd(const Pool2dArgs& a) {
  const Pool2dProblem& p = *a.p;
  if (p.n == 0) return;
  if constexpr (!kMax) {
    const int64_t block_c = GatherBlock(p);
    if (block_c > 0) return PoolBwdAvgGather(a, block_c);
  }
  // In cache (no streaming stores), the ring's extra copy costs what the zero-fill did.
  if (!a.stream ||
      kRingFloats / (std::min(p.kh, p.ih) * p.iw) < static_cast<int64_t>(hn::Lanes(DF()))) {
    return PoolBwdInPlace<kMax>(a);
  }
  const BwdSplit s = SplitBwd(p, a.threads);
  const int64_t image_size = p.ih * p.iw * p.c;
  const int64_t ring_rows = std::min(p.kh, p.ih);
  const auto run_item = [&](int64_t t, float* ring) {
    const int64_t n = t / s.items(), rest = t % s.items();
    const int64_t c_begin = (rest % s.blocks) * s.block_c;
    const int64_t r0 = (rest / s.blocks) * s.band_h;
    const BwdBand b{kMax ? a.x + n * image_size : nullptr,
                    a.dy + n * p.oh * p.ow * p.c,
                    a.out + n * image_size,
                    c_begin,
                    std::min(p.c, c_begin + s.block_c),
                    r0,
                    std::min(p.ih, r0 + s.band_h),
                    ring,
                    ring_rows,
                    p.iw * (std::min(p.c, c_begin + s.block_c) - c_begin),
                    std::min(p.c, c_begin + s.block_c) - c_begin};
    PoolBwdBand<kMax>(p, b, n);
  };
  const int64_t items = p.n * s.items();
  if (a.threads <= 1) {
    HWY_ALIGN float ring[kRingFloats];
    for (int64_t t = 0; t < items; ++t) run_item(t, ring);
    return;
  }
#pragma omp parallel num_threads(a.threads)
  {
    HWY_ALIGN float ring[kRingFloats];
#pragma omp for schedule(static)
    for (int64_t t = 0; t < items; ++t) run_item(t, ring);
  }
}

}  // namespace

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
