// Depthwise forward convolution (groups == IC == OC): each output channel reads only its own input
// channel, so the kernel vectorises over channels. A tile is kRows output pixels x kVecs vectors of
// channels; per tap it loads one weight vector per channel vector and reuses it over the kRows
// pixels. Weights are HWIO {KH, KW, 1, C} as given: a tap's weights are already contiguous over C.
//
// Compiled once per Highway target through foreach_target.h (hwy/examples/skeleton.cc).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>

#include "backends/highway/common/parallel.hpp"
#include "backends/highway/common/scratch.hpp"
#include "backends/highway/conv/conv2d_fwd_kernel.hpp"
#include "backends/highway/conv/conv2d_fwd_tile.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/highway/conv/conv2d_fwd_depthwise.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must follow foreach_target.h: re-included once per target.
#include "backends/highway/conv/conv2d_fwd_epilogue-inl.h"
#include "hwy/cache_control.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {

// Internal linkage for everything but the exported entry point. The helpers share names with
// other kernels in this per-target namespace (RunAll in conv2d_fwd_igemm.cc, RowsFor and
// kMaxVecs in conv2d_igemm-inl.h) but not code: with external linkage the linker keeps one
// definition of each template instance for every .cc, a silent ODR violation that picks the
// wrong kernel wherever a call is not inlined (-O0 builds).
namespace {

// Tile shapes: kRows * kVecs accumulators, >= 8 to cover the FMA latency (4) x pipes (2) when C
// allows. Every FMA also needs an input load, so the kernel is load- or memory-bound anyway; the
// per-tile cost (pixel origins, one pointer per pixel and tap) is paid once per tile and shared by
// all its channel blocks (TileTaps).
#if HWY_TARGET == HWY_AVX3
// 32 zmm: 8 rows x 3 vectors (C >= 48) or 12 rows x 2 vectors (C = 32) use 24 accumulators,
// plus the weights and one input vector.
constexpr size_t kMaxVecs = 3;
constexpr size_t RowsFor(size_t vecs) { return vecs >= 3 ? 8 : 12; }
#elif HWY_TARGET == HWY_AVX2
// 16 ymm: 4 x 2 or 6 x 1 accumulators, plus weights and an input vector.
constexpr size_t kMaxVecs = 2;
constexpr size_t RowsFor(size_t vecs) { return vecs >= 2 ? 4 : 6; }
#else
constexpr size_t kMaxVecs = 2;
constexpr size_t RowsFor(size_t /*vecs*/) { return 4; }
#endif

// Kernels up to 7x7 get a per-tile tap table (kRows pointers per tap, <= 4.7 KiB of stack);
// larger ones are rare and run the same code through chunks of kMaxTaps taps.
constexpr int64_t kMaxTaps = 49;

// The taps of one tile that do not lie wholly in the padding, for taps [tap_begin, tap_end) of
// the kernel: weight row and, per pixel, the input pixel read (or `zeros`), at channel 0.
template <size_t kRows>
struct TileTaps {
  TileTaps(const Conv2dProblem& p, const PixelTile<kRows>& tile, const float* zeros,
           int64_t tap_begin, int64_t tap_end) {
    for (int64_t t = tap_begin; t < tap_end; ++t) {
      if (tile.Tap(t / p.kw, t % p.kw, zeros, xp[count])) w_row[count++] = t;
    }
  }
  int64_t count = 0;
  int64_t w_row[kMaxTaps];
  const float* xp[kMaxTaps][kRows];
};

// acc += the table's taps for channels [c0, c0 + cols).
template <size_t kRows, size_t kVecs>
HWY_INLINE void AccumulateTaps(const Conv2dFwdArgs& a, const TileTaps<kRows>& taps, int64_t c0,
                               MF last, VF (&acc)[kRows][kVecs]) {
  for (int64_t t = 0; t < taps.count; ++t) {
    VF wv[kVecs];
    LoadVecs<kVecs>(a.w.data + taps.w_row[t] * a.w.row_stride + c0, last, wv);
    HWY_UNROLL(16)
    for (size_t i = 0; i < kRows; ++i) {
      VF xv[kVecs];
      LoadVecs<kVecs>(taps.xp[t][i] + c0, last, xv);
      HWY_UNROLL(16)
      for (size_t j = 0; j < kVecs; ++j) acc[i][j] = hn::MulAdd(xv[j], wv[j], acc[i][j]);
    }
  }
}

// One block: the tile's pixels x channels [c0, c0 + cols). `taps` holds the first kMaxTaps taps
// (all of them up to 7x7); further chunks are built here.
template <size_t kRows, size_t kVecs>
void RunBlock(const Conv2dFwdArgs& a, const PixelTile<kRows>& tile, const TileTaps<kRows>& taps,
              int64_t c0, int64_t cols, int64_t m0) {
  const Conv2dProblem& p = *a.p;
  const DF d;
  const MF last = hn::FirstN(d, static_cast<size_t>(cols) - (kVecs - 1) * hn::Lanes(d));
  const int64_t m_end = p.n * p.oh * p.ow;
  const size_t rows = static_cast<size_t>(std::min<int64_t>(m_end - m0, kRows));
  float* y = a.y + m0 * p.oc + c0;
  const int64_t all_taps = p.kh * p.kw;

  VF acc[kRows][kVecs];  // in registers: StoreTile copies it for an out-of-line epilogue
  ZeroTile(acc);
  AccumulateTaps<kRows, kVecs>(a, taps, c0, last, acc);
  for (int64_t t0 = kMaxTaps; t0 < all_taps; t0 += kMaxTaps) {
    const TileTaps<kRows> chunk(p, tile, a.zeros, t0, std::min(all_taps, t0 + kMaxTaps));
    AccumulateTaps<kRows, kVecs>(a, chunk, c0, last, acc);
  }
  StoreTile<kRows, kVecs>(acc, rows, a.b != nullptr ? a.b + c0 : nullptr, &p.post_ops,
                          a.r != nullptr ? a.r + m0 * p.oc + c0 : nullptr, last, y, p.oc);
}

// RunBlock with as many vectors as `cols` channels need.
template <size_t kRows, size_t kVecs>
void RunBlockVecs(const Conv2dFwdArgs& a, const PixelTile<kRows>& tile, const TileTaps<kRows>& taps,
                  int64_t c0, int64_t cols, int64_t m0) {
  if constexpr (kVecs > 1) {
    if (cols <= static_cast<int64_t>((kVecs - 1) * hn::Lanes(DF()))) {
      return RunBlockVecs<kRows, kVecs - 1>(a, tile, taps, c0, cols, m0);
    }
  }
  RunBlock<kRows, kVecs>(a, tile, taps, c0, cols, m0);
}

// Work items are (pixel item, channel chunk) pairs, the chunks of one pixel item consecutive.
// Small images have few pixel items (a 7x7 layer has 7 rows: 4:3 between two threads), so with
// threads the channels are cut into chunks until every thread has kItemsPerThread items or
// more. Chunks are whole blocks, so no two threads write one block of y.
constexpr int64_t kItemsPerThread = 8;

ChannelChunks ChunksFor(const Conv2dFwdArgs& a, int64_t pixel_items, int64_t block_cols) {
  const int64_t wanted = a.threads > 1 && pixel_items > 0
                             ? (kItemsPerThread * a.threads + pixel_items - 1) / pixel_items
                             : 1;
  return SplitChannels(a.p->oc, block_cols, wanted);
}

// One tile of kRows pixels from m0, channels [c_begin, c_end): the tap table is built once.
template <size_t kVecs>
void RunPixels(const Conv2dFwdArgs& a, int64_t m0, int64_t c_begin, int64_t c_end) {
  constexpr size_t kRows = RowsFor(kVecs);
  const Conv2dProblem& p = *a.p;
  const int64_t block_cols = static_cast<int64_t>(kVecs * hn::Lanes(DF()));
  const PixelTile<kRows> tile(p, a.x, 0, m0);
  const TileTaps<kRows> taps(p, tile, a.zeros, 0, std::min(p.kh * p.kw, kMaxTaps));
  for (int64_t c0 = c_begin; c0 < c_end; c0 += block_cols) {
    RunBlockVecs<kRows, kVecs>(a, tile, taps, c0, std::min(block_cols, c_end - c0), m0);
  }
}

// Items are (tile of kRows pixels, channel chunk).
template <size_t kVecs>
void RunAll(const Conv2dFwdArgs& a) {
  constexpr int64_t kRows = static_cast<int64_t>(RowsFor(kVecs));
  const Conv2dProblem& p = *a.p;
  const int64_t tiles = (p.n * p.oh * p.ow + kRows - 1) / kRows;
  const ChannelChunks chunks = ChunksFor(a, tiles, static_cast<int64_t>(kVecs * hn::Lanes(DF())));
  ParallelFor(a.threads, tiles * chunks.count, [&](int64_t t) {
    const ChannelRange ch = chunks.Chunk(t % chunks.count, p.oc);
    RunPixels<kVecs>(a, t / chunks.count * kRows, ch.begin, ch.end);
  });
}

// Dense rows (stride_w of 1 or 2, KW of 3, 5 or 7): a tile is kRows (RowTile) consecutive pixels of
// one output row, which per kernel row read stride_w * (kRows - 1) + KW consecutive input pixels.
// Each is loaded once and feeds every pixel whose window covers it: for 3x3, 10 loads (stride 2:
// 17) instead of 24 per 8 pixels and kernel row, the bound of this load-heavy kernel. Columns in
// the padding (or past the row's end, for a short last tile) read as zero without a load. With
// dilation_w = 2 (stride 1), the tile's pixels are 2 columns apart, one sub-grid of the row: per
// kernel row they read kRows - 1 + KW input pixels 2 columns apart, the same pattern.
// MobileNetV3's dilated last stage at 33x33 (DeepLab, LR-ASPP): 5x5 over 960 and 672 channels
// 1.22x and 1.36x faster than through RunAll's tap tables, 3x3 over 480 1.14x. Not where x and y
// exceed L3 (65x65x960: 0.84x) nor at dilation 4 (65x65x256: 0.88x, every tile at the row's edges
// and a third of them short): each of the d sweeps of a row then reads it from further away.
#if HWY_TARGET == HWY_AVX3
// 8 x 2 accumulators + KW x 2 weights + 2 inputs <= 28 of 32 zmm; at stride 1 a block of one
// vector (16 channels or fewer, or the last 16 of 48, 80 ...) takes 16 pixels: 16 + KW + 1 <= 24
// zmm. Eight one-vector pixels left the kernel at 0.6x oneDNN (16 channels at 112x112, one
// thread): the tile's fixed costs over only 8 chains of KH x KW dependent FMAs. (Stride 2: 0.95x.)
constexpr size_t kRowRows = 8;
constexpr size_t kRowVecs = 2;
constexpr size_t kOneVectorRowRows = 16;
#elif HWY_TARGET == HWY_AVX2
// 6 accumulators + KW weights + 1 input <= 12 of 16 ymm.
constexpr size_t kRowRows = 6;
constexpr size_t kRowVecs = 1;
constexpr size_t kOneVectorRowRows = kRowRows;
#else
constexpr size_t kRowRows = 4;
constexpr size_t kRowVecs = 1;
constexpr size_t kOneVectorRowRows = kRowRows;
#endif

// The pixels of a dense-rows tile of kVecs vectors of channels.
template <size_t kStride, size_t kVecs>
constexpr size_t RowTile() {
  return kStride == 1 && kVecs == 1 ? kOneVectorRowRows : kRowRows;
}

// The bytes of x and y together (C_in == C_out): what the kernel streams through the caches.
double XAndYBytes(const Conv2dProblem& p) {
  return (static_cast<double>(p.ih) * static_cast<double>(p.iw) +
          static_cast<double>(p.oh) * static_cast<double>(p.ow)) *
         static_cast<double>(p.n) * static_cast<double>(p.ic) * sizeof(float);
}

// x and y together up to half of L3: where dilated rows and copied rows (below) pay.
constexpr double kHalfL3Bytes = 16 << 20;

bool HasDenseRows(const Conv2dProblem& p) {
  if (p.kw != 3 && p.kw != 5 && p.kw != 7) return false;
  if (p.dilation_w == 1) return p.stride_w == 1 || p.stride_w == 2;
  return p.dilation_w == 2 && p.stride_w == 1 && XAndYBytes(p) <= kHalfL3Bytes;
}

// Output (and input) columns between a dense-rows tile's pixels: the dilation at stride 1.
int64_t ColumnStep(const Conv2dProblem& p) { return p.stride_w == 1 ? p.dilation_w : 1; }

// Where a dense-rows tile reads x's rows (Row(n, ih, c0): image n's row ih at channel c0) and how
// far apart its pixels lie: x itself (ImageRows), or the ring of KH rows of one block of channels
// that RunAllCopiedRows copies them to (RingRows: row ih in slot ih % KH, pixels one block apart).
struct ImageRows {
  const float* Row(int64_t n, int64_t ih, int64_t c0) const {
    return x + (n * p->ih + ih) * p->iw * p->ic + c0;
  }
  int64_t PixelStride() const { return p->ic; }
  const Conv2dProblem* p;
  const float* x;
};

struct RingRows {
  // The rows of output row oh, from input row `top` (oh - pad): the slot of `top` is found once,
  // so that a row's costs a compare instead of a division.
  RingRows(const float* ring, int64_t row_floats, int64_t block_cols, int64_t kh, int64_t top,
           int64_t first_channel)
      : ring(ring),
        row_floats(row_floats),
        block_cols(block_cols),
        kh(kh),
        first_channel(first_channel),
        shift((top % kh + kh) % kh - top) {}
  const float* Row(int64_t /*n*/, int64_t ih, int64_t c0) const {
    int64_t slot = ih + shift;
    if (slot >= kh) slot -= kh;
    return ring + slot * row_floats + (c0 - first_channel);
  }
  int64_t PixelStride() const { return block_cols; }
  const float* ring;  // slot 0, at channel first_channel
  int64_t row_floats, block_cols, kh, first_channel;
  int64_t shift;  // slot of row ih: ih + shift, less kh past the ring's end
};

// acc += kernel row kh of the taps, for the pixels (n, oh, ow0 + i * step) and channels [c0, c0 +
// cols); column j of the tile is input column iw0 + j * step. kInterior: every input column the
// tile reads lies in the row (no bound checks, and the column pointer steps by step * C instead of
// being recomputed: the checks and multiplies were half the instructions of this load-bound loop).
template <size_t kKw, size_t kStride, size_t kRows, size_t kVecs, bool kDilated, bool kInterior>
HWY_INLINE void AccumulateRow(const Conv2dFwdArgs& a, const float* row, int64_t pixel_stride,
                              int64_t iw0, int64_t step, int64_t kh, int64_t c0, MF last,
                              VF (&acc)[kRows][kVecs]) {
  if constexpr (!kDilated) step = 1;  // a constant: the undilated loop as it was
  const Conv2dProblem& p = *a.p;
  VF wv[kKw][kVecs];
  HWY_UNROLL(8)
  for (size_t kw = 0; kw < kKw; ++kw) {
    LoadVecs<kVecs>(a.w.data + (kh * p.kw + static_cast<int64_t>(kw)) * a.w.row_stride + c0, last,
                    wv[kw]);
  }
  // The interior's column pointer steps by step * C; at the edges it is formed only for columns
  // in the row (a pointer before x's first element would be undefined even unread).
  const float* column = kInterior ? row + iw0 * pixel_stride : row;
  const int64_t column_stride = step * pixel_stride;
  // Fully unrolled (<= 22 steps), so that acc is indexed by constants and stays in registers.
  HWY_UNROLL(32)
  for (size_t j = 0; j < kStride * (kRows - 1) + kKw; ++j) {
    const float* xp = column;
    if constexpr (kInterior) {
      column += column_stride;
    } else {
      const int64_t iw = iw0 + static_cast<int64_t>(j) * step;
      if (iw < 0 || iw >= p.iw) continue;
      xp = row + iw * pixel_stride;
    }
    VF xv[kVecs];
    LoadVecs<kVecs>(xp, last, xv);
    HWY_UNROLL(8)
    for (size_t kw = 0; kw < kKw; ++kw) {
      // Pixel i reads input column kStride * i + kw; resolved at compile time once unrolled.
      if (j < kw || (j - kw) % kStride != 0 || (j - kw) / kStride >= kRows) continue;
      const size_t i = (j - kw) / kStride;
      HWY_UNROLL(4)
      for (size_t v = 0; v < kVecs; ++v) acc[i][v] = hn::MulAdd(xv[v], wv[kw][v], acc[i][v]);
    }
  }
}

// One block of a dense-rows tile: pixels (n, oh, ow0 + i * step), i < kRows, the block's channels
// from c0 (the last vector masked by `last`).
template <size_t kKw, size_t kStride, size_t kRows, size_t kVecs, bool kDilated, class Rows>
void RunRowBlock(const Conv2dFwdArgs& a, const Rows& xr, int64_t n, int64_t oh, int64_t ow0,
                 int64_t step, int64_t c0, MF last, bool stream) {
  if constexpr (!kDilated) step = 1;
  const Conv2dProblem& p = *a.p;
  VF acc[kRows][kVecs];  // in registers: StoreTile copies it for an out-of-line epilogue
  ZeroTile(acc);
  const int64_t iw0 = ow0 * static_cast<int64_t>(kStride) - p.pad.left;
  const int64_t span = static_cast<int64_t>(kStride * (kRows - 1) + kKw - 1) * step + 1;
  const bool interior = iw0 >= 0 && iw0 + span <= p.iw;
  for (int64_t kh = 0; kh < p.kh; ++kh) {
    const int64_t ih = oh * p.stride_h - p.pad.top + kh * p.dilation_h;
    if (ih < 0 || ih >= p.ih) continue;
    const float* row = xr.Row(n, ih, c0);
    if (interior) {
      AccumulateRow<kKw, kStride, kRows, kVecs, kDilated, true>(a, row, xr.PixelStride(), iw0, step,
                                                                kh, c0, last, acc);
    } else {
      AccumulateRow<kKw, kStride, kRows, kVecs, kDilated, false>(a, row, xr.PixelStride(), iw0,
                                                                 step, kh, c0, last, acc);
    }
  }
  // The pixels left in the row's sub-grid (no division per tile when undilated).
  const int64_t left = step == 1 ? p.ow - ow0 : (p.ow - ow0 + step - 1) / step;
  const size_t rows = static_cast<size_t>(std::min<int64_t>(left, kRows));
  const int64_t at = ((n * p.oh + oh) * p.ow + ow0) * p.oc + c0;
  const float* b = a.b != nullptr ? a.b + c0 : nullptr;
  const float* r = a.r != nullptr ? a.r + at : nullptr;
  if (stream) {
    return StoreTile<kRows, kVecs, true>(acc, rows, b, &p.post_ops, r, last, a.y + at, step * p.oc);
  }
  StoreTile<kRows, kVecs>(acc, rows, b, &p.post_ops, r, last, a.y + at, step * p.oc);
}

// The tiles of one block along output row (n, oh): pixels ow0 = first, first + step, ... in tiles
// of RowTile<kStride, kVecs>() pixels, channels [c0, c0 + cols), with as many vectors as `cols`
// need.
template <size_t kKw, size_t kStride, size_t kVecs, bool kDilated, class Rows>
void RunRowSweep(const Conv2dFwdArgs& a, const Rows& xr, int64_t n, int64_t oh, int64_t first,
                 int64_t step, int64_t c0, int64_t cols, bool stream) {
  if constexpr (kVecs > 1) {
    if (cols <= static_cast<int64_t>((kVecs - 1) * hn::Lanes(DF()))) {
      return RunRowSweep<kKw, kStride, kVecs - 1, kDilated>(a, xr, n, oh, first, step, c0, cols,
                                                            stream);
    }
  }
  constexpr size_t kRows = RowTile<kStride, kVecs>();
  const MF last = hn::FirstN(DF(), static_cast<size_t>(cols) - (kVecs - 1) * hn::Lanes(DF()));
  if constexpr (!kDilated) step = 1;
  for (int64_t ow0 = first; ow0 < a.p->ow; ow0 += static_cast<int64_t>(kRows) * step) {
    RunRowBlock<kKw, kStride, kRows, kVecs, kDilated>(a, xr, n, oh, ow0, step, c0, last, stream);
  }
}

// Items are ((image, output row), channel chunk). Within an item each block of channels sweeps
// the whole row, tile after tile: the input rows are then read as long streams of constant
// stride (C floats), which the hardware prefetchers follow; tiles of channels x 8 columns read
// 17-pixel pieces and ran at 0.75x oneDNN on rows streamed from L3. Dilated rows are swept one
// sub-grid (columns r, r + d, ...) after the other, in instances of their own (kDilated), so that
// the undilated loops keep a constant step of one column.
// Where x and y together outgrow L3 (StreamsY), y's rows are written with streaming stores, which
// skip reading each line from memory before overwriting it and leave L3 to x's rows. Interleaved
// against plain stores, both orders (2 threads): 3x3 over 129x129x384 and 256x256x96
// (DeepLab-MobileNet, a 512x512 MobileNetV2) 2.2-2.6x faster, 5x5 over 2x65x65x960 1.5x, 3x3/2
// over 256x256x144 1.2-1.4x; 65x65x960 (32.4 MB) 1.0-1.08x.
template <size_t kKw, size_t kStride, bool kDilated = false>
void RunAllDenseRows(const Conv2dFwdArgs& a) {
  const Conv2dProblem& p = *a.p;
  const int64_t block_cols = static_cast<int64_t>(kRowVecs * hn::Lanes(DF()));
  const int64_t pixel_items = p.n * p.oh;
  const ChannelChunks chunks = ChunksFor(a, pixel_items, block_cols);
  const bool stream = StreamsY(XAndYBytes(p), p.oc, a.y);
  const int64_t step = kDilated ? ColumnStep(p) : 1;
  const ImageRows xr{&p, a.x};
  ParallelRanges(a.threads, pixel_items * chunks.count, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const ChannelRange ch = chunks.Chunk(t % chunks.count, p.oc);
      const int64_t pixel_item = t / chunks.count;
      const int64_t oh = pixel_item % p.oh;
      const int64_t n = pixel_item / p.oh;
      for (int64_t c0 = ch.begin; c0 < ch.end; c0 += block_cols) {
        for (int64_t first = 0; first < std::min(step, p.ow); ++first) {
          RunRowSweep<kKw, kStride, kRowVecs, kDilated>(a, xr, n, oh, first, step, c0,
                                                        std::min(block_cols, ch.end - c0), stream);
        }
      }
    }
    if (stream) hwy::FlushStream();  // the streamed rows are visible after the region
  });
}

