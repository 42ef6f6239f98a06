// Forward convolution as an implicit GEMM: M = N * OH * OW output pixels, N = OC / groups output
// channels, K = KH * KW * IC / groups, with no im2col copy. A microkernel holds kRows pixels x
// kVecs vectors of output channels in registers; per tap, each pixel reads its input directly
// (PixelTile), taps in the padding read zeros and taps in the padding for the whole tile are
// skipped. Weights are either packed panels (plans) or HWIO as given (one-shot): Conv2dFwdWeights
// covers both.
//
// Compiled once per Highway target through foreach_target.h (hwy/examples/skeleton.cc).
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backends/highway/common/parallel.hpp"
#include "backends/highway/common/scratch.hpp"
#include "backends/highway/conv/conv2d_fwd_kernel.hpp"
#include "backends/highway/conv/conv2d_fwd_tile.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/highway/conv/conv2d_fwd_igemm.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must follow foreach_target.h: re-included once per target.
#include "backends/highway/conv/conv2d_fwd_epilogue-inl.h"
#include "backends/highway/conv/conv2d_fwd_narrow-inl.h"
#include "backends/highway/conv/conv2d_igemm-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {

// Internal linkage for everything but the exported entry point. The helpers share names with
// other kernels in this per-target namespace (RunAll, same signature, in conv2d_fwd_depthwise.cc)
// but not code: with external linkage the linker keeps one definition of each template instance
// for every .cc, a silent ODR violation that picks the wrong kernel wherever a call is not inlined
// (-O0 builds).
namespace {

// The microkernel (AccumulateTap) and its shapes (kMaxVecs, RowsFor) are in conv2d_igemm-inl.h,
// shared with backward data.

// Tile heights. AccumulateTap keeps one input pointer per pixel in a general register; with 12-14
// of them, plus the weight pointer and loop counter, the 15 usable registers run out and pointers
// are reloaded from the stack (or moved from vector registers) at every reduction step, which
// binds the 1- and 2-vector kernels, not the FMAs. At 8 pixels, 13 -> 29 3x3 (tap table, 2
// vectors) ran 1.08x faster than at 12, 7 -> 5 5x5 (table, 1 vector) 1.3x faster than at 14,
// 15 -> 16 pointwise (1 vector) 1.10x and 34 -> 34 3x3 in 2 groups (2 vectors) 1.05x (1 thread).
constexpr size_t TileRowsFor(size_t vecs) {
#if HWY_TARGET == HWY_AVX3
  return vecs <= 2 ? 8 : RowsFor(vecs);
#else
  return RowsFor(vecs);
#endif
}

// Cache blocking over K. The reduction over a group's input channels is cut into slices so that
// the part of a weight panel one slice reads (KH * KW taps x slice channels x block_cols floats)
// stays in L2 while a thread sweeps pixel tiles over it. Zen 4 and Zen 5 have 1 MiB of L2 per core;
// 384 KiB leaves room for the input rows and outputs streamed alongside. Unsliced, a 3x3 x
// 512-channel x 64-column panel (1.18 MB) would come from L3 once per tile of 6 pixels.
constexpr int64_t kPanelSliceBytes = int64_t{384} << 10;
// A slice keeps at least this many channels, so that the per-tap pointer set-up (one pointer per
// pixel) stays small next to the slice's kRows * kVecs * channels FMAs.
constexpr int64_t kMinSliceChannels = 32;
// With more than one slice, partial sums go through y between slices: a sweep covers at most this
// many tiles (6-14 pixels each, so <= 64 KiB of outputs at 64 columns) so that they stay in L2.
constexpr int64_t kSweepTiles = 32;

struct ChannelSlices {
  int64_t count = 1;
  int64_t channels = 0;  // per slice; the last one may hold fewer
};

ChannelSlices SlicesFor(const Conv2dProblem& p, int64_t block_cols) {
  const int64_t icg = p.ic_per_group();
  const int64_t bytes_per_channel = p.kh * p.kw * block_cols * static_cast<int64_t>(sizeof(float));
  int64_t count = (icg * bytes_per_channel + kPanelSliceBytes - 1) / kPanelSliceBytes;
  count = std::max<int64_t>(1, std::min(count, icg / kMinSliceChannels));
  const int64_t channels = (icg + count - 1) / count;
  return {(icg + channels - 1) / channels, channels};
}

// A contiguous run of weights: the slice of a panel the thread's next sweep reads (NextWeights), or
// none (w null).
struct WeightRun {
  const float* w = nullptr;
  int64_t floats = 0;
};

// One work item: pixels [m0, m0 + kRows) x the `cols` output channels of block `block` of group
// g, reduced over the input channels [c_begin, c_end) of the group. The channel offsets are
// computed once per sweep: per tile, the two 64-bit divisions by groups and the products cost a
// sixth of a 16 -> 16 pointwise layer's time.
struct TileJob {
  int64_t g = 0;
  int64_t block = 0;
  int64_t cols = 0;
  int64_t m0 = 0;
  int64_t c_begin = 0;
  int64_t c_end = 0;
  int64_t icg = 0;    // the group's input channels
  int64_t x_col = 0;  // x's first channel read: g * icg + c_begin
  int64_t y_col = 0;  // y's first channel written: g * OC / groups + the block's first column
  const float* w = nullptr;  // the block's weight rows from c_begin (a.w.row_stride apart)
  float* x_buf = nullptr;    // kScaledX tiles: kRows rows of the slice's channels, scaled
  WeightRun next;            // the weights the thread's next sweep reads, or none
  Lookahead ahead;           // this tile's share of them (RunTiles)
};

// How a tile reads its input: as the problem says (x, any stride and padding), or pointwise from
// a.pieces, or pointwise with a.x_scale applied to its rows (AccumulateScaledRows), or as the
// problem says for a block spanning groups of one or two vectors each (GroupsPerBlock). A
// compile-time choice: tested per tile, the special inputs slowed small 1x1 layers by 3-5 %.
enum class TileInput { kPlain, kPieces, kScaledX, kGroupsOf1, kGroupsOf2 };

// AccumulateTap's kVecsPerGroup for tiles reading `input`: 0 for one group per block.
constexpr size_t VecsPerGroup(TileInput input) {
  return input == TileInput::kGroupsOf1 ? 1 : input == TileInput::kGroupsOf2 ? 2 : 0;
}

// True when the taps of one kernel row can run as one reduction (PixelTile::RowOfTaps): the input
// channels of tap (kh, kw + 1) follow those of (kh, kw) in x only with one group, dense columns
// and the job covering all channels.
HWY_INLINE bool MergesRowOfTaps(const Conv2dProblem& p, const TileJob& job) {
  return p.groups == 1 && p.dilation_w == 1 && p.kw > 1 && job.c_begin == 0 && job.c_end == p.ic;
}

// acc += the job's slice of the reduction, reading the input through PixelTile (any stride,
// padding and dilation; taps wholly in the padding are skipped). Inlined into RunTile, so that
// acc stays in registers across taps (through a call, GCC stores and reloads it at every tap).
template <size_t kRows, size_t kVecs, bool kPrefetch, size_t kVecsPerGroup>
HWY_INLINE void AccumulateTaps(const Conv2dFwdArgs& a, const TileJob& job, const float* w, MF last,
                               VF (&acc)[kRows][kVecs]) {
  const Conv2dProblem& p = *a.p;
  const int64_t icg = job.icg;
  const int64_t tap_stride = icg * a.w.row_stride;
  const PixelTile<kRows> tile(p, a.x, job.x_col, job.m0);
  const float* zeros = a.zeros + job.c_begin;
  const float* xp[kRows];
  if (MergesRowOfTaps(p, job) && tile.columns_inside()) {
    // One reduction of KW * IC steps per kernel row instead of KW of IC steps: weights rows
    // (kh, 0..KW-1, 0..IC-1) are consecutive too.
    for (int64_t kh = 0; kh < p.kh; ++kh) {
      if (!tile.RowOfTaps(kh, zeros, xp)) continue;
      AccumulateTap<kRows, kVecs, kPrefetch>(xp, w + kh * p.kw * tap_stride, a.w.row_stride,
                                             p.kw * icg, last, acc);  // one group: no span
    }
    return;
  }
  for (int64_t kh = 0; kh < p.kh; ++kh) {
    for (int64_t kw = 0; kw < p.kw; ++kw) {
      if (!tile.Tap(kh, kw, zeros, xp)) continue;
      AccumulateTap<kRows, kVecs, kPrefetch, kVecsPerGroup>(xp, w + (kh * p.kw + kw) * tap_stride,
                                                            a.w.row_stride, job.c_end - job.c_begin,
                                                            last, acc, icg);
    }
  }
}

// True when the job can read its offsets from the plan's tap table: built for this tile height,
// and the job covers every channel of its group (the table's entries span whole taps).
template <size_t kRows>
HWY_INLINE bool UsesTapTable(const Conv2dFwdArgs& a, const TileJob& job) {
  return a.taps.entries != nullptr && a.taps.rows == static_cast<int64_t>(kRows) &&
         job.c_begin == 0 && job.c_end == job.icg;
}

// acc += the whole reduction, reading each pixel's offsets from the tap table: no index
// arithmetic, and consecutive taps already merged into one reduction.
template <size_t kRows, size_t kVecs, bool kPrefetch, size_t kVecsPerGroup>
HWY_INLINE void AccumulateTable(const Conv2dFwdArgs& a, const TileJob& job, const float* w, MF last,
                                VF (&acc)[kRows][kVecs]) {
  constexpr int64_t kEntryInts = Conv2dFwdTaps::kEntryHeader + static_cast<int64_t>(kRows);
  const int64_t tile = job.m0 / static_cast<int64_t>(kRows);
  const int32_t* e = a.taps.entries + a.taps.tile_begin[tile] * kEntryInts;
  const int32_t* const end = a.taps.entries + a.taps.tile_begin[tile + 1] * kEntryInts;
  const float* x = a.x + job.x_col;  // the table's offsets are group 0's
  for (; e != end; e += kEntryInts) {
    const int32_t* off = e + Conv2dFwdTaps::kEntryHeader;
    const float* xp[kRows];
    HWY_UNROLL(16)
    for (size_t i = 0; i < kRows; ++i) xp[i] = off[i] < 0 ? a.zeros : x + off[i];
    AccumulateTap<kRows, kVecs, kPrefetch, kVecsPerGroup>(xp, w + e[0] * a.w.row_stride,
                                                          a.w.row_stride, e[1], last, acc, job.icg);
  }
}

// The input rows of a pointwise tile's pixels: row i at first + i * stride, the rows past the
// last pixel (full of kRows are real) repeating it. A running pointer: the clamped index times
// the stride per pixel compiled to vector multiplies and extracts, a third of a 16 -> 16 layer's
// time.
template <size_t kRows>
HWY_INLINE void PixelRows(const float* first, int64_t stride, int64_t full,
                          const float* (&xp)[kRows]) {
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) {
    xp[i] = first;
    if (static_cast<int64_t>(i) + 1 < full) first += stride;
  }
}

