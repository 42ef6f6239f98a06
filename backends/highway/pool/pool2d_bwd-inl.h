// Per-target scatter of backward pooling (the band and in_place variants, pool2d_bwd.cc): one
// window's gradient added to the dx rows a work item owns, dy to the selected element (max) or
// dy / divisor to every element (average). Max pooling recomputes each window's selected element
// from x (WindowMax, as the forward pass); on window rows free of NaN (NaNRows) as the first
// element equal to the window's maximum (ScatterToFirstMax). Included once per target through
// foreach_target.h, hence the toggle guard (Highway's skeleton-inl.h pattern).
#if defined(CONVKIT_HIGHWAY_POOL2D_BWD_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef CONVKIT_HIGHWAY_POOL2D_BWD_INL_H_
#undef CONVKIT_HIGHWAY_POOL2D_BWD_INL_H_
#else
#define CONVKIT_HIGHWAY_POOL2D_BWD_INL_H_
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backends/highway/common/vec-inl.h"
#include "backends/highway/pool/pool2d-inl.h"
#include "backends/highway/pool/pool2d.hpp"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {

// The rows [r0, r1) of dx of one image, channels [c_begin, c_end), and where their partial sums
// accumulate: dx row ih, channel c at acc + (ih % acc_rows) * acc_row + iw * acc_pixel + c -
// c_begin (the band variant's ring, or dx itself).
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

// AddWindow's max pooling on window rows free of NaN: g goes to the first element equal to the
// window's maximum in row-major order, which is WindowMax's selection (without NaN, the first
// maximal element; +0 and -0 compare equal, and the first of them is kept there too). The
// maximum is one max instruction per element, and "first" a mask chain of one-cycle steps: the
// index chain (a compare and two blends per element) made each window wait on its latency.
// The window's rows outside the band still count for "first". kRows x kCols: the window's
// extent when known at compile time (0: rows x cols), so that a whole 2x2 or 3x3 window is one
// straight run of code. The maximum is its own loop, not WindowMax given the same compile-time
// extents: that ran the 18x18x16 3x3/2 backward at batch 32 0.945x in two runs.
template <size_t kVecs, bool kDirect, int64_t kRows = 0, int64_t kCols = 0>
HWY_INLINE void ScatterToFirstMax(const Pool2dProblem& p, const BwdBand& b, int64_t row0,
                                  int64_t rows, int64_t cols, int64_t col0, const VF (&g)[kVecs],
                                  int64_t c0, MF last) {
  const DF d;
  const int64_t h_count = kRows != 0 ? kRows : rows, w_count = kCols != 0 ? kCols : cols;
  const int64_t row_stride = p.iw * p.c;
  const float* x0 = b.x_image + (row0 * p.iw + col0) * p.c + c0;
  VF m[kVecs];
  LoadVecs<kVecs>(x0, last, m);
  for (int64_t h = 0; h < h_count; ++h) {
    for (int64_t i = h == 0 ? 1 : 0; i < w_count; ++i) {
      VF v[kVecs];
      LoadVecs<kVecs>(x0 + h * row_stride + i * p.c, last, v);
      HWY_UNROLL(16)
      for (size_t j = 0; j < kVecs; ++j) m[j] = hn::Max(m[j], v[j]);
    }
  }
  MF open[kVecs];  // lanes whose first maximum is still ahead
  HWY_UNROLL(16)
  for (size_t j = 0; j < kVecs; ++j) open[j] = hn::FirstN(d, hn::Lanes(d));
  for (int64_t h = 0; h < h_count; ++h) {
    const int64_t ih = row0 + h;
    const bool in_band = ih >= b.r0 && ih < b.r1;
    float* at = b.AccRow(ih) + col0 * b.acc_pixel + (c0 - b.c_begin);
    for (int64_t i = 0; i < w_count; ++i) {
      VF x[kVecs];
      LoadVecs<kVecs>(x0 + h * row_stride + i * p.c, last, x);
      MF take[kVecs];
      HWY_UNROLL(16)
      for (size_t j = 0; j < kVecs; ++j) {
        take[j] = hn::And(open[j], hn::Eq(x[j], m[j]));
        open[j] = hn::AndNot(take[j], open[j]);
      }
      if (!in_band) continue;
      VF v[kVecs];
      if constexpr (kDirect) {
        ZeroVecs(v);
      } else {
        LoadVecs<kVecs>(at + i * b.acc_pixel, last, v);
      }
      HWY_UNROLL(16)
      for (size_t j = 0; j < kVecs; ++j) v[j] = hn::IfThenElse(take[j], hn::Add(v[j], g[j]), v[j]);
      StoreVecs<kVecs>(v, last, at + i * b.acc_pixel);
    }
  }
}