// Copied rows (stride 1): where C * 4 bytes is a multiple of a large power of two, the pixels of
// x lie a multiple of 4 KiB apart (or 2, 1 KiB...) and one channel offset of all of them falls in
// a few sets of the L1 cache, whose 12 ways then cannot hold the KH input rows that RunAllDenseRows
// sweeps for one block of channels: each row is read again from L2 for every output row. Here each
// work item (image, a chunk of blocks of channels, a band of output rows) copies its blocks' input
// rows, as each is first needed, into a ring of KH rows per block, pixel after pixel, dense; the
// dense-rows tiles then read the ring. Against RunAllDenseRows on the Zen 5 (one thread / two, the
// copy forced in both): MobileNet v1's 3x3 over 7x7x1024 1.30x / 1.27x, 14x14x512 1.25x / 1.10x,
// 28x28x256 1.16x / 0.99x, 7x7 over 28x28x512 1.46x / 1.41x. Where the lines fit in the ways (240,
// 480, 960 channels) the copy was 0.83-1.3x, and at stride 2 (an input element feeds 2.25 FMAs)
// 0.7-0.8x. Past half of L3 each chunk's sweep of the image reads a narrow slice of every pixel
// from memory (2 threads: 3x3 over 112x112x256 0.58x, 129x129x128 0.85x; 65x65x256 1.15x,
// 33x33x512 1.39x).