// How many of the tile's kRows pixels from m0 exist.
template <size_t kRows>
HWY_INLINE int64_t FullRows(const Conv2dProblem& p, int64_t m0) {
  return std::min<int64_t>(static_cast<int64_t>(kRows), p.n * p.oh * p.ow - m0);
}

// acc += the job's slice for a pointwise convolution: pixel m reads x + m * IC, no index
// arithmetic. Pixels past the end repeat the last one (their results are not stored).
template <size_t kRows, size_t kVecs, bool kPrefetch, size_t kVecsPerGroup>
HWY_INLINE void AccumulatePointwise(const Conv2dFwdArgs& a, const TileJob& job, const float* w,
                                    MF last, VF (&acc)[kRows][kVecs]) {
  const Conv2dProblem& p = *a.p;
  const float* xp[kRows];
  PixelRows<kRows>(a.x + job.x_col + job.m0 * p.ic, p.ic, FullRows<kRows>(p, job.m0), xp);
  AccumulateTap<kRows, kVecs, kPrefetch, kVecsPerGroup>(
      xp, w, a.w.row_stride, job.c_end - job.c_begin, last, acc, job.icg, job.ahead);
}

// acc += the job's slice for a pointwise convolution with a.x_scale, its pixels' rows scaled into
// job.x_buf first (kRows rows of the slice's channels): a pass over the tile's input instead of
// over the weights, for sweeps of few pixels (PrefersScaledPanel).
template <size_t kRows, size_t kVecs>
HWY_INLINE void AccumulateScaledRows(const Conv2dFwdArgs& a, const TileJob& job, const float* w,
                                     MF last, VF (&acc)[kRows][kVecs]) {
  const Conv2dProblem& p = *a.p;
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const int64_t k = job.c_end - job.c_begin, full = FullRows<kRows>(p, job.m0);
  const float* scale = a.x_scale + job.x_col;
  for (int64_t i = 0; i < full; ++i) {
    const float* src = a.x + (job.m0 + i) * p.ic + job.x_col;
    float* dst = job.x_buf + i * k;
    for (int64_t c = 0; c < k; c += lanes) {
      const MF m = hn::FirstN(d, static_cast<size_t>(std::min(lanes, k - c)));
      hn::BlendedStore(hn::Mul(hn::MaskedLoad(m, d, src + c), hn::MaskedLoad(m, d, scale + c)), m,
                       d, dst + c);
    }
  }
  const float* xp[kRows];
  PixelRows<kRows>(job.x_buf, k, full, xp);
  AccumulateTap<kRows, kVecs>(xp, w, a.w.row_stride, k, last, acc);
}

