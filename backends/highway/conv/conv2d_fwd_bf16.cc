// The bf16 forward convolution kernel (fpmath = bf16): an implicit GEMM over M = N * OH * OW
// pixels x OCg output channels, reduced over KH kernel rows x pairs of the KW * ICg inputs of a row
// with vdpbf16ps. Per chunk of pixels, the input is converted once to bf16 pairs in im2col order
// (KH * row_pairs words per pixel, zeros for taps in the padding) into a stack buffer; then
// every block of output channels runs its microkernel over the chunk's tiles, a broadcast pair per
// pixel and a weight vector per block vector at each reduction step. The epilogue (bias, residual,
// activation, masked store) is the fp32 kernels' StoreTile: everything after the dot products is
// fp32.
//
// Compiled once per Highway target through foreach_target.h; only the AVX3 pass has a kernel.
#include "backends/highway/conv/conv2d_fwd_bf16.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backends/highway/common/parallel.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/highway/conv/conv2d_fwd_bf16.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must follow foreach_target.h: re-included once per target.
#include "backends/highway/conv/conv2d_fwd_bf16-inl.h"
#include "backends/highway/conv/conv2d_fwd_epilogue-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {
namespace {  // internal linkage: see conv2d_fwd_igemm.cc

#if HWY_TARGET == HWY_AVX3

// Microkernel shapes: kRows pixels x kVecs vectors of 16 output channels. vdpbf16ps has a latency
// of ~6 cycles at 2 per cycle, so at least 12 independent accumulators keep both pipes busy;
// kRows * kVecs accumulators + kVecs weight vectors + a broadcast fit the 32 zmm registers (12x1,
// 12x2, 8x3, 6x4 use 14-29). Per reduction step a tile loads kVecs weight vectors and kRows pairs.
constexpr size_t kMaxVecs = 4;
constexpr size_t RowsFor(size_t vecs) { return vecs <= 2 ? 12 : vecs == 3 ? 8 : 6; }
// The largest chunk the buffer holds is whole tiles of every height: a multiple of lcm(12, 8, 6).
// Smaller chunks are whole tiles of the full blocks' height (ChunkPixels); a last block of
// another height may end a chunk with a partial tile.
constexpr int64_t kChunkQuantum = 24;

// The converted input of a chunk: 256 KiB on the stack of each thread, so that run() allocates
// nothing. A chunk of 24 pixels must fit: the longest reduction is 64 Ki / 24 = 2730 pairs
// (3x3 x 606 channels; ResNet-50's and VGG-16's longest is 3x3 x 512). It stays in the 1 MiB L2
// (Zen 4 and Zen 5) beside a weight panel while every block of output channels sweeps it.
constexpr int64_t kBufferWords = int64_t{1} << 16;
constexpr int64_t kMaxPairs = kBufferWords / kChunkQuantum;

// Pixels per chunk: as many as the buffer holds (every block re-reads its weights once per chunk),
// in a number of chunks that is a multiple of the threads, of even size, so that each thread
// converts and sweeps the same pixels: the largest chunks that fit left ResNet-50's 56x56 1x1
// layers (3136 pixels in chunks of 2048 or 512) with one thread doing 2048 pixels and the other
// 1088. Sizes are whole tiles of the full blocks' height (`tile_rows`): rounded to
// kChunkQuantum, 14x14 pixels in two chunks were 120 and 76.
int64_t ChunkPixels(int64_t m, int64_t row_words, int64_t threads, int64_t tile_rows) {
  const int64_t fit = kBufferWords / row_words / kChunkQuantum * kChunkQuantum;
  const int64_t chunks = ((m + fit - 1) / fit + threads - 1) / threads * threads;
  const int64_t even = (m + chunks - 1) / chunks;
  return std::min(fit, (even + tile_rows - 1) / tile_rows * tile_rows);
}

// ConvertChunk for a pointwise convolution with a special input (Conv2dFwdBf16Args): each pixel's
// channels gathered from the pieces, or multiplied by x_scale, in fp32 (the values a plan's copy
// of x would hold), then converted.
CONVKIT_BF16_ATTR void ConvertSpecialChunk(const Conv2dFwdBf16Args& a, int64_t m0, int64_t count,
                                           uint32_t* HWY_RESTRICT buf) {
  const Conv2dProblem& p = *a.p;
  const int64_t row_pairs = a.w.row_pairs;
  const int64_t valid = std::min(count, p.n * p.oh * p.ow - m0);
  alignas(64) float gathered[2 * kMaxPairs];
  for (int64_t i = 0; i < valid; ++i) {
    const int64_t m = m0 + i;
    if (a.pieces != nullptr) {
      float* dst = gathered;
      for (int64_t k = 0; k < a.piece_count; ++k) {
        const ChannelPiece& piece = a.pieces[k];
        dst = std::copy_n(piece.data + m * piece.pixel_stride, piece.channels, dst);
      }
    } else {
      const float* src = a.x + m * p.ic;
      for (int64_t c = 0; c < p.ic; ++c) gathered[c] = src[c] * a.x_scale[c];
    }
    ConvertToPairs(gathered, p.ic, row_pairs, buf + i * row_pairs);
  }
  for (int64_t i = valid; i < count; ++i) ZeroPairs(row_pairs, buf + i * row_pairs);
}

// Converts the im2col rows of pixels [m0, m0 + count) of group g into buf: per pixel, per kernel
// row kh, the KW * ICg floats of taps (kh, 0..KW-1) as row_pairs bf16 pairs, zeros for taps in the
// padding. Rows past the last pixel are zeros (never stored). Pixel coordinates advance
// incrementally: three 64-bit divisions per pixel cost ~15 % of a 1x1 64 -> 256 layer.
CONVKIT_BF16_ATTR void ConvertChunk(const Conv2dFwdBf16Args& a, int64_t g, int64_t m0,
                                    int64_t count, uint32_t* HWY_RESTRICT buf) {
  const Conv2dProblem& p = *a.p;
  const int64_t icg = p.ic_per_group();
  const int64_t row_floats = p.kw * icg;
  const int64_t row_pairs = a.w.row_pairs;
  const int64_t row_words = p.kh * row_pairs;
  const int64_t valid = std::min(count, p.n * p.oh * p.ow - m0);
  if (FlatBf16Chunks(p)) {  // the chunk's pixels are consecutive in x, whole pairs each
    ConvertToPairs(a.x + m0 * p.ic, valid * p.ic, valid * row_pairs, buf);
    for (int64_t i = valid; i < count; ++i) ZeroPairs(row_words, buf + i * row_words);
    return;
  }
  // With one group and dense columns, the taps of a kernel row are consecutive floats of x.
  const bool rows_contiguous = p.groups == 1 && p.dilation_w == 1;
  const int64_t iw_span = (p.kw - 1) * p.dilation_w;
  alignas(64) float gathered[2 * kMaxPairs];  // one kernel row of a pixel at the padding
  int64_t n = m0 / (p.oh * p.ow), oh = m0 / p.ow % p.oh, ow = m0 % p.ow;
  for (int64_t i = 0; i < valid; ++i) {
    uint32_t* row = buf + i * row_words;
    const int64_t ih0 = oh * p.stride_h - p.pad.top;
    const int64_t iw0 = ow * p.stride_w - p.pad.left;
    const float* image = a.x + n * p.ih * p.iw * p.ic + g * icg;
    const bool columns_inside = iw0 >= 0 && iw0 + iw_span < p.iw;
    for (int64_t kh = 0; kh < p.kh; ++kh, row += row_pairs) {
      const int64_t ih = ih0 + kh * p.dilation_h;
      if (ih < 0 || ih >= p.ih) {
        ZeroPairs(row_pairs, row);
      } else if (columns_inside && rows_contiguous) {
        ConvertToPairs(image + (ih * p.iw + iw0) * p.ic, row_floats, row_pairs, row);
      } else {
        for (int64_t kw = 0; kw < p.kw; ++kw) {
          const int64_t iw = iw0 + kw * p.dilation_w;
          float* dst = gathered + kw * icg;
          if (iw < 0 || iw >= p.iw) {
            std::fill(dst, dst + icg, 0.0f);
          } else {
            const float* src = image + (ih * p.iw + iw) * p.ic;
            std::copy(src, src + icg, dst);
          }
        }
        ConvertToPairs(gathered, row_floats, row_pairs, row);
      }
    }
    if (++ow == p.ow) {
      ow = 0;
      if (++oh == p.oh) {
        oh = 0;
        ++n;
      }
    }
  }
  for (int64_t i = valid; i < count; ++i) ZeroPairs(row_words, buf + i * row_words);
}

// acc[i][j] = sum over the row_words reduction steps s of the dot products of pixel i's pair
// xb[i * row_words + s] with the weight pairs w[s * block_cols + j * 16 ...].
template <size_t kRows, size_t kVecs>
CONVKIT_BF16_ATTR HWY_INLINE void DotTile(const uint32_t* HWY_RESTRICT xb, int64_t row_words,
                                          const uint32_t* HWY_RESTRICT w, int64_t block_cols,
                                          VF (&acc)[kRows][kVecs]) {
  const DF d;
  ZeroTile(acc);
  for (int64_t s = 0; s < row_words; ++s, w += block_cols) {
    __m512i wv[kVecs];
    HWY_UNROLL(16)
    for (size_t j = 0; j < kVecs; ++j) wv[j] = _mm512_load_si512(w + 16 * j);
    HWY_UNROLL(16)
    for (size_t i = 0; i < kRows; ++i) {
      const __m512i xv = _mm512_set1_epi32(static_cast<int>(xb[i * row_words + s]));
      HWY_UNROLL(16)
      for (size_t j = 0; j < kVecs; ++j) acc[i][j] = DotBf16Pairs(acc[i][j], xv, wv[j]);
    }
  }
}

// Block `block` of group g over the chunk's `count` pixels from m0, in tiles of kRows.
template <size_t kVecs>
CONVKIT_BF16_ATTR void RunBlock(const Conv2dFwdBf16Args& a, int64_t g, int64_t block, int64_t m0,
                                int64_t count, const uint32_t* HWY_RESTRICT buf) {
  constexpr size_t kRows = RowsFor(kVecs);
  const Conv2dProblem& p = *a.p;
  const DF d;
  const int64_t row_words = p.kh * a.w.row_pairs;
  const int64_t blocks = (p.oc_per_group() + a.w.block_cols - 1) / a.w.block_cols;
  const int64_t col0 = block * a.w.block_cols;
  const int64_t cols = std::min(a.w.block_cols, p.oc_per_group() - col0);
  const MF last = hn::FirstN(d, static_cast<size_t>(cols) - (kVecs - 1) * hn::Lanes(d));
  const uint32_t* w = a.w.data + (g * blocks + block) * a.w.panel_stride;
  const float* b = a.b != nullptr ? a.b + g * p.oc_per_group() + col0 : nullptr;
  const int64_t m_end = p.n * p.oh * p.ow;
  const int64_t valid = std::min(count, m_end - m0);
  for (int64_t first = 0; first < valid; first += static_cast<int64_t>(kRows)) {
    VF acc[kRows][kVecs];
    DotTile<kRows, kVecs>(buf + first * row_words, row_words, w, a.w.block_cols, acc);
    const size_t rows = static_cast<size_t>(std::min<int64_t>(valid - first, kRows));
    const int64_t offset = (m0 + first) * p.oc + g * p.oc_per_group() + col0;
    // r may equal y: StoreTile reads each vector of r before it writes y's.
    StoreTile<kRows, kVecs>(acc, rows, b, &p.post_ops, a.r != nullptr ? a.r + offset : nullptr,
                            last, a.y + offset, p.oc);
  }
}

CONVKIT_BF16_ATTR void RunBlockVecs(const Conv2dFwdBf16Args& a, int64_t g, int64_t block,
                                    int64_t m0, int64_t count, const uint32_t* buf) {
  const int64_t cols = std::min(a.w.block_cols, a.p->oc_per_group() - block * a.w.block_cols);
  switch ((cols + 15) / 16) {
    case 1:
      return RunBlock<1>(a, g, block, m0, count, buf);
    case 2:
      return RunBlock<2>(a, g, block, m0, count, buf);
    case 3:
      return RunBlock<3>(a, g, block, m0, count, buf);
    default:
      return RunBlock<4>(a, g, block, m0, count, buf);
  }
}

// Work items (chunk, group, block) [begin, end), chunk-major: a thread converts a chunk of one
// group once and runs all the blocks of its range over it.
CONVKIT_BF16_ATTR void RunItems(const Conv2dFwdBf16Args& a, int64_t chunk_pixels, int64_t blocks,
                                int64_t begin, int64_t end) {
  alignas(64) uint32_t buf[kBufferWords];
  const int64_t groups = a.p->groups;
  int64_t converted = -1;  // the (chunk, group) in buf
  for (int64_t item = begin; item < end; ++item) {
    const int64_t chunk_group = item / blocks;
    const int64_t m0 = chunk_group / groups * chunk_pixels;
    const int64_t g = chunk_group % groups;
    if (chunk_group != converted) {
      if (a.x_scale != nullptr || a.pieces != nullptr) {
        ConvertSpecialChunk(a, m0, chunk_pixels, buf);
      } else {
        ConvertChunk(a, g, m0, chunk_pixels, buf);
      }
      converted = chunk_group;
    }
    RunBlockVecs(a, g, item % blocks, m0, chunk_pixels, buf);
  }
}

// The work items (chunk, group, block) in chunk-major order, and where thread t of `threads`
// starts so that every thread gets the same number of tiles (a tile of one valid pixel costs a
// whole one): every chunk holds chunk_tiles tiles but the last, which may hold fewer (7x7 outputs
// in chunks of 18: 3, 3 and 3 tiles; weighed by pixels, 18, 18 and 13, one thread of two ran
// 33 tiles and the other 39).
struct WorkItems {
  int64_t chunk_tiles = 0;
  int64_t last_tiles = 0;  // tiles of the last chunk
  int64_t per_chunk = 0;   // groups * blocks
  int64_t count = 0;