// The L1 data cache (Zen 5 and Intel since Ice Lake: 48 KiB, 12 ways of 64 sets of 64 bytes; the
// Zen 4's 32 KiB has 8 ways, but there the measured channel bound below decides).
constexpr int64_t kL1Sets = 64;
constexpr int64_t kL1Ways = 12;
constexpr int64_t kLineBytes = 64;

// The most lines of one L1 set among the KH x IW consecutive pixels of one channel offset of x
// (what a block's dense-rows sweep reads): pixels repeat their set every 4096 / gcd(C * 4, 4096)
// pixels, at most every 64 sets.
int64_t LinesPerSet(const Conv2dProblem& p) {
  const int64_t page = kL1Sets * kLineBytes;
  const int64_t period =
      std::min(kL1Sets, page / std::gcd(p.ic * static_cast<int64_t>(sizeof(float)), page));
  return (p.kh * p.iw + period - 1) / period;
}

// From 512 channels (pixels 2 KiB apart or a multiple: their lines fall in 2 sets of L1 or 1).
// With 128 and 256 the copy lost on the Zen 4 (32 KiB, 8-way L1; copied against not, 3 rounds
// alternated, one thread / two): 3x3 over 112x112x128 0.87x / 0.78x, 56x56x128 0.87x / 0.59x,
// 28x28x256 0.92x / 0.89x, 5x5 over 14x14x256 0.95x / 0.78x, 7x7 over 56x56x256 1.00x / 0.90x;
// with 512 and 1024 it won: 3x3 over 14x14x512 1.05x / 1.06x, 7x7x1024 1.24x / 0.93x, 7x7 over
// 28x28x512 1.31x / 1.27x, 14x14x1024 2.36x / 2.26x. (On the Zen 5, 28x28x256: 1.16x / 0.99x.)
constexpr int64_t kMinCopiedChannels = 512;

