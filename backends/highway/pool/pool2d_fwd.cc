// Pooling forward, max and average: one output row (n, oh) per work item, vectorised along C.
// Output elements are independent, so any split over threads gives the same bits. Three variants,
// chosen by the forward list in pool2d.cpp: rows and stream (the same row kernel, with plain or
// streaming stores) and wide (C > kWideC: each window reduced in pixel-major order).
//
// Per output row of rows and stream: the windows wholly inside the input along W go kP at a time
// (PoolWindows: kP x kVecs independent chains, so that a C of one vector is not latency-bound), or
// at stride 1 as one flat sequence of (ow, c) (no lane wasted on small C); clipped windows one at a
// time. Max pooling selects with one max instruction per element (MaxOrKeep) unless the window rows
// may hold a NaN (NaNRows scans each input row once per thread), where WindowMax's exact rule takes
// over.
//
// Compiled once per Highway target through foreach_target.h (hwy/examples/skeleton.cc).
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backends/highway/common/parallel.hpp"
#include "backends/highway/pool/pool2d.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/highway/pool/pool2d_fwd.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must follow foreach_target.h: re-included once per target.
#include "backends/highway/pool/pool2d-inl.h"
#include "hwy/cache_control.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {
namespace {

// With fewer output rows (N * OH) than threads, as a global pool at batch 1 has (one row), the
// rows variants would leave threads idle: each row's channels are then cut into one chunk of
// whole vectors per thread (only the last chunk's last vector is masked). Every output element
// still takes the same steps in the same order, so the bits do not depend on the thread count.
ChannelChunks ChannelChunksFor(const Pool2dProblem& p, int threads) {
  const bool idle_threads = threads > 1 && p.n * p.oh < threads;
  return SplitChannels(p.c, static_cast<int64_t>(hn::Lanes(DF())), idle_threads ? threads : 1);
}

// Average pooling's partial sums: window rows are summed in groups of at most this many
// elements (at least one row), each from +0, and the groups then added in order.
constexpr int64_t kSumGroup = 64;

// The rows per group of a window `cols` wide (all of them for max pooling and for windows of one
// group: no division on the path of the small windows, called per window and channel step).
HWY_INLINE int64_t SumGroupRows(bool max, int64_t rows, int64_t cols) {
  if (max || rows * cols <= kSumGroup) return rows;
  return std::max<int64_t>(1, kSumGroup / std::max<int64_t>(cols, 1));
}

// Elements of a window row that AccumulateWide takes per load and store of the sums, for pixels of
// at most kWideRunC channels. Wider pixels take two at a time where x fits the threads' L2
// (kWideL2Bytes each), else one: the run's reads of a channel step from several pixels, kWideRun
// streams at once, made 14x14x672, 7x7x1152 and 7x7x2048 global pools 1.1-1.25x slower; two
// streams made them (and 7x7x960, 7x7x1280, 8x7x7x1280, 4x14x14x512) 1.11-1.22x faster than one,
// but from L3 (32x7x7x1024, 32x7x7x2048: 6-13 MB) 0.92-0.96x (2 threads, libraries alternated).
constexpr int64_t kWideRun = 4;
constexpr int64_t kWideRunC = 256;
constexpr int64_t kWideL2Bytes = int64_t{1} << 20;

// AccumulateWide's run for pixels of more than kWideRunC channels (see kWideRun).
int64_t WideRun(const Pool2dProblem& p, int threads) {
  const int64_t x_bytes = p.n * p.ih * p.iw * p.c * static_cast<int64_t>(sizeof(float));
  return x_bytes <= threads * kWideL2Bytes ? 2 : 1;
}

// Window rows [h0, h1) of w, channels [b0, b1), into `sum` (b0 at sum[0]) in pixel-major order:
// for each element in row-major order, every channel of the block. The rows' first element
// starts the sum (max keeps it; a sum starts from +0 plus it, as the reference's). kRun elements
// of a row go through the sums' registers between one load and one store of them (the same steps
// per lane): a load and a store per element cost a 28x28x240 global average pool 7.5 us against
// oneDNN's 4.6 (at kWideRun: 5.8), a 56x56x256 3x3/2 one 41 us (32; oneDNN 26).
template <bool kMax, int64_t kRun>
HWY_INLINE void AccumulateWideRuns(const WindowAt& w, int64_t b0, int64_t b1, int64_t h0,
                                   int64_t h1, float* sum) {
  const DF d;
  for (int64_t h = h0; h < h1; ++h) {
    for (int64_t i = 0; i < w.cols; i += kRun) {
      const float* xp = w.x0 + h * w.row_stride + i * w.c;
      const int64_t run = kRun == 1 ? 1 : std::min(kRun, w.cols - i);
      const bool first = h == h0 && i == 0;
      ForEachChannelStep(b0, b1, [&]<size_t kVecs>(int64_t c0, MF last) {
        VF a[kVecs];
        int64_t k = 0;
        if (first) {
          LoadVecs<kVecs>(xp + c0, last, a);
          if constexpr (!kMax) {
            HWY_UNROLL(16)
            for (size_t j = 0; j < kVecs; ++j) a[j] = hn::Add(hn::Zero(d), a[j]);
          }
          k = 1;
        } else {
          LoadVecs<kVecs>(sum + (c0 - b0), last, a);
        }
        for (; k < run; ++k) {
          VF v[kVecs];
          LoadVecs<kVecs>(xp + k * w.c + c0, last, v);
          HWY_UNROLL(16)
          for (size_t j = 0; j < kVecs; ++j) {
            a[j] = kMax ? hn::IfThenElse(MaxTakes(a[j], v[j]), v[j], a[j]) : hn::Add(a[j], v[j]);
          }
        }
        StoreVecs<kVecs>(a, last, sum + (c0 - b0));
      });
    }
  }
}

// AccumulateWideRuns in runs of kWideRun elements for pixels of at most kWideRunC channels, else
// of `wide_run` (WideRun: 1 or 2).
template <bool kMax>
HWY_INLINE void AccumulateWide(const WindowAt& w, int64_t b0, int64_t b1, int64_t h0, int64_t h1,
                               int64_t wide_run, float* sum) {
  if (w.c <= kWideRunC) return AccumulateWideRuns<kMax, kWideRun>(w, b0, b1, h0, h1, sum);
  if (wide_run == 2) return AccumulateWideRuns<kMax, 2>(w, b0, b1, h0, h1, sum);
  AccumulateWideRuns<kMax, 1>(w, b0, b1, h0, h1, sum);
}

// The groups of rows after the first (from `group` on) of w, channels [b0, b1), each summed on
// its own and added to acc.
template <bool kMax>
HWY_NOINLINE void AddGroupsWide(const WindowAt& w, int64_t b0, int64_t b1, int64_t group,
                                int64_t wide_run, float* acc) {
  HWY_ALIGN float part[kWideBlock];
  for (int64_t h0 = group; h0 < w.rows; h0 += group) {
    AccumulateWide<kMax>(w, b0, b1, h0, std::min(w.rows, h0 + group), wide_run, part);
    ForEachChannelStep(b0, b1, [&]<size_t kVecs>(int64_t c0, MF last) {
      VF a[kVecs], v[kVecs];
      LoadVecs<kVecs>(acc + (c0 - b0), last, a);
      LoadVecs<kVecs>(part + (c0 - b0), last, v);
      HWY_UNROLL(16)
      for (size_t j = 0; j < kVecs; ++j) a[j] = hn::Add(a[j], v[j]);
      StoreVecs<kVecs>(a, last, acc + (c0 - b0));
    });
  }
}

// The window w (at channel 0) into y0, in pixel-major order, accumulating in an L1 buffer;
// average pooling over more than one group of rows (SumGroupRows) sums each later group in a
// second buffer, then adds it. Per lane, the same steps in the same order as PoolWindows, hence
// the same bits.
template <bool kMax>
void PoolFwdWindowWide(const WindowAt& w, float divisor, ChannelRange channels, int64_t wide_run,
                       float* y0) {
  const DF d;
  HWY_ALIGN float acc[kWideBlock];
  const int64_t group = SumGroupRows(kMax, w.rows, w.cols);
  for (int64_t b0 = channels.begin; b0 < channels.end; b0 += kWideBlock) {
    const int64_t b1 = std::min(channels.end, b0 + kWideBlock);
    AccumulateWide<kMax>(w, b0, b1, 0, std::min(w.rows, group), wide_run, acc);
    if (group < w.rows) AddGroupsWide<kMax>(w, b0, b1, group, wide_run, acc);
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

// Windows per call of PoolWindows: kP x kVecs independent chains hide the latency of max (2
// cycles) or add (3) behind the loads, also for a C of one vector (5, 7, 16 channels).
template <size_t kVecs>
constexpr size_t PixelsFor() {
  return kVecs >= 4 ? 2 : 8 / kVecs;
}

// Rows [h0, h1) of the windows at x0[0..kP) (cols wide, one step of kVecs channel vectors) into
// a: max selects (element 0 is a's start), average adds.
template <bool kMax, size_t kP, size_t kVecs>
HWY_INLINE void AccumulateWindows(const float* const (&x0)[kP], int64_t h0, int64_t h1,
                                  int64_t cols, int64_t c, int64_t row_stride, MF last,
                                  VF (&a)[kP][kVecs]) {
  for (int64_t h = h0; h < h1; ++h) {
    for (int64_t i = (kMax && h == 0) ? 1 : 0; i < cols; ++i) {
      const int64_t at = h * row_stride + i * c;
      HWY_UNROLL(16)
      for (size_t q = 0; q < kP; ++q) {
        VF v[kVecs];
        LoadVecs<kVecs>(x0[q] + at, last, v);
        HWY_UNROLL(16)
        for (size_t j = 0; j < kVecs; ++j) {
          a[q][j] = kMax ? MaxOrKeep(a[q][j], v[j]) : hn::Add(a[q][j], v[j]);
        }
      }
    }
  }
}

// The averages (acc divided by each window's divisor) or maxima of windows [0, valid) into y0.
template <bool kMax, bool kStream, size_t kP, size_t kVecs>
HWY_INLINE void StoreWindows(VF (&acc)[kP][kVecs], float* const (&y0)[kP], size_t valid,
                             const float (&divisor)[kP], MF last) {
  const DF d;
  HWY_UNROLL(16)
  for (size_t q = 0; q < kP; ++q) {
    if (q >= valid) break;
    if constexpr (!kMax) {
      const VF div = hn::Set(d, divisor[q]);
      HWY_UNROLL(16)
      for (size_t j = 0; j < kVecs; ++j) acc[q][j] = hn::Div(acc[q][j], div);
    }
    StoreOrStreamVecs<kStream, kVecs>(acc[q], last, y0[q]);
  }
}

// PoolWindows' average of one window over more than one group of rows (SumGroupRows): the first
// group summed from +0, each later one on its own (from +0), then added, so the rounding error
// grows with the group and the group count, not the window (a squeeze-excitation block's global
// pool of 160 x 160 pixels: 1e-4 -> 4e-7 of the mean against exact sums; ONNX Runtime sums in a
// tree). Out of line and given values, not the caller's arrays: the small windows' loop keeps
// its pointers and sums in registers. Windows this large come one per call (a global pool's row).
template <bool kStream, size_t kVecs>
HWY_NOINLINE void PoolWindowGrouped(const float* x, float* y, int64_t rows, int64_t group,
                                    int64_t cols, int64_t c, int64_t row_stride, float divisor,
                                    MF last) {
  const float* const x0[1] = {x};
  float* const y0[1] = {y};
  const float div[1] = {divisor};
  VF acc[1][kVecs];
  ZeroVecs(acc[0]);
  AccumulateWindows<false>(x0, 0, group, cols, c, row_stride, last, acc);
  for (int64_t h0 = group; h0 < rows; h0 += group) {
    VF part[1][kVecs];
    ZeroVecs(part[0]);
    AccumulateWindows<false>(x0, h0, std::min(rows, h0 + group), cols, c, row_stride, last, part);
    HWY_UNROLL(16)
    for (size_t j = 0; j < kVecs; ++j) acc[0][j] = hn::Add(acc[0][j], part[0][j]);
  }
  StoreWindows<false, kStream>(acc, y0, 1, div, last);
}

// One step of channels (kVecs vectors, at c0) of the windows ow[0..kP) of an output row, all of the
// same clipped extents (rows x cols, starting at x0[q]), into y0[q] (only for q < valid: the other
// slots repeat the last window to fill the tile). Max: the NaN-free selection (MaxOrKeep); the
// caller takes WindowMax for rows that may hold a NaN. Average: row-major order in groups of rows
// (SumGroupRows), each from +0 as the reference starts, then a division
// (not a multiplication by the reciprocal: the reference's bits).
template <bool kMax, bool kStream, size_t kP, size_t kVecs>
HWY_INLINE void PoolWindows(const float* const (&x0)[kP], float* const (&y0)[kP], size_t valid,
                            int64_t rows, int64_t cols, int64_t c, int64_t row_stride,
                            const float (&divisor)[kP], MF last) {
  if constexpr (!kMax && kP == 1) {
    const int64_t group = SumGroupRows(false, rows, cols);
    if (group < rows && valid == 1) {
      return PoolWindowGrouped<kStream, kVecs>(x0[0], y0[0], rows, group, cols, c, row_stride,
                                               divisor[0], last);
    }
  }
  VF acc[kP][kVecs];
  HWY_UNROLL(16)
  for (size_t q = 0; q < kP; ++q) {
    if constexpr (kMax) {
      LoadVecs<kVecs>(x0[q], last, acc[q]);  // element 0: kept unless a later one is greater
    } else {
      ZeroVecs(acc[q]);  // from +0, as the reference (a window of -0 sums to +0)
    }
  }
  AccumulateWindows<kMax>(x0, 0, rows, cols, c, row_stride, last, acc);
  StoreWindows<kMax, kStream>(acc, y0, valid, divisor, last);
}

// One step of channels of window ow with WindowMax's exact selection (rows that may hold a NaN).
template <bool kStream, size_t kVecs>
HWY_INLINE void PoolWindowExactMax(const WindowAt& w, MF last, float* y0) {
  VF v[kVecs], unused[kVecs];
  WindowMax<kVecs, false>(w, last, v, unused);
  StoreOrStreamVecs<kStream, kVecs>(v, last, y0);
}

// The full windows ow .. ow + kP - 1 of an output row (rows: the row's window span, x_rows its
// first input row), channels of one step at c0.
template <bool kMax, bool kStream, size_t kP, size_t kVecs>
HWY_INLINE void PoolFullWindows(const Pool2dProblem& p, const PoolSpan& rows, const float* x_rows,
                                float* y_row, int64_t ow, int64_t c0, int64_t height, MF last) {
  const float* x0[kP];
  float* y0[kP];
  float divisor[kP];
  // Windows wholly inside the input along W all hold KW columns: one divisor for the row.
  const float row_divisor = kMax ? 1.0f : PoolDivisor(p, rows, PoolCols(p, ow));
  HWY_UNROLL(16)
  for (size_t q = 0; q < kP; ++q) {
    const int64_t o = ow + static_cast<int64_t>(q);
    x0[q] = x_rows + (o * p.stride_w - p.pad.left) * p.c + c0;
    y0[q] = y_row + o * p.c + c0;
    divisor[q] = row_divisor;
  }
  PoolWindows<kMax, kStream, kP, kVecs>(x0, y0, kP, height, p.kw, p.c, p.iw * p.c, divisor, last);
}

// The full windows [ow, end), fewer than 2 * kP of them: a tile of kP if they fill one, then the
// rest in tiles of kP / 2, ... 1.
template <bool kMax, bool kStream, size_t kP, size_t kVecs>
HWY_INLINE void PoolFullWindowsTail(const Pool2dProblem& p, const PoolSpan& rows,
                                    const float* x_rows, float* y_row, int64_t ow, int64_t end,
                                    int64_t c0, int64_t height, MF last) {
  if (ow + static_cast<int64_t>(kP) <= end) {
    PoolFullWindows<kMax, kStream, kP, kVecs>(p, rows, x_rows, y_row, ow, c0, height, last);
    ow += static_cast<int64_t>(kP);
  }
  if constexpr (kP > 1) {
    PoolFullWindowsTail<kMax, kStream, kP / 2, kVecs>(p, rows, x_rows, y_row, ow, end, c0, height,
                                                      last);
  }
}

// The output columns whose windows lie wholly inside the input along W: [begin, end).
struct FullCols {
  int64_t begin, end;
};

FullCols FullColsOf(const Pool2dProblem& p) {
  // ceil(pad_left / stride_w) without pad_left + stride_w - 1, which a huge stride overflows.
  const int64_t begin =
      std::min(p.ow, p.pad.left / p.stride_w + (p.pad.left % p.stride_w != 0 ? 1 : 0));
  const int64_t last = p.iw + p.pad.left - p.kw;  // the start of the last full window, padded
  const int64_t end = last < 0 ? 0 : std::min(p.ow, last / p.stride_w + 1);
  return {begin, std::max(begin, end)};
}

// The full windows of an output row at stride 1 (rows: the row's window span, x_rows its first
// input row): their outputs, (ow, c) flattened, read x at the same flat offsets shifted by i * C,
// so they go as one sequence of vectors whatever C (5 or 33 channels waste no lanes).
template <bool kMax, bool kStream>
HWY_INLINE void PoolFwdFlat(const Pool2dProblem& p, const PoolSpan& rows, const FullCols& full,
                            const float* x_rows, float* y_row) {
  const int64_t height = rows.end - rows.begin;
  const float* x_flat = x_rows + (full.begin - p.pad.left) * p.c;
  float* y_flat = y_row + full.begin * p.c;
  const float divisor[1] = {kMax ? 1.0f : PoolDivisor(p, rows, PoolCols(p, full.begin))};
  ForEachChannelStep(0, (full.end - full.begin) * p.c, [&]<size_t kVecs>(int64_t j, MF last) {
    const float* x0[1] = {x_flat + j};
    float* const y0[1] = {y_flat + j};
    PoolWindows<kMax, kStream, 1, kVecs>(x0, y0, 1, height, p.kw, p.c, p.iw * p.c, divisor, last);
  });
}

// PoolFwdAverageSeparable's column sums of a row (IW x C floats) on the stack.
constexpr int64_t kColumnSumFloats = 4096;

// Whether an output row goes through PoolFwdAverageSeparable: average pooling over all channels,
// at most half a vector of them (the windows' loads would leave half the lanes idle; at 16
// channels of 16 lanes the extra pass cost more than it saved: 18x18x16 3x3/2 8.0 -> 10.0 us),
// strided along W (stride 1 has PoolFwdFlat), windows of two rows or more and of one group of
// rows (SumGroupRows), IW x C within kColumnSumFloats.
HWY_INLINE bool AverageRowSeparable(const Pool2dProblem& p, int64_t height, bool all_channels) {
  return all_channels && p.stride_w > 1 && 2 * p.c <= static_cast<int64_t>(hn::Lanes(DF())) &&
         height >= 2 && height * p.kw <= kSumGroup && p.iw * p.c <= kColumnSumFloats;
}

// Average pooling's output row over a channel count of at most half a vector, in two passes: the
// window rows summed per input column as one flat sequence of vectors (no lane idle at 5 or 7
// channels), then each window's columns of those sums. Per element the sum of the same terms as
// PoolWindows', grouped by column (exact on integer data, DESIGN §4); the same division. 32x32x5
// 5x5/3 at N = 32: 21 -> 14 us, at N = 1 1.1 -> 0.8 us (2 threads).
HWY_INLINE void PoolFwdAverageSeparable(const Pool2dProblem& p, const PoolSpan& rows,
                                        const float* x_rows, float* y_row) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d)), count = p.iw * p.c;
  const int64_t height = rows.end - rows.begin, row_stride = p.iw * p.c;
  HWY_ALIGN float sums[kColumnSumFloats];
  for (int64_t i = 0; i < count; i += lanes) {
    const MF m = hn::FirstN(d, static_cast<size_t>(std::min(lanes, count - i)));
    VF s = hn::Zero(d);  // from +0, as the reference
    for (int64_t h = 0; h < height; ++h) {
      s = hn::Add(s, hn::MaskedLoad(m, d, x_rows + h * row_stride + i));
    }
    hn::Store(s, d, sums + i);  // whole vectors: i + lanes <= kColumnSumFloats
  }
  const MF last = hn::FirstN(d, static_cast<size_t>(p.c));
  for (int64_t ow = 0; ow < p.ow; ++ow) {
    const PoolSpan cols = PoolCols(p, ow);
    VF s = hn::Zero(d);
    for (int64_t iw = cols.begin; iw < cols.end; ++iw) {
      s = hn::Add(s, hn::MaskedLoad(last, d, sums + iw * p.c));
    }
    s = hn::Div(s, hn::Set(d, PoolDivisor(p, rows, cols)));
    hn::BlendedStore(s, last, d, y_row + ow * p.c);
  }
}