// acc += the whole reduction of a pointwise convolution whose x comes in channel pieces
// (Conv2d::run_concatenated; one group, one slice): piece k's channels are the next weight rows,
// and pixel m reads piece.data + m * piece.pixel_stride.
template <size_t kRows, size_t kVecs>
HWY_INLINE void AccumulatePieces(const Conv2dFwdArgs& a, const TileJob& job, const float* w,
                                 MF last, VF (&acc)[kRows][kVecs]) {
  const int64_t full = FullRows<kRows>(*a.p, job.m0);
  for (int64_t k = 0; k < a.piece_count; ++k) {
    const ChannelPiece& piece = a.pieces[k];
    const float* xp[kRows];
    PixelRows<kRows>(piece.data + job.m0 * piece.pixel_stride, piece.pixel_stride, full, xp);
    AccumulateTap<kRows, kVecs>(xp, w, a.w.row_stride, piece.channels, last, acc);
    w += piece.channels * a.w.row_stride;
  }
}

// One work item. The first slice starts from zero, later ones from the partial sums in y; the
// last slice adds the bias and applies the post-ops. (An in-place residual, r == y, would be
// overwritten by the partial sums: RunAll then does not slice.)
template <size_t kRows, size_t kVecs, TileInput kInput, bool kPrefetch>
HWY_INLINE void RunTile(const Conv2dFwdArgs& a, const TileJob& job) {
  const Conv2dProblem& p = *a.p;
  const int64_t col0 = job.y_col;
  const DF d;
  const MF last = hn::FirstN(d, static_cast<size_t>(job.cols) - (kVecs - 1) * hn::Lanes(d));
  const float* w = job.w;
  const int64_t m_end = p.n * p.oh * p.ow;
  const size_t rows =
      static_cast<size_t>(std::min<int64_t>(m_end - job.m0, static_cast<int64_t>(kRows)));
  float* y = a.y + job.m0 * p.oc + col0;

  VF acc[kRows][kVecs];
  ZeroTile(acc);
  if (job.c_begin != 0) LoadTile<kRows, kVecs>(y, p.oc, rows, last, acc);
  if constexpr (kInput == TileInput::kPieces) {
    AccumulatePieces<kRows, kVecs>(a, job, w, last, acc);
  } else if constexpr (kInput == TileInput::kScaledX) {
    AccumulateScaledRows<kRows, kVecs>(a, job, w, last, acc);
  } else if (IsPointwise(p)) {
    AccumulatePointwise<kRows, kVecs, kPrefetch, VecsPerGroup(kInput)>(a, job, w, last, acc);
  } else if (UsesTapTable<kRows>(a, job)) {
    AccumulateTable<kRows, kVecs, kPrefetch, VecsPerGroup(kInput)>(a, job, w, last, acc);
  } else {
    AccumulateTaps<kRows, kVecs, kPrefetch, VecsPerGroup(kInput)>(a, job, w, last, acc);
  }
  const bool final_slice = job.c_end == job.icg;
  const float* r = final_slice && a.r != nullptr ? a.r + job.m0 * p.oc + col0 : nullptr;
  StoreTile<kRows, kVecs>(acc, rows, final_slice && a.b != nullptr ? a.b + col0 : nullptr,
                          final_slice ? &p.post_ops : nullptr, r, last, y, p.oc);
}

