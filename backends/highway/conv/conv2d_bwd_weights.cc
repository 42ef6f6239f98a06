// Backward weights and bias: dw(kh, kw, ic, oc) = sum over (n, oh, ow) of x(n, ih, iw, ic) *
// dy(n, oh, ow, oc), a GEMM with M = KH * KW * IC / groups rows (m = tap * ICg + ic), N = OC /
// groups columns and the reduction K = N * OH * OW. Per block of K, the rows of x it reads are
// packed im2col-style (PackXRows; a 1x1 stride-1 x is its own im2col) and a column block of dy
// into a contiguous panel (PackDyPanel), so the microkernel streams contiguous memory: it holds
// kRows dw rows x kVecs vectors of columns in registers (the forward microkernel's shape,
// conv2d_igemm-inl.h's RowsFor) and per pixel broadcasts kRows x values and loads kVecs dy vectors.
//
// Determinism: the dw elements are partitioned across threads, never the reduction. Each dw tile
// is owned by one thread, which sums its terms in the order (n, oh, ow) -- the reference's order
// (padding taps add +-0, which changes no bit) -- one K block after another; between blocks the
// partial sum waits in dw and is reloaded, which changes no bit. So the result is the same for
// any thread count (and matches a plain sequential loop). db is the same: one vector lane per
// channel, summed over (n, oh, ow) in order.
//
// Compiled once per Highway target through foreach_target.h (hwy/examples/skeleton.cc).
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backends/highway/common/parallel.hpp"
#include "backends/highway/conv/conv2d_bwd.hpp"
#include "backends/highway/conv/conv2d_bwd_tile.hpp"
#include "hwy/aligned_allocator.h"

#ifdef _OPENMP
#endif

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/highway/conv/conv2d_bwd_weights.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must follow foreach_target.h: re-included once per target.
#include "backends/highway/common/vec-inl.h"
#include "backends/highway/conv/conv2d_igemm-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {
// Internal linkage for everything but the exported entry point (see conv2d_fwd_depthwise.cc).
namespace {

// Blocking of the GEMM (M = KH * KW * ICg rows, N = OCg columns, K = N * OH * OW). Per K block
// the dy panel (block_k pixels x one column block; AVX3: 512 x 64 floats = 128 KiB) and the im2col
// block (block_k x kXBlockBytes / (4 * block_k) rows, 384 KiB) stay in L2 while every row tile of
// the im2col block streams over the panel. Per pixel the microkernel loads kVecs panel vectors and
// kRows x floats for kRows * kVecs FMAs. Each dw tile is reloaded and stored once per K block;
// with the panel and the im2col block in L2, dw (590 KiB for 3x3 128 -> 128) comes from L3, and
// the reload's latency, not the L1 misses of a panel larger than L1, is what a short block pays:
// on the Zen 4 (32 KiB L1D, 1 MiB L2; convkit-run --dir=BWD_W, 2 threads, 5 rounds alternated)
// 512 pixels instead of 128 (and of 256 for a dw past 1 MiB) ran ResNet-50's 1x1 layers
// 1.00-1.18x, its 3x3 layers 0.99-1.13x and 1.07-1.09x at N = 8, 1 thread 0.99-1.04x; 1024 ran
// 1-4 % slower than 512, 64 0.56-0.91x of 128. (The Zen 5, 48 KiB L1D, had measured 128 ahead of
// 256 on 1x1 layers, on a loaded machine: a choice by cache sizes would serve both.)
constexpr int64_t kBlockK = 512;
constexpr int64_t kXBlockBytes = 384 * 1024;

// acc (kRows x kVecs vectors) += sum over k < kn of x[k * x_stride + i] * dy[k * dy_stride + j
// * lanes + lane], in the order of k; then stored to dw rows i < rows (row stride dw_stride, last
// vector masked by `last`). `first` starts from zero, otherwise from dw (the running sum of the
// earlier K blocks: the order of terms is unchanged). dy holds whole vectors (padded with zeros);
// kFull: rows == kRows (a partial tile reads its last row again for the missing ones). The first
// `ahead` pixels also prefetch x's line kn pixels on: the next K block's, read from x itself.
template <size_t kRows, size_t kVecs, bool kFull>
void WeightsTile(const float* HWY_RESTRICT x, int64_t x_stride, size_t rows,
                 const float* HWY_RESTRICT dy, int64_t dy_stride, int64_t kn, int64_t ahead,
                 MF last, bool first, float* HWY_RESTRICT dw, int64_t dw_stride) {
  const DF d;
  const size_t lanes = hn::Lanes(d);
  VF acc[kRows][kVecs];
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) {
    ZeroVecs(acc[i]);
    if (!first && i < rows) LoadVecs<kVecs>(dw + static_cast<int64_t>(i) * dw_stride, last, acc[i]);
  }
  size_t row[kRows];  // the x column row i reads
  for (size_t i = 0; i < kRows; ++i) row[i] = kFull ? i : std::min(i, rows - 1);
  for (int64_t k = 0; k < kn; ++k, x += x_stride, dy += dy_stride) {
    if (k < ahead) hwy::Prefetch(x + kn * x_stride);
    VF g[kVecs];
    HWY_UNROLL(16)
    for (size_t j = 0; j < kVecs; ++j) g[j] = hn::LoadU(d, dy + j * lanes);
    HWY_UNROLL(16)
    for (size_t i = 0; i < kRows; ++i) {
      const VF xv = hn::Set(d, x[kFull ? i : row[i]]);
      HWY_UNROLL(16)
      for (size_t j = 0; j < kVecs; ++j) acc[i][j] = hn::MulAdd(xv, g[j], acc[i][j]);
    }
  }
  for (size_t i = 0; i < rows; ++i) {
    float* out = dw + static_cast<int64_t>(i) * dw_stride;
    HWY_UNROLL(16)
    for (size_t j = 0; j + 1 < kVecs; ++j) hn::StoreU(acc[i][j], d, out + j * lanes);
    hn::BlendedStore(acc[i][kVecs - 1], last, d, out + (kVecs - 1) * lanes);
  }
}