// Output row oh of image n: y(n, oh, ow, c) for every ow and c. With kStream, y is vector-aligned,
// C a multiple of the vector length, and every store a streaming store. `exact`: the window rows
// may hold a NaN, so max pooling takes WindowMax's selection.
template <bool kMax, bool kStream>
void PoolFwdRow(const Pool2dProblem& p, const FullCols& full, const float* x, float* y, int64_t n,
                int64_t oh, bool exact, ChannelRange channels) {
  const PoolSpan rows = PoolRows(p, oh);
  const float* image = x + n * p.ih * p.iw * p.c;
  float* y_row = y + (n * p.oh + oh) * p.ow * p.c;
  const float* x_rows = image + rows.begin * p.iw * p.c;
  const int64_t height = rows.end - rows.begin;
  FullCols per_pixel = full;
  const bool all_channels = channels.begin == 0 && channels.end == p.c;
  if constexpr (!kMax && !kStream) {
    if (AverageRowSeparable(p, height, all_channels)) {
      return PoolFwdAverageSeparable(p, rows, x_rows, y_row);
    }
  }
  if (p.stride_w == 1 && !(kMax && exact) && full.begin < full.end && all_channels) {
    PoolFwdFlat<kMax, kStream>(p, rows, full, x_rows, y_row);
    per_pixel = {full.begin, full.begin};
  }
  ForEachChannelStep(channels.begin, channels.end, [&]<size_t kVecs>(int64_t c0, MF last) {
    constexpr size_t kP = PixelsFor<kVecs>();
    // One window, clipped or not.
    const auto single = [&](int64_t ow) {
      const PoolSpan cols = PoolCols(p, ow);
      const float* x0 = x_rows + cols.begin * p.c + c0;
      float* y0 = y_row + ow * p.c + c0;
      if (kMax && exact) {
        return PoolWindowExactMax<kStream, kVecs>(
            {x0, height, cols.end - cols.begin, p.c, p.iw * p.c}, last, y0);
      }
      const float* x1[1] = {x0};
      float* const y1[1] = {y0};
      const float divisor[1] = {kMax ? 1.0f : PoolDivisor(p, rows, cols)};
      PoolWindows<kMax, kStream, 1, kVecs>(x1, y1, 1, height, cols.end - cols.begin, p.c,
                                           p.iw * p.c, divisor, last);
    };
    for (int64_t ow = 0; ow < full.begin; ++ow) single(ow);
    // Average windows that do not overlap along W, with C a whole step of vectors, go one at a
    // time too: kVecs chains already hide the add latency, and the kP tile's pointer and divisor
    // arrays cost more than they hide (VGG pool1 k2 s2, C 64: 114 -> 146 GB/s, 2 threads).
    if ((kMax && exact) || (!kMax && p.stride_w >= p.kw && kVecs >= 4)) {
      for (int64_t ow = full.begin; ow < full.end; ++ow) single(ow);
    } else {
      // Full windows, kP at a time, then the rest in tiles of kP / 2, kP / 4, ... (a small
      // image's row of 1-3 windows in a tile of 8 would compute 5-7 repeats: at N = 32 on
      // 4x4 and 5x5 inputs that made average pooling 0.7x oneDNN's speed).
      int64_t ow = per_pixel.begin;
      for (; ow + static_cast<int64_t>(kP) <= per_pixel.end; ow += kP) {
        PoolFullWindows<kMax, kStream, kP, kVecs>(p, rows, x_rows, y_row, ow, c0, height, last);
      }
      PoolFullWindowsTail<kMax, kStream, kP / 2, kVecs>(p, rows, x_rows, y_row, ow, per_pixel.end,
                                                        c0, height, last);
    }
    for (int64_t ow = full.end; ow < p.ow; ++ow) single(ow);
  });
  if constexpr (kStream) hwy::FlushStream();  // order the streaming stores before the barrier
}