bool HasCopiedRows(const Conv2dProblem& p) {
  return p.stride_h == 1 && p.stride_w == 1 && p.dilation_h == 1 && p.dilation_w == 1 &&
         p.ic >= kMinCopiedChannels && LinesPerSet(p) > kL1Ways && XAndYBytes(p) <= kHalfL3Bytes;
}

// Copies `pixels` pixels of `cols` channels (C floats apart in x) to dst, one whole block of
// kVecs vectors a pixel (lanes past `cols` zero).
template <size_t kVecs>
HWY_INLINE void CopyPixels(const float* HWY_RESTRICT x, int64_t pixels, int64_t c, int64_t cols,
                           float* HWY_RESTRICT dst) {
  const DF d;
  const size_t lanes = hn::Lanes(d);
  const MF last = hn::FirstN(d, static_cast<size_t>(cols) - (kVecs - 1) * lanes);
  for (int64_t i = 0; i < pixels; ++i) {
    VF v[kVecs];
    LoadVecs<kVecs>(x + i * c, last, v);
    HWY_UNROLL(4)
    for (size_t j = 0; j < kVecs; ++j) hn::Store(v[j], d, dst + i * kVecs * lanes + j * lanes);
  }
}

// A chunk's rings together stay near 12 KiB (a quarter of L1): 64 channels a chunk at 14x14
// against 32 and 128, 32 at 28x28 (one thread: 1.16x and 1.09x over 32 and 128 at 14x14x1024).
constexpr int64_t kRingBytes = 12 << 10;
constexpr int64_t kMaxChunkBlocks = 4;
// Items a thread: bands of rows are cut only when the chunks are too few (each band copies
// KH - 1 rows again).
constexpr int64_t kCopiedItemsPerThread = 2;