// WeightsTile with as few vectors as `cols` need, full or partial rows.
template <size_t kRows, size_t kVecs>
void WeightsTileVecs(const float* x, int64_t x_stride, size_t rows, const float* dy,
                     int64_t dy_stride, int64_t kn, int64_t ahead, int64_t cols, bool first,
                     float* dw, int64_t dw_stride) {
  const size_t lanes = hn::Lanes(DF());
  if constexpr (kVecs > 1) {
    if (cols <= static_cast<int64_t>((kVecs - 1) * lanes)) {
      return WeightsTileVecs<kRows, kVecs - 1>(x, x_stride, rows, dy, dy_stride, kn, ahead, cols,
                                               first, dw, dw_stride);
    }
  }
  const MF last = hn::FirstN(DF(), static_cast<size_t>(cols) - (kVecs - 1) * lanes);
  if (rows == kRows) {
    WeightsTile<kRows, kVecs, true>(x, x_stride, rows, dy, dy_stride, kn, ahead, last, first, dw,
                                    dw_stride);
  } else {
    WeightsTile<kRows, kVecs, false>(x, x_stride, rows, dy, dy_stride, kn, ahead, last, first, dw,
                                     dw_stride);
  }
}

// A row stride (in floats) >= cols for rows the microkernel reads one after another at a fixed
// column: a multiple of 32 floats (128 B) would put every row in the same few of the L1D's 64
// sets (4 KiB apart: all in one set, 12 ways) and evict them before the next tile reuses them.
inline int64_t PaddedStride(int64_t cols) {
  const int64_t lines = (cols + 15) / 16;
  return 16 * (lines % 2 == 0 ? lines + 1 : lines);
}