// Output rows [t0, t1) (t = n * OH + oh), in order: each input row is scanned for NaN once.
template <bool kMax, bool kStream>
void PoolFwdRange(const Pool2dProblem& p, const float* x, float* y, int64_t t0, int64_t t1) {
  if (t0 >= t1) return;
  const FullCols full = FullColsOf(p);
  const int64_t image_size = p.ih * p.iw * p.c;
  // The NaN scan reads x once more; it pays only where windows overlap (each row is read by several
  // windows: 2.25x at k3 s2). Without overlap (k2 s2) every window takes the exact selection
  // instead; the wide variant has its own (scanning there cost 15-30 %: VGG pool1, the global
  // pools).
  const bool scan = p.stride_h < p.kh || p.stride_w < p.kw;
  int64_t n = t0 / p.oh;
  NaNRows nan_rows(x + n * image_size, p.iw * p.c);
  for (int64_t t = t0; t < t1; ++t) {
    if (t / p.oh != n) {
      n = t / p.oh;
      nan_rows = NaNRows(x + n * image_size, p.iw * p.c);
    }
    const int64_t oh = t % p.oh;
    bool exact = kMax && !scan;
    if (kMax && scan) {
      const PoolSpan rows = PoolRows(p, oh);
      exact = nan_rows.Any(rows.begin, rows.end);
    } else if (kStream && oh + 1 < p.oh) {  // the rows the next output row adds
      const int64_t begin = std::max(PoolRows(p, oh).end, PoolRows(p, oh + 1).begin);
      const int64_t end = PoolRows(p, oh + 1).end;
      if (begin < end) ReadAhead(x + (n * p.ih + begin) * p.iw * p.c, (end - begin) * p.iw * p.c);
    }
    PoolFwdRow<kMax, kStream>(p, full, x, y, n, oh, exact, {0, p.c});
  }
}