// The work items of RunAllCopiedRows: n x bands x chunks, chunks the fastest.
struct CopiedItems {
  CopiedItems(const Conv2dProblem& p, int threads, int64_t block_cols) {
    row_floats = p.iw * block_cols;
    ring_floats = p.kh * row_floats;
    blocks = (p.oc + block_cols - 1) / block_cols;
    const int64_t ring_bytes = ring_floats * static_cast<int64_t>(sizeof(float));
    chunk_blocks =
        std::min(blocks, std::clamp<int64_t>(kRingBytes / ring_bytes, 1, kMaxChunkBlocks));
    chunks = (blocks + chunk_blocks - 1) / chunk_blocks;
    const int64_t wanted = kCopiedItemsPerThread * threads;
    const int64_t per_image = std::min(p.oh, (wanted + p.n * chunks - 1) / (p.n * chunks));
    band = (p.oh + per_image - 1) / per_image;
    bands = (p.oh + band - 1) / band;
  }
  int64_t row_floats, ring_floats, blocks, chunk_blocks, chunks, bands, band;
};

// Copies input rows [begin, end) of image n for blocks [b_begin, b_end) into their rings.
template <size_t kVecs>
void CopyRows(const Conv2dFwdArgs& a, const CopiedItems& it, int64_t n, int64_t begin, int64_t end,
              int64_t b_begin, int64_t b_end, int64_t block_cols, float* rings) {
  const Conv2dProblem& p = *a.p;
  for (int64_t ih = begin; ih < end; ++ih) {
    for (int64_t blk = b_begin; blk < b_end; ++blk) {
      const int64_t c0 = blk * block_cols;
      float* ring = rings + (blk - b_begin) * it.ring_floats;
      CopyPixels<kVecs>(a.x + ((n * p.ih + ih) * p.iw) * p.ic + c0, p.iw, p.ic,
                        std::min(block_cols, p.oc - c0), ring + ih % p.kh * it.row_floats);
    }
  }
}