// The bias gradient fused into the dw pass, on the dy panel the microkernel is about to read:
// db[j] (+)= the sum over k < kn of dy[k * dy_stride + j], j < cols, in the order of k. `first`
// starts from +0, otherwise from db. dy holds kVecs whole vectors (zeros past cols). Per lane the
// same additions in the same order as BiasBlock: the same bits.
template <size_t kVecs>
void SumColumns(const float* HWY_RESTRICT dy, int64_t dy_stride, int64_t kn, int64_t cols,
                bool first, float* HWY_RESTRICT db) {
  const DF d;
  const size_t lanes = hn::Lanes(d);
  VF sum[kVecs];
  HWY_UNROLL(16)
  for (size_t j = 0; j < kVecs; ++j) {
    const int64_t left = cols - static_cast<int64_t>(j * lanes);
    const MF mask = hn::FirstN(d, static_cast<size_t>(std::max<int64_t>(0, left)));
    // No load past cols: SCALAR's MaskedLoad (Highway 1.0.3) reads memory even with an empty mask.
    sum[j] = first || left <= 0 ? hn::Zero(d) : hn::MaskedLoad(mask, d, db + j * lanes);
  }
  for (int64_t k = 0; k < kn; ++k, dy += dy_stride) {
    HWY_UNROLL(16)
    for (size_t j = 0; j < kVecs; ++j) sum[j] = hn::Add(sum[j], hn::LoadU(d, dy + j * lanes));
  }
  HWY_UNROLL(16)
  for (size_t j = 0; j < kVecs; ++j) {
    const int64_t left = cols - static_cast<int64_t>(j * lanes);
    if (left <= 0) break;
    hn::BlendedStore(sum[j], hn::FirstN(d, static_cast<size_t>(left)), d, db + j * lanes);
  }
}

// The GEMM's shape and blocking for one call.
struct WeightsPlan {
  int64_t rows = 0, cols = 0;              // M and N per group
  int64_t pixels = 0;                      // K
  int64_t block_cols = 0, col_blocks = 0;  // N blocks of the microkernel's width
  int64_t block_k = 0;                     // K block
  int64_t tile_rows = 0, block_rows = 0;   // microkernel rows; rows per im2col block
  int64_t row_blocks = 0, tiles = 0;       // per group: M blocks; dw tiles in all
  int64_t x_ld = 0;                        // im2col row stride in the packing buffer
  bool direct_x = false;                   // x is its own im2col (1x1, stride 1, no padding)
  bool direct_dy = false;                  // dy rows are whole panels (groups 1, OC a block)
};

// A 1x1 stride-1 x is its own im2col, read in place whatever its size: with the next K block's
// lines prefetched (WeightsTile's `ahead`), in place beat packing the rows per K block also where
// x comes from memory (convkit-run --dir=BWD_W, 2 threads, alternated: 256 -> 64 at 56x56, N = 8,
// 25.7 MB, 1.59x; 512 -> 128 at 56x56, N = 8, 1.09x), and the prefetch ran the in-place path
// 1.14-1.29x faster at N = 8 (1024 -> 256 at 14x14, 512 -> 128 at 28x28).
WeightsPlan PlanWeights(const Conv2dProblem& p, int64_t tile_rows, int64_t block_cols) {
  WeightsPlan w;
  w.rows = p.kh * p.kw * p.ic_per_group();
  w.cols = p.oc_per_group();
  w.pixels = p.n * p.oh * p.ow;
  w.block_cols = block_cols;
  w.col_blocks = (w.cols + block_cols - 1) / block_cols;
  const int64_t k_blocks = (w.pixels + kBlockK - 1) / kBlockK;
  w.block_k = (w.pixels + k_blocks - 1) / k_blocks;  // balanced: no short last block
  w.tile_rows = tile_rows;
  const int64_t fit = kXBlockBytes / (4 * w.block_k) / tile_rows * tile_rows;
  w.block_rows = std::min(w.rows, std::max(tile_rows, fit));
  w.row_blocks = (w.rows + w.block_rows - 1) / w.block_rows;
  const int64_t row_tiles = (w.rows + tile_rows - 1) / tile_rows;
  w.tiles = p.groups * w.col_blocks * row_tiles;
  w.x_ld = PaddedStride(w.block_rows);
  const bool own_im2col = p.kh == 1 && p.kw == 1 && p.stride_h == 1 && p.stride_w == 1 &&
                          p.pad.top == 0 && p.pad.left == 0 && p.oh == p.ih && p.ow == p.iw;
  w.direct_x = own_im2col;
  w.direct_dy = p.groups == 1 && p.oc == block_cols;
  return w;
}