  // Work of the items before item i, in tiles.
  int64_t WorkBefore(int64_t i) const {
    const int64_t full_items = count - per_chunk;
    if (i <= full_items) return i * chunk_tiles;
    return full_items * chunk_tiles + (i - full_items) * last_tiles;
  }
  // The first item of thread t: the smallest i with WorkBefore(i) >= t / threads of the work.
  int64_t Start(int64_t t, int64_t threads) const {
    const int64_t target = (WorkBefore(count) * t + threads - 1) / threads;
    int64_t lo = 0, hi = count;
    while (lo < hi) {
      const int64_t mid = (lo + hi) / 2;
      if (WorkBefore(mid) >= target) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    return lo;
  }
};

CONVKIT_BF16_ATTR void Conv2dFwdBf16(const Conv2dFwdBf16Args& a) {
  const Conv2dProblem& p = *a.p;
  const int64_t m = p.n * p.oh * p.ow;
  if (m == 0) return;
  const size_t block_vecs = static_cast<size_t>((a.w.block_cols + 15) / 16);
  const int64_t tile_rows = static_cast<int64_t>(RowsFor(std::min(block_vecs, kMaxVecs)));
  const int64_t chunk_pixels = ChunkPixels(m, p.kh * a.w.row_pairs, a.threads, tile_rows);
  const int64_t chunks = (m + chunk_pixels - 1) / chunk_pixels;
  const int64_t last_pixels = m - (chunks - 1) * chunk_pixels;
  const int64_t blocks = (p.oc_per_group() + a.w.block_cols - 1) / a.w.block_cols;
  WorkItems items;
  items.chunk_tiles = (chunk_pixels + tile_rows - 1) / tile_rows;
  items.last_tiles = (last_pixels + tile_rows - 1) / tile_rows;
  items.per_chunk = p.groups * blocks;
  items.count = chunks * items.per_chunk;
  ParallelTeam(a.threads, [&](int64_t thread, int64_t team) {
    RunItems(a, chunk_pixels, blocks, items.Start(thread, team), items.Start(thread + 1, team));
  });
}

Conv2dFwdBf16Kernel Kernel() {
  if (!__builtin_cpu_supports("avx512bf16")) return {};
  return {&Conv2dFwdBf16, 16, kMaxVecs, kMaxPairs, hwy::TargetName(HWY_TARGET)};
}

#else  // not AVX3: no bf16 kernel; fpmath = bf16 runs the fp32 kernels

Conv2dFwdBf16Kernel Kernel() { return {}; }

#endif  // HWY_TARGET == HWY_AVX3

}  // namespace

Conv2dFwdBf16Kernel GetConv2dFwdBf16Kernel() { return Kernel(); }

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace convkit::internal::highway {

HWY_EXPORT(GetConv2dFwdBf16Kernel);

Conv2dFwdBf16Kernel Conv2dFwdBf16KernelForCpu() {
  return HWY_DYNAMIC_DISPATCH(GetConv2dFwdBf16Kernel)();
}

}  // namespace convkit::internal::highway
#endif  // HWY_ONCE