// Output row `row` (n * OH + oh), channels `ch`: PoolFwdRange's NaN rule for these channels only.
template <bool kMax, bool kStream>
void PoolFwdRowChunk(const Pool2dProblem& p, const FullCols& full, const float* x, float* y,
                     int64_t row, ChannelRange ch) {
  const int64_t n = row / p.oh, oh = row % p.oh;
  bool exact = kMax;
  if (kMax && (p.stride_h < p.kh || p.stride_w < p.kw)) {
    const PoolSpan rows = PoolRows(p, oh);
    exact = ChannelsMayHoldNaN(x + (n * p.ih + rows.begin) * p.iw * p.c,
                               (rows.end - rows.begin) * p.iw, p.c, ch);
  }
  PoolFwdRow<kMax, kStream>(p, full, x, y, n, oh, exact, ch);
}

// The rows variant (kStream false) and the stream variant's kernel: each thread takes consecutive
// output rows, so the input row two windows share (stride < window) is still in its cache and
// scanned for NaN once; with channel chunks, each chunk scans its own channels.
template <bool kMax, bool kStream>
void PoolFwdRows(const Pool2dArgs& a) {
  const Pool2dProblem& p = *a.p;
  const ChannelChunks chunks = ChannelChunksFor(p, a.threads);
  if (chunks.count > 1) {
    const FullCols full = FullColsOf(p);
    ParallelFor(a.threads, p.n * p.oh * chunks.count, [&](int64_t t) {
      PoolFwdRowChunk<kMax, kStream>(p, full, a.x, a.out, t / chunks.count,
                                     chunks.Chunk(t % chunks.count, p.c));
    });  // PoolFwdRow flushes its streaming stores
    return;
  }
  ParallelRanges(a.threads, p.n * p.oh, [&](int64_t t0, int64_t t1) {
    PoolFwdRange<kMax, kStream>(p, a.x, a.out, t0, t1);
  });
}