// The dw tiles [begin, end) of the order (group, row block, column block, row tile), over the
// whole reduction, K block by K block. Packs each im2col block and dy panel once per K block
// into the caller's buffers (x_buf: block_k * x_ld floats, dy_buf: block_k * block_cols).
// Packs the x rows of the row block at m0 (mc rows, group g, pixels [k0, k0 + kn)) that the
// tiles [begin, end) of the tile order need, t being the block's first tile: all of them unless
// the range covers fewer than one column block's row tiles.
void PackBlockRows(const Conv2dBwdWeightsArgs& a, const WeightsPlan& w, int64_t g, int64_t k0,
                   int64_t kn, int64_t m0, int64_t mc, int64_t t, int64_t begin, int64_t end,
                   float* x_buf) {
  const int64_t row_tiles = (mc + w.tile_rows - 1) / w.tile_rows;
  int64_t rt_lo = 0, rt_hi = row_tiles;
  const int64_t s = std::max(begin, t) - t;
  const int64_t e = std::min(end, t + w.col_blocks * row_tiles) - t;
  if (e - s < row_tiles && s % row_tiles < (e - 1) % row_tiles + 1) {
    rt_lo = s % row_tiles;
    rt_hi = (e - 1) % row_tiles + 1;
  }
  const int64_t lo = rt_lo * w.tile_rows;
  const int64_t hi = std::min(mc, rt_hi * w.tile_rows);
  PackXRows(*a.p, a.x, g, k0, kn, m0 + lo, hi - lo, w.x_ld, x_buf + lo);
}

template <size_t kVecs>
void RunTiles(const Conv2dBwdWeightsArgs& a, const WeightsPlan& w, int64_t begin, int64_t end,
              float* x_buf, float* dy_buf) {
  constexpr size_t kRows = RowsFor(kVecs);
  const Conv2dProblem& p = *a.p;
  for (int64_t k0 = 0; k0 < w.pixels; k0 += w.block_k) {
    const int64_t kn = std::min(w.block_k, w.pixels - k0);
    // x read in place comes from memory when large: its lines of the next K block are prefetched
    // (pixels past the end of x are not).
    const int64_t ahead = w.direct_x ? std::min(kn, w.pixels - k0 - kn) : 0;
    int64_t t = 0;
    for (int64_t g = 0; g < p.groups; ++g) {
      for (int64_t rb = 0; rb < w.row_blocks; ++rb) {
        const int64_t m0 = rb * w.block_rows;
        const int64_t mc = std::min(w.block_rows, w.rows - m0);
        const int64_t row_tiles = (mc + w.tile_rows - 1) / w.tile_rows;
        if (t + w.col_blocks * row_tiles <= begin || t >= end) {
          t += w.col_blocks * row_tiles;
          continue;
        }
        if (!w.direct_x) PackBlockRows(a, w, g, k0, kn, m0, mc, t, begin, end, x_buf);
        for (int64_t cb = 0; cb < w.col_blocks; ++cb) {
          if (t + row_tiles <= begin || t >= end) {
            t += row_tiles;
            continue;
          }
          const int64_t col0 = cb * w.block_cols;
          const int64_t cols = std::min(w.block_cols, w.cols - col0);
          const float* dy = a.dy + k0 * p.oc;
          int64_t dy_stride = p.oc;
          if (!w.direct_dy) {
            PackDyPanel(p, a.dy, g, col0, cols, w.block_cols, k0, kn, dy_buf);
            dy = dy_buf;
            dy_stride = w.block_cols;
          }
          // db of these columns belongs to the owner of the column block's first tile.
          if (a.db != nullptr && rb == 0 && t >= begin && t < end) {
            SumColumns<kVecs>(dy, dy_stride, kn, cols, k0 == 0, a.db + g * w.cols + col0);
          }
          for (int64_t rt = 0; rt < row_tiles; ++rt, ++t) {
            if (t < begin || t >= end) continue;
            const int64_t m = m0 + rt * w.tile_rows;
            const size_t rows = static_cast<size_t>(std::min(w.tile_rows, m0 + mc - m));
            const float* x = w.direct_x ? a.x + k0 * p.ic + g * w.rows + m : x_buf + (m - m0);
            const int64_t x_stride = w.direct_x ? p.ic : w.x_ld;
            float* dw = a.dw + m * p.oc + g * w.cols + col0;
            WeightsTileVecs<kRows, kVecs>(x, x_stride, rows, dy, dy_stride, kn, ahead, cols,
                                          k0 == 0, dw, p.oc);
          }
        }
      }
    }
  }
}