// Tiles [t_begin, t_end) of the job's block and slice, with as many vectors as the block's `cols`
// need (the last block may be narrower). One call per sweep, RunTile inlined into the loop: a call
// per tile spent a quarter of a 16 -> 16 pointwise layer on its prologue and set-up. Each input
// kind is its own function: a test or a call for the special inputs in the plain loop's function
// cost it a register (16 -> 64 1x1: 0.92x).
template <size_t kRows, size_t kVecs, TileInput kInput>
void RunTiles(const Conv2dFwdArgs& a, TileJob job, int64_t t_begin, int64_t t_end) {
  if constexpr (kVecs > 1) {
    if (job.cols <= static_cast<int64_t>((kVecs - 1) * hn::Lanes(DF()))) {
      // A span's last block with one group left reads as a plain one.
      constexpr TileInput kNext = kVecs - 1 <= VecsPerGroup(kInput) ? TileInput::kPlain : kInput;
      return RunTiles<kRows, kVecs - 1, kNext>(a, job, t_begin, t_end);
    }
  }
  int64_t t = t_begin;
  if constexpr (kPrefetchesWeights && kInput != TileInput::kPieces &&
                kInput != TileInput::kScaledX) {
    if (t < t_end) {  // the sweep's first tile reads the panel's slice from memory
      job.m0 = t * static_cast<int64_t>(kRows);
      RunTile<kRows, kVecs, kInput, true>(a, job);
      ++t;
    }
  }
  // The tiles after the first prefetch the next sweep's weights, a share each.
  const int64_t parts = t_end - t;
  for (int64_t part = 0; t < t_end; ++t, ++part) {
    job.m0 = t * static_cast<int64_t>(kRows);
    if (job.next.w != nullptr) job.ahead = LookaheadPart(job.next.w, job.next.floats, part, parts);
    RunTile<kRows, kVecs, kInput, false>(a, job);
  }
}