// The wide variant: output row oh of image n, each window in pixel-major order.
template <bool kMax>
void PoolFwdWideRow(const Pool2dProblem& p, const float* x, float* y, int64_t n, int64_t oh,
                    ChannelRange channels, int64_t wide_run) {
  const PoolSpan rows = PoolRows(p, oh);
  const float* x_rows = x + (n * p.ih + rows.begin) * p.iw * p.c;
  float* y_row = y + (n * p.oh + oh) * p.ow * p.c;
  for (int64_t ow = 0; ow < p.ow; ++ow) {
    const PoolSpan cols = PoolCols(p, ow);
    const WindowAt w{x_rows + cols.begin * p.c, rows.end - rows.begin, cols.end - cols.begin, p.c,
                     p.iw * p.c};
    PoolFwdWindowWide<kMax>(w, kMax ? 1.0f : PoolDivisor(p, rows, cols), channels, wide_run,
                            y_row + ow * p.c);
  }
}

template <bool kMax>
void PoolFwdWide(const Pool2dArgs& a) {
  const Pool2dProblem& p = *a.p;
  const ChannelChunks chunks = ChannelChunksFor(p, a.threads);
  const int64_t wide_run = WideRun(p, a.threads);
  ParallelFor(a.threads, p.n * p.oh * chunks.count, [&](int64_t t) {
    const int64_t row = t / chunks.count;
    PoolFwdWideRow<kMax>(p, a.x, a.out, row / p.oh, row % p.oh, chunks.Chunk(t % chunks.count, p.c),
                         wide_run);
  });
}