template <size_t kKw>
void RunAllCopiedRows(const Conv2dFwdArgs& a) {
  const Conv2dProblem& p = *a.p;
  const int64_t block_cols = static_cast<int64_t>(kRowVecs * hn::Lanes(DF()));
  const CopiedItems it(p, a.threads, block_cols);
  ParallelRanges(a.threads, p.n * it.bands * it.chunks, [&](int64_t begin, int64_t end) {
    float* rings = ThreadScratch(it.chunk_blocks * it.ring_floats);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t b_begin = t % it.chunks * it.chunk_blocks;
      const int64_t b_end = std::min(it.blocks, b_begin + it.chunk_blocks);
      const int64_t oh_begin = t / it.chunks % it.bands * it.band;
      const int64_t oh_end = std::min(p.oh, oh_begin + it.band);
      const int64_t n = t / it.chunks / it.bands;
      int64_t copied = 0;  // rows below are in the rings (or no longer needed)
      for (int64_t oh = oh_begin; oh < oh_end; ++oh) {
        const int64_t top = oh - p.pad.top;
        const int64_t rows_end = std::min(p.ih, top + p.kh);
        CopyRows<kRowVecs>(a, it, n, std::max({copied, top, int64_t{0}}), rows_end, b_begin, b_end,
                           block_cols, rings);
        copied = std::max(copied, rows_end);
        for (int64_t blk = b_begin; blk < b_end; ++blk) {
          const int64_t c0 = blk * block_cols;
          const RingRows xr(rings + (blk - b_begin) * it.ring_floats, it.row_floats, block_cols,
                            p.kh, top, c0);
          RunRowSweep<kKw, 1, kRowVecs, false>(a, xr, n, oh, 0, 1, c0,
                                               std::min(block_cols, p.oc - c0), /*stream=*/false);
        }
      }
    }
  });
}