// Whether a sweep of `tiles` tiles scales the weight panel (ScaledPanel) rather than each tile's
// input rows (kScaledX): the panel is block_cols weights a channel, a tile's rows kRows inputs a
// channel, and the panel costs its L2 room besides (EfficientNet's SE projections at 14x14 and 7x7,
// sweeps of 8 tiles or fewer: 1.12-1.20x the plain layer with panels).
template <size_t kRows>
bool PrefersScaledPanel(const Conv2dFwdArgs& a, int64_t tiles) {
  return tiles * static_cast<int64_t>(kRows) >= 4 * a.w.block_cols;
}

// The job's weight rows times their input channels' a.x_scale, into the calling thread's scratch
// (rows block_cols apart), once per sweep: multiplied per tile as they were loaded, they cost
// compute-bound 1x1 layers 10-18 % (a sixth more FMA-port work at 6 rows a tile); per sweep, the
// multiplies are a tile count fewer.
const float* ScaledPanel(const Conv2dFwdArgs& a, const TileJob& job) {
  const DF d;
  const size_t lanes = hn::Lanes(d);
  const int64_t rows = job.c_end - job.c_begin, cols = a.w.block_cols;
  float* panel = ThreadScratch(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    const VF s = hn::Set(d, a.x_scale[job.x_col + r]);
    const float* src = job.w + r * a.w.row_stride;
    for (int64_t c = 0; c < cols; c += static_cast<int64_t>(lanes)) {
      hn::Store(hn::Mul(hn::LoadU(d, src + c), s), d, panel + r * cols + c);
    }
  }
  return panel;
}