// The stream variant (C a whole number of vectors, as the list checked). Streaming stores need a
// vector-aligned y, which only the call knows: a y that is not (a caller's own buffer) is written
// as the list's next variants would write it.
template <bool kMax>
void PoolFwdStream(const Pool2dArgs& a) {
  if (VectorAligned(a.out)) return PoolFwdRows<kMax, true>(a);
  if (a.p->c > kWideC) return PoolFwdWide<kMax>(a);
  PoolFwdRows<kMax, false>(a);
}

}  // namespace

Pool2dFwdKernels GetPool2dFwdKernels() {
  Pool2dFwdKernels k;
  k.stream = {&PoolFwdStream<true>, &PoolFwdStream<false>};
  k.wide = {&PoolFwdWide<true>, &PoolFwdWide<false>};
  k.rows = {&PoolFwdRows<true, false>, &PoolFwdRows<false, false>};
  k.lanes = static_cast<int64_t>(hn::Lanes(DF()));
  k.wide_c = kWideC;
  k.isa = hwy::TargetName(HWY_TARGET);
  return k;
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace convkit::internal::highway {

HWY_EXPORT(GetPool2dFwdKernels);

Pool2dFwdKernels ChosenPool2dFwdKernels() {
  Pool2dFwdKernels k = HWY_DYNAMIC_DISPATCH(GetPool2dFwdKernels)();
  k.separable = ChosenPool2dFwdSeparable();
  return k;
}

}  // namespace convkit::internal::highway
#endif  // HWY_ONCE