// One channel (C == 1, e.g. a 1 -> 1 filter over an image) at stride_w 1: vectorising over
// channels would fill one lane in 16, so this kernel vectorises over the output columns of a row
// instead. Columns of a row x (kh, kw) tap read consecutive input floats.
bool HasSingleChannel(const Conv2dProblem& p) { return p.oc == 1 && p.stride_w == 1; }

// The `lanes` input floats of row `row` (iw floats) from column iw0, zero where a column lies in
// the padding. Only vectors at a row's ends take the copy: their loads would cross the row.
HWY_INLINE VF LoadColumns(const float* HWY_RESTRICT row, int64_t iw, int64_t iw0) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  if (iw0 >= 0 && iw0 + lanes <= iw) return hn::LoadU(d, row + iw0);
  HWY_ALIGN float padded[HWY_MAX_BYTES / sizeof(float)] = {};
  for (int64_t j = 0; j < lanes; ++j) {
    if (iw0 + j >= 0 && iw0 + j < iw) padded[j] = row[iw0 + j];
  }
  return hn::Load(d, padded);
}

// Output row (n, oh): vectors of `lanes` columns, each the sum over the taps of w * x.
void RunSingleChannelRow(const Conv2dFwdArgs& a, int64_t n, int64_t oh) {
  const Conv2dProblem& p = *a.p;
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  float* y = a.y + (n * p.oh + oh) * p.ow;
  const float* r = a.r != nullptr ? a.r + (n * p.oh + oh) * p.ow : nullptr;
  const VecPostOps<DF> post(d, p.post_ops);
  const bool fused = post.has_elementwise() || r != nullptr;
  for (int64_t ow0 = 0; ow0 < p.ow; ow0 += lanes) {
    VF acc = hn::Zero(d);
    for (int64_t kh = 0; kh < p.kh; ++kh) {
      const int64_t ih = oh * p.stride_h - p.pad.top + kh * p.dilation_h;
      if (ih < 0 || ih >= p.ih) continue;
      const float* row = a.x + (n * p.ih + ih) * p.iw;
      for (int64_t kw = 0; kw < p.kw; ++kw) {
        const VF xv = LoadColumns(row, p.iw, ow0 - p.pad.left + kw * p.dilation_w);
        acc = hn::MulAdd(hn::Set(d, a.w.data[(kh * p.kw + kw) * a.w.row_stride]), xv, acc);
      }
    }
    const size_t cols = static_cast<size_t>(std::min(lanes, p.ow - ow0));
    // The epilogue of StoreTile, with the one channel's bias in every lane.
    const MF mask = hn::FirstN(d, cols);
    if (a.b != nullptr) acc = hn::Add(acc, hn::Set(d, a.b[0]));
    if (fused) {
      const VF rv = r != nullptr ? hn::MaskedLoad(mask, d, r + ow0) : hn::Zero(d);
      acc = post.Apply(d, acc, rv, r != nullptr);
    }
    hn::BlendedStore(acc, mask, d, y + ow0);
  }
}