// RunTiles for the input kind of `a`; with a.x_scale, plain tiles over ScaledPanel's weights or
// kScaledX tiles (PrefersScaledPanel).
template <size_t kRows, size_t kVecs>
void RunTilesOf(const Conv2dFwdArgs& a, TileJob job, int64_t t_begin, int64_t t_end) {
  if (a.x_scale != nullptr && !PrefersScaledPanel<kRows>(a, t_end - t_begin)) {
    job.x_buf = ThreadScratch(static_cast<int64_t>(kRows) * (job.c_end - job.c_begin));
    return RunTiles<kRows, kVecs, TileInput::kScaledX>(a, job, t_begin, t_end);
  }
  if (a.x_scale != nullptr) {
    Conv2dFwdArgs scaled = a;
    scaled.x_scale = nullptr;
    scaled.w.row_stride = a.w.block_cols;
    job.w = ScaledPanel(a, job);
    return RunTiles<kRows, kVecs, TileInput::kPlain>(scaled, job, t_begin, t_end);
  }
  if (a.pieces != nullptr) {
    return RunTiles<kRows, kVecs, TileInput::kPieces>(a, job, t_begin, t_end);
  }
  if constexpr (kVecs > 1) {
    if (a.w.groups_per_block > 1 && a.p->oc_per_group() == static_cast<int64_t>(hn::Lanes(DF()))) {
      return RunTiles<kRows, kVecs, TileInput::kGroupsOf1>(a, job, t_begin, t_end);
    }
  }
  if constexpr (kVecs > 2) {
    if (a.w.groups_per_block > 1) {
      return RunTiles<kRows, kVecs, TileInput::kGroupsOf2>(a, job, t_begin, t_end);
    }
  }
  RunTiles<kRows, kVecs, TileInput::kPlain>(a, job, t_begin, t_end);
}

// How many panel groups the weights hold: the groups, or their spans of a.w.groups_per_block.
int64_t PanelGroups(const Conv2dFwdArgs& a) {
  return (a.p->groups + a.w.groups_per_block - 1) / a.w.groups_per_block;
}

// The weights of slice s of panel (g, block), when a pointwise tile reads them with a Lookahead
// (AccumulatePointwise): packed rows (block_cols apart, so the slice is contiguous) of a layer
// whose weights come from memory (LooksAhead). None otherwise.
WeightRun NextWeights(const Conv2dFwdArgs& a, const ChannelSlices& slices, int64_t g, int64_t block,
                      int64_t s) {
  const Conv2dProblem& p = *a.p;
  const int64_t icg = p.ic_per_group();
  const int64_t weight_bytes = p.oc * icg * static_cast<int64_t>(sizeof(float));
  if (!IsPointwise(p) || a.x_scale != nullptr || a.pieces != nullptr ||
      !LooksAhead(a.w.row_stride == a.w.block_cols, weight_bytes)) {
    return {};
  }
  const int64_t c_begin = s * slices.channels, c_end = std::min(icg, c_begin + slices.channels);
  return {a.w.data + g * a.w.group_stride + block * a.w.block_stride + c_begin * a.w.row_stride,
          (c_end - c_begin) * a.w.row_stride};
}

// Runs tiles [t_begin, t_end) of one (group, block) panel through every channel slice in turn, so
// that a slice of the panel is reused from L2 across the sweep. g is a panel group: a span of
// a.w.groups_per_block groups.
// `after`: the weights of the thread's sweep after this one (NextWeights), or none.
template <size_t kVecs, size_t kTileRows>
void RunSweep(const Conv2dFwdArgs& a, const ChannelSlices& slices, int64_t g, int64_t block,
              int64_t t_begin, int64_t t_end, WeightRun after) {
  const Conv2dProblem& p = *a.p;
  const int64_t icg = p.ic_per_group(), ocg = p.oc_per_group();
  const int64_t group0 = g * a.w.groups_per_block;  // the span's first group
  const int64_t span_cols = std::min(a.w.groups_per_block, p.groups - group0) * ocg;
  TileJob job;
  job.g = g;
  job.block = block;
  job.cols = std::min(a.w.block_cols, span_cols - block * a.w.block_cols);
  job.icg = icg;
  job.y_col = group0 * ocg + block * a.w.block_cols;
  for (int64_t s = 0; s < slices.count; ++s) {
    job.c_begin = s * slices.channels;
    job.c_end = std::min(icg, job.c_begin + slices.channels);
    job.x_col = group0 * icg + job.c_begin;
    job.w =
        a.w.data + g * a.w.group_stride + block * a.w.block_stride + job.c_begin * a.w.row_stride;
    job.next = s + 1 < slices.count ? NextWeights(a, slices, g, block, s + 1) : after;
    RunTilesOf<kTileRows, kVecs>(a, job, t_begin, t_end);
  }
}