// ScatterToFirstMax for window rows x cols at (rows.begin, cols.begin): 2x2 and 3x3 windows
// through their compile-time forms.
template <size_t kVecs, bool kDirect>
HWY_INLINE void ScatterToFirstMax(const Pool2dProblem& p, const BwdBand& b, const PoolSpan& rows,
                                  const PoolSpan& cols, const VF (&g)[kVecs], int64_t c0, MF last) {
  const int64_t h = rows.end - rows.begin, w = cols.end - cols.begin;
  if (h == 3 && w == 3) {
    return ScatterToFirstMax<kVecs, kDirect, 3, 3>(p, b, rows.begin, h, w, cols.begin, g, c0, last);
  }
  if (h == 2 && w == 2) {
    return ScatterToFirstMax<kVecs, kDirect, 2, 2>(p, b, rows.begin, h, w, cols.begin, g, c0, last);
  }
  ScatterToFirstMax<kVecs, kDirect>(p, b, rows.begin, h, w, cols.begin, g, c0, last);
}

// Adds window (oh, ow)'s gradient to the band's rows, channels of one step at c0. kDirect: no other
// window touches these elements (stride >= window), so they are written as +0 + term, the
// reference's bits, without reading them back. kNaNFree: the window's rows hold no NaN (NaNRows):
// max pooling scatters through ScatterToFirstMax.
template <bool kMax, size_t kVecs, bool kDirect = false, bool kNaNFree = false>
HWY_INLINE void AddWindow(const Pool2dProblem& p, const BwdBand& b, const PoolSpan& rows,
                          const PoolSpan& cols, const float* dy0, int64_t c0, MF last) {
  const DF d;
  const int64_t width = cols.end - cols.begin;
  VF g[kVecs];
  LoadVecs<kVecs>(dy0 + c0, last, g);
  if constexpr (kMax && kNaNFree) {
    return ScatterToFirstMax<kVecs, kDirect>(p, b, rows, cols, g, c0, last);
  }
  VF idx[kVecs];
  if constexpr (kMax) {
    VF unused[kVecs];
    const float* x0 = b.x_image + (rows.begin * p.iw + cols.begin) * p.c + c0;
    WindowMax<kVecs, true>({x0, rows.end - rows.begin, width, p.c, p.iw * p.c}, last, unused, idx);
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
        ZeroVecs(v);
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

// AddWindowWide's first half for max pooling: the selected value (share) and its row-major
// position in the window (index) of every channel of the band, one window element at a time.
// Per lane, the steps of WindowMax.
HWY_INLINE void WideSelectMax(const Pool2dProblem& p, const BwdBand& b, const PoolSpan& rows,
                              const PoolSpan& cols, float* HWY_RESTRICT share,
                              float* HWY_RESTRICT index) {
  const DF d;
  const int64_t width = cols.end - cols.begin;
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
          ZeroVecs(id);
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
}

// AddWindowWide's first half for average pooling: dy / divisor of every channel of the band.
HWY_INLINE void WideShareAvg(const Pool2dProblem& p, const BwdBand& b, const PoolSpan& rows,
                             const PoolSpan& cols, const float* dy0, float* HWY_RESTRICT share) {
  const VF div = hn::Set(DF(), PoolDivisor(p, rows, cols));
  ForEachChannelStep(b.c_begin, b.c_end, [&]<size_t kVecs>(int64_t c0, MF last) {
    VF g[kVecs];
    LoadVecs<kVecs>(dy0 + c0, last, g);
    HWY_UNROLL(16)
    for (size_t j = 0; j < kVecs; ++j) g[j] = hn::Div(g[j], div);
    StoreVecs<kVecs>(g, last, share + (c0 - b.c_begin));
  });
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
    WideSelectMax(p, b, rows, cols, share, index);
  } else {
    WideShareAvg(p, b, rows, cols, dy0, share);
  }
  const int64_t h_begin = std::max(rows.begin, b.r0), h_end = std::min(rows.end, b.r1);
  for (int64_t ih = h_begin; ih < h_end; ++ih) {
    float* at = b.AccRow(ih) + cols.begin * b.acc_pixel;
    float k = static_cast<float>((ih - rows.begin) * width);
    for (int64_t i = 0; i < width; ++i, k += 1.0f, at += b.acc_pixel) {
      ForEachChannelStep(b.c_begin, b.c_end, [&]<size_t kVecs>(int64_t c0, MF last) {
        VF v[kVecs], g[kVecs];
        if constexpr (kDirect) {
          ZeroVecs(v);
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

// AddWindow for one step of channels, as ForEachChannelStep's callee. Its call operator is
// HWY_INLINE (a lambda's could not be), so that in the full steps the mask is a constant and the
// loads and stores unmasked: left to GCC's cloning (IPA-CP), the full-step clones were dropped
// once pool2d_bwd.cc lost the gather's code from its growth budget (band max k3 s2: 13 -> 19 ms).
template <bool kMax, bool kDirect>
struct AddWindowStep {
  const Pool2dProblem& p;
  const BwdBand& b;
  const PoolSpan& rows;
  const PoolSpan& cols;
  const float* dy0;
  bool nan_free;  // the window rows hold no NaN (max pooling only)

  template <size_t kVecs>
  HWY_INLINE void operator()(int64_t c0, MF last) const {
    if (nan_free) return AddWindow<kMax, kVecs, kDirect, true>(p, b, rows, cols, dy0, c0, last);
    AddWindow<kMax, kVecs, kDirect>(p, b, rows, cols, dy0, c0, last);
  }
};

// Every window of output row oh (rows: its span) added to the band's rows, in ow order: the
// pixel-major order for a block wider than kWideC, else a step of channels at a time. nan_free:
// the window rows hold no NaN (max pooling only). Max pooling over NaN-free rows whose windows
// overlap along W goes a step at a time whatever the block (ScatterToFirstMax in registers; the
// next window rereads the pixels from L1): YOLOv3's SPP 5x5/1 over 19x19x512 at batch 32 1.7x;
// one window per row (global pooling) keeps the pixel-major order (0.6x step by step).
template <bool kMax, bool kDirect>
HWY_INLINE void AddWindowRow(const Pool2dProblem& p, const BwdBand& b, const PoolSpan& rows,
                             int64_t oh, bool nan_free) {
  const float* dy_row = b.dy_image + oh * p.ow * p.c;
  const bool overlap = p.stride_w < p.kw && p.ow > 1;
  const bool pixel_major = b.block() > kWideC && !(kMax && nan_free && overlap);
  for (int64_t ow = 0; ow < p.ow; ++ow) {
    const PoolSpan cols = PoolCols(p, ow);
    if (pixel_major) {
      AddWindowWide<kMax, kDirect>(p, b, rows, cols, dy_row + ow * p.c);
      continue;
    }
    ForEachChannelStep(b.c_begin, b.c_end,
                       AddWindowStep<kMax, kDirect>{p, b, rows, cols, dy_row + ow * p.c, nan_free});
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#endif  // CONVKIT_HIGHWAY_POOL2D_BWD_INL_H_ toggle