void RunAllSingleChannel(const Conv2dFwdArgs& a) {
  const Conv2dProblem& p = *a.p;
  ParallelFor(a.threads, p.n * p.oh,
              [&](int64_t t) { RunSingleChannelRow(a, t / p.oh, t % p.oh); });
}

// One channel takes RunAllSingleChannel, dense rows RunAllDenseRows; otherwise the widest block
// the channels fill picks the tile height.
void Conv2dFwdDepthwise(const Conv2dFwdArgs& a) {
  if (HasSingleChannel(*a.p)) return RunAllSingleChannel(a);
  if (HasDenseRows(*a.p)) {
    if (HasCopiedRows(*a.p)) {
      if (a.p->kw == 7) return RunAllCopiedRows<7>(a);
      return a.p->kw == 3 ? RunAllCopiedRows<3>(a) : RunAllCopiedRows<5>(a);
    }
    if (a.p->stride_w == 2) {
      if (a.p->kw == 7) return RunAllDenseRows<7, 2>(a);
      return a.p->kw == 3 ? RunAllDenseRows<3, 2>(a) : RunAllDenseRows<5, 2>(a);
    }
    if (a.p->dilation_w > 1) {
      if (a.p->kw == 7) return RunAllDenseRows<7, 1, true>(a);
      return a.p->kw == 3 ? RunAllDenseRows<3, 1, true>(a) : RunAllDenseRows<5, 1, true>(a);
    }
    if (a.p->kw == 7) return RunAllDenseRows<7, 1>(a);
    return a.p->kw == 3 ? RunAllDenseRows<3, 1>(a) : RunAllDenseRows<5, 1>(a);
  }
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(DF()));
  WithVecs<kMaxVecs>((a.p->oc + lanes - 1) / lanes, [&](auto v) { RunAll<decltype(v)::value>(a); });
}

}  // namespace

Conv2dFwdKernel GetConv2dFwdDepthwiseKernel() {
  return {&Conv2dFwdDepthwise, static_cast<int64_t>(hn::Lanes(DF())), kMaxVecs,
          hwy::TargetName(HWY_TARGET)};
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace convkit::internal::highway {

HWY_EXPORT(GetConv2dFwdDepthwiseKernel);

Conv2dFwdKernel Conv2dFwdDepthwiseKernel() {
  return HWY_DYNAMIC_DISPATCH(GetConv2dFwdDepthwiseKernel)();
}

}  // namespace convkit::internal::highway
#endif  // HWY_ONCE