// Panel-major order: the (group, block, tile) work items [begin, end), numbered so that
// consecutive items share a weight panel, in sweeps of kSweepTiles tiles when the reduction is
// sliced. Each panel stays in cache while the pixels stream past it.
template <size_t kVecs, size_t kTileRows>
void RunPanelItems(const Conv2dFwdArgs& a, const ChannelSlices& slices, int64_t tiles,
                   int64_t blocks, int64_t begin, int64_t end) {
  const int64_t sweep = slices.count > 1 ? kSweepTiles : tiles;
  for (int64_t first = begin; first < end;) {
    const int64_t panel_end = std::min(end, (first / tiles + 1) * tiles);
    const int64_t last = std::min(panel_end, first + sweep);
    const int64_t panel = first / tiles, next = last / tiles;
    const WeightRun after =
        last < end ? NextWeights(a, slices, next / blocks, next % blocks, 0) : WeightRun{};
    RunSweep<kVecs, kTileRows>(a, slices, panel / blocks, panel % blocks, first % tiles,
                               last - panel * tiles, after);
    first = last;
  }
}

// Pixel-major order, for weights that fit in L2: the tiles [begin, end) in chunks of `chunk`
// tiles, each chunk through every group and block, so that the chunk's input rows are read from
// memory once and reused from cache by every block.
template <size_t kVecs, size_t kTileRows>
void RunPixelItems(const Conv2dFwdArgs& a, const ChannelSlices& slices, int64_t blocks,
                   int64_t chunk, int64_t begin, int64_t end) {
  for (int64_t first = begin; first < end; first += chunk) {
    const int64_t last = std::min(end, first + chunk);
    for (int64_t g = 0; g < PanelGroups(a); ++g) {
      for (int64_t block = 0; block < blocks; ++block) {
        RunSweep<kVecs, kTileRows>(a, slices, g, block, first, last, WeightRun{});
      }
    }
  }
}

// Pixel-major order applies when the weights fit in L2 (kPixelMajorWeightBytes) with room for a
// chunk of input (kChunkInputBytes) and are smaller than the input: every thread then streams
// only its own pixels, once, instead of every pixel once per block (but every weight). Panel-major,
// two blocks (or groups) split between two threads made both threads stream the whole input and
// write interleaved parts of every output row (with small groups, parts of the same cache lines):
// 0.55x oneDNN at 56x56 64 -> 128 1x1, 0.97x pixel-major.
constexpr int64_t kPixelMajorWeightBytes = int64_t{512} << 10;
constexpr int64_t kChunkInputBytes = int64_t{128} << 10;

// Tiles per pixel-major chunk, or 0 when panel-major order applies (`panels`: the weight panels).
int64_t PixelChunk(const Conv2dProblem& p, int64_t panels, size_t rows) {
  const int64_t k = p.kh * p.kw * p.ic_per_group();
  const int64_t weight_bytes = p.oc * k * static_cast<int64_t>(sizeof(float));
  const int64_t x_bytes = p.n * p.ih * p.iw * p.ic * static_cast<int64_t>(sizeof(float));
  if (panels < 2 || weight_bytes > std::min(x_bytes, kPixelMajorWeightBytes)) return 0;
  // A pixel reads about IC floats per kernel row, stride permitting (neighbours share the rest).
  const int64_t tile_bytes =
      static_cast<int64_t>(rows) * p.kh * p.ic * static_cast<int64_t>(sizeof(float));
  return std::clamp<int64_t>(kChunkInputBytes / tile_bytes, 4, 64);
}