// Every dw tile, split in contiguous ranges of the tile order over the threads; each thread owns
// its packing buffers.
template <size_t kVecs>
void RunWeights(const Conv2dBwdWeightsArgs& a, int64_t block_cols) {
  const WeightsPlan w = PlanWeights(*a.p, static_cast<int64_t>(RowsFor(kVecs)), block_cols);
  const auto run_range = [&](int64_t begin, int64_t end) {
    auto x_buf =
        hwy::AllocateAligned<float>(w.direct_x ? 1 : static_cast<size_t>(w.block_k * w.x_ld));
    auto dy_buf = hwy::AllocateAligned<float>(
        w.direct_dy ? 1 : static_cast<size_t>(w.block_k * w.block_cols));
    RunTiles<kVecs>(a, w, begin, end, x_buf.get(), dy_buf.get());
  };
  ParallelRanges(a.threads, w.tiles, run_range);
}

// db(oc) = the sum of dy(n, oh, ow, oc) over (n, oh, ow) in order, from +0 (the reference's bits).
// Channels [c0, c0 + cols), kVecs vectors: independent add chains hide the add latency.
template <size_t kVecs>
void BiasBlock(const Conv2dProblem& p, const float* dy, int64_t c0, int64_t cols, float* db) {
  const DF d;
  const size_t lanes = hn::Lanes(d);
  const MF last = hn::FirstN(d, static_cast<size_t>(cols) - (kVecs - 1) * lanes);
  const int64_t pixels = p.n * p.oh * p.ow;
  VF sum[kVecs];
  ZeroVecs(sum);
  for (int64_t m = 0; m < pixels; ++m) {
    VF v[kVecs];
    LoadVecs<kVecs>(dy + m * p.oc + c0, last, v);
    HWY_UNROLL(16)
    for (size_t j = 0; j < kVecs; ++j) sum[j] = hn::Add(sum[j], v[j]);
  }
  HWY_UNROLL(16)
  for (size_t j = 0; j + 1 < kVecs; ++j) hn::StoreU(sum[j], d, db + c0 + j * lanes);
  hn::BlendedStore(sum[kVecs - 1], last, d, db + c0 + (kVecs - 1) * lanes);
}

// Channel blocks of up to 2 vectors (so that 64 channels still give 2 threads work) split over
// the threads; each channel is summed by one thread, so the bits do not depend on the split.
void RunBias(const Conv2dBwdWeightsArgs& a) {
  const Conv2dProblem& p = *a.p;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(DF()));
  const int64_t block = 2 * lanes;
  const int64_t blocks = (p.oc + block - 1) / block;
  const auto run_block = [&](int64_t t) {
    const int64_t c0 = t * block;
    const int64_t cols = std::min(block, p.oc - c0);
    if (cols > lanes) {
      BiasBlock<2>(p, a.dy, c0, cols, a.db);
    } else {
      BiasBlock<1>(p, a.dy, c0, cols, a.db);
    }
  };
  ParallelFor(a.threads, blocks, run_block);
}

void Conv2dBwdWeights(const Conv2dBwdWeightsArgs& a) {
  const Conv2dProblem& p = *a.p;
  if (a.dw == nullptr || p.n == 0) {  // otherwise db is fused into the dw pass (SumColumns)
    if (a.db != nullptr) RunBias(a);
    if (a.dw != nullptr) std::fill_n(a.dw, p.w_size(), 0.0f);
    return;
  }
  // Blocks of output channels as wide as the microkernel holds (VecsPerBlock, as the forward).
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(DF()));
  const int64_t vecs = VecsPerBlock(p.oc_per_group(), lanes, static_cast<int64_t>(kMaxVecs));
  WithVecs<kMaxVecs>(vecs, [&](auto v) {
    constexpr size_t kVecs = decltype(v)::value;
    RunWeights<kVecs>(a, static_cast<int64_t>(kVecs) * lanes);
  });
}

}  // namespace

Conv2dBwdWeightsKernel GetConv2dBwdWeightsKernel() {
  return {&Conv2dBwdWeights, hwy::TargetName(HWY_TARGET)};
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace convkit::internal::highway {

HWY_EXPORT(GetConv2dBwdWeightsKernel);

Conv2dBwdWeightsKernel ChooseConv2dBwdWeightsKernel() {
  return HWY_DYNAMIC_DISPATCH(GetConv2dBwdWeightsKernel)();
}

}  // namespace convkit::internal::highway
#endif  // HWY_ONCE