// Splits the work items into one contiguous, equal range per thread: threads then work on
// different weight panels (or different pixels) and never share an output.
template <size_t kVecs, size_t kTileRows>
void RunAll(const Conv2dFwdArgs& a) {
  constexpr int64_t kRows = static_cast<int64_t>(kTileRows);
  const Conv2dProblem& p = *a.p;
  const int64_t tiles = (p.n * p.oh * p.ow + kRows - 1) / kRows;
  const int64_t blocks =
      (a.w.groups_per_block * p.oc_per_group() + a.w.block_cols - 1) / a.w.block_cols;
  // y holds the partial sums between slices: with an in-place residual it holds r until the end.
  // Pieces are read whole by each tile (AccumulatePieces).
  const bool whole = (a.r == a.y && a.r != nullptr) || a.pieces != nullptr;
  const ChannelSlices slices =
      whole ? ChannelSlices{1, p.ic_per_group()} : SlicesFor(p, a.w.block_cols);
  const int64_t chunk = PixelChunk(p, PanelGroups(a) * blocks, kTileRows);
  const int64_t items = chunk > 0 ? tiles : PanelGroups(a) * blocks * tiles;
  const auto run = [&](int64_t begin, int64_t end) {
    if (chunk > 0) return RunPixelItems<kVecs, kTileRows>(a, slices, blocks, chunk, begin, end);
    RunPanelItems<kVecs, kTileRows>(a, slices, tiles, blocks, begin, end);
  };
  ParallelRanges(a.threads, items, run);
}

// True when tiles of kRows - 1 pixels waste less than tiles of kRows: the last tile of a small
// image computes up to kRows - 1 repeated pixels (a 7x7 output in tiles of 6 computes 54 pixels,
// in tiles of 5 only 50). Each tile also costs about one pixel's work in set-up and stores.
template <size_t kRows>
bool PrefersShorterTiles(const Conv2dProblem& p) {
  const int64_t m = p.n * p.oh * p.ow;
  const auto cost = [m](int64_t rows) { return (m + rows - 1) / rows * (rows + 1); };
  return cost(kRows - 1) < cost(kRows);
}

void Conv2dFwdIgemm(const Conv2dFwdArgs& a) {
  if (TakesNarrowPointwise(a)) {
    if (a.p->oc <= static_cast<int64_t>(hn::Lanes(DF()))) return RunNarrowPointwise<1>(a);
    return RunNarrowPointwise<2>(a);
  }
  const int64_t vecs = a.w.block_cols / static_cast<int64_t>(hn::Lanes(DF()));
  WithVecs<kMaxVecs>(vecs, [&](auto v) {
    constexpr size_t kVecs = decltype(v)::value;
    constexpr size_t kRows = TileRowsFor(kVecs);
    // One output pixel (a classifier's matrix-vector product at batch 1, a squeeze-and-excitation
    // block's 1x1 layers): a tile of one row, not kRows rows of which kRows - 1 repeat it. The
    // repeats made the layer compute-bound at a sixth of the weights' stream rate (1280 -> 1000:
    // 0.74x oneDNN).
    if (a.p->n * a.p->oh * a.p->ow == 1) return RunAll<kVecs, 1>(a);
    // A tap table holds offsets for tiles of kRows pixels.
    if constexpr (kRows >= 6) {
      if (a.taps.entries == nullptr && PrefersShorterTiles<kRows>(*a.p)) {
        return RunAll<kVecs, kRows - 1>(a);
      }
    }
    RunAll<kVecs, kRows>(a);
  });
}

}  // namespace

Conv2dFwdKernel GetConv2dFwdIgemmKernel() {
  Conv2dFwdKernel kernel{&Conv2dFwdIgemm, static_cast<int64_t>(hn::Lanes(DF())), kMaxVecs,
                         hwy::TargetName(HWY_TARGET)};
  for (size_t v = 1; v <= kMaxVecs; ++v) kernel.rows[v - 1] = static_cast<int64_t>(TileRowsFor(v));
  return kernel;
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace convkit::internal::highway {

HWY_EXPORT(GetConv2dFwdIgemmKernel);

Conv2dFwdKernel Conv2dFwdIgemmKernel() { return HWY_DYNAMIC_DISPATCH(GetConv2dFwdIgemmKernel)(); }

}  // namespace convkit::internal::highway
#endif  // HWY_ONCE
