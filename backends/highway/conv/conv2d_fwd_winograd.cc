// Forward convolution by Winograd F(2x2, 3x3) (Lavin & Gray, 2016) for 3x3, stride 1, dilation 1,
// groups 1. The output is cut into 2x2 tiles; tile t reads the 4x4 input patch d_t at
// (2 ty - pad_top, 2 tx - pad_left) (zeros outside x) and is
//   y_t = A^T [ sum over ic of U(ic, oc) (.) V_t(ic) ] A,  U = G w G^T,  V_t = B^T d_t B,
// (.) the element-wise product of 4x4 matrices: for each of the 16 positions a GEMM
// M[pos] (tiles x OC) = V[pos] (tiles x IC) * U[pos] (IC x OC), 16 multiplications per 4 outputs
// instead of 36 (2.25x fewer FMAs); the transforms are additions.
//
// Exactness (DESIGN §4): the weights are stored as U' = (2G) w (2G)^T = 4U, whose transform has
// only 0, +-1 and +-2 entries, and the output transform multiplies by 1/4 last (a power of two:
// exact). On small integer data every intermediate is then an integer far below 2^24 and y is
// bit-identical to reference; on integers scaled by 2^-149 every intermediate is an exact multiple
// of the smallest denormal. F(4x4, 3x3) (1/6, 1/24 in its transforms) would round.
//
// Per thread, blocks of tiles: input transform V[16][tiles][IC] (vectors along the channels,
// contiguous in NHWC); per output-channel block and position, AccumulateTap (conv2d_igemm-inl.h)
// over row groups of tiles into M[16][tiles][block_cols]; output transform, bias, ReLU, masked
// stores of the valid outputs (ragged right and bottom tiles store fewer).
//
// Compiled once per Highway target through foreach_target.h (hwy/examples/skeleton.cc); the
// target-independent part (choice, weight transform, plans) is in conv2d_fwd_winograd.cpp.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backends/highway/common/parallel.hpp"
#include "backends/highway/common/scratch.hpp"
#include "backends/highway/conv/conv2d_fwd_kernel.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/highway/conv/conv2d_fwd_winograd.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must follow foreach_target.h: re-included once per target.
#include "backends/highway/common/post_ops-inl.h"
#include "backends/highway/common/vec-inl.h"
#include "backends/highway/conv/conv2d_fwd_epilogue-inl.h"
#include "backends/highway/conv/conv2d_igemm-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace convkit::internal::highway {
namespace HWY_NAMESPACE {
// Internal linkage for everything but the exported entry point (see conv2d_fwd_igemm.cc: same
// names in several .cc files would otherwise be one ODR-violating template instance).
namespace {

constexpr int64_t kPositions = 16;

// Tiles per microkernel call. On AVX-512 taller than the implicit GEMM's RowsFor: 28, 27 and 28
// of the 32 registers hold accumulators (the reduction is one run of IC steps with no per-tap
// set-up to amortize, and more rows per weight load pay). Single-thread, 2 Zen 4 cores, vs
// RowsFor: 13 -> 29 (2 vectors) 159 us at 14 rows, 167 at 12, 182 at 8; 256 -> 256 at 14x14 (4
// vectors) 994 us at 7 rows, 1091 at 6.
constexpr size_t WinogradRows(size_t vecs) {
#if HWY_TARGET == HWY_AVX3
  return vecs <= 2 ? 14 : vecs == 3 ? 9 : 7;
#else
  return RowsFor(vecs);
#endif
}

// Scratch per thread: V and M of one block of tiles should stay in L2 (1 MiB per core) next to
// the U panel (IC x block_cols) being multiplied, 128 KiB at 512 x 64.
constexpr int64_t kScratchBytes = int64_t{768} << 10;
// A thread works on at most this many row groups of tiles per block: beyond it the U panel's
// reuse from L2 is already high, and smaller blocks balance the threads better.
constexpr int64_t kMaxRowGroups = 8;

// The 2x2 tiles of the output, numbered n-major, then by row and column.
struct Tiles {
  int64_t h = 0;
  int64_t w = 0;
  int64_t count = 0;
};

Tiles TilesOf(const Conv2dProblem& p) {
  Tiles t;
  t.h = (p.oh + 1) / 2;
  t.w = (p.ow + 1) / 2;
  t.count = p.n * t.h * t.w;
  return t;
}

// How the work is cut: blocks of `block_tiles` tiles, shared out among the threads as equal
// ranges of whole blocks or, with too few blocks for that (small images, deep layers), as equal
// ranges of output-channel blocks over every tile block.
struct Schedule {
  int64_t block_tiles = 0;
  int64_t tile_blocks = 0;
  int64_t col_blocks = 0;
  bool split_cols = false;
  int64_t v_stride = 0;  // floats per row of V: IC rounded up to whole vectors
};

Schedule ScheduleFor(const Conv2dFwdArgs& a, const Tiles& tiles, int64_t rows) {
  const Conv2dProblem& p = *a.p;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(DF()));
  const int64_t threads = a.threads;
  Schedule s;
  s.v_stride = (p.ic + lanes - 1) / lanes * lanes;
  s.col_blocks = (p.oc + a.w.block_cols - 1) / a.w.block_cols;
  const int64_t tile_bytes =
      kPositions * (s.v_stride + a.w.block_cols) * static_cast<int64_t>(sizeof(float));
  const int64_t max_tiles = std::clamp(kScratchBytes / tile_bytes, rows, kMaxRowGroups * rows);
  int64_t blocks = (tiles.count + max_tiles - 1) / max_tiles;
  s.split_cols = threads > 1 && blocks < 4 * threads && s.col_blocks % threads == 0;
  if (!s.split_cols) blocks = (blocks + threads - 1) / threads * threads;
  // Whole row groups when that needs no more blocks (49 tiles: 28 + 21 at 7 rows, not 25 + 24).
  const int64_t per_block = (tiles.count + blocks - 1) / blocks;
  const int64_t rounded = (per_block + rows - 1) / rows * rows;
  s.block_tiles = rounded <= max_tiles ? rounded : per_block;
  s.tile_blocks = (tiles.count + s.block_tiles - 1) / s.block_tiles;
  return s;
}

// A vector of x at `pixel` + c (zeros when pixel is null), the lanes outside `mask` zero. `full`
// says mask is all-true (a plain load).
HWY_INLINE VF LoadChannels(const float* pixel, int64_t c, bool full, MF mask) {
  const DF d;
  if (pixel == nullptr) return hn::Zero(d);
  if (full) return hn::LoadU(d, pixel + c);
  return hn::MaskedLoad(mask, d, pixel + c);
}

// v[pos * pos_stride + c] = (B^T d B)[pos] for every channel c of tile `tile`'s 4x4 patch d, with
// B^T = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]]. Rows of v are written in whole vectors (the
// lanes past IC are zeros).
void TransformInput(const Conv2dProblem& p, const float* x, const Tiles& tiles, int64_t tile,
                    float* HWY_RESTRICT v, int64_t pos_stride) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const int64_t n = tile / (tiles.h * tiles.w);
  const int64_t ih0 = tile / tiles.w % tiles.h * 2 - p.pad.top;
  const int64_t iw0 = tile % tiles.w * 2 - p.pad.left;
  const float* patch[4][4];
  const int64_t x0 = ((n * p.ih + ih0) * p.iw + iw0) * p.ic;  // offset of d[0][0], maybe outside
  for (int64_t i = 0; i < 4; ++i) {
    const bool row_inside = ih0 + i >= 0 && ih0 + i < p.ih;
    for (int64_t j = 0; j < 4; ++j) {
      const bool inside = row_inside && iw0 + j >= 0 && iw0 + j < p.iw;
      patch[i][j] = inside ? x + (x0 + (i * p.iw + j) * p.ic) : nullptr;
    }
  }
  for (int64_t c = 0; c < p.ic; c += lanes) {
    const bool full = c + lanes <= p.ic;
    const MF mask = hn::FirstN(d, static_cast<size_t>(std::min(lanes, p.ic - c)));
    VF t[4][4];  // B^T d
    for (int j = 0; j < 4; ++j) {
      const VF d0 = LoadChannels(patch[0][j], c, full, mask);
      const VF d1 = LoadChannels(patch[1][j], c, full, mask);
      const VF d2 = LoadChannels(patch[2][j], c, full, mask);
      const VF d3 = LoadChannels(patch[3][j], c, full, mask);
      t[0][j] = hn::Sub(d0, d2);
      t[1][j] = hn::Add(d1, d2);
      t[2][j] = hn::Sub(d2, d1);
      t[3][j] = hn::Sub(d1, d3);
    }
    for (int i = 0; i < 4; ++i) {
      float* row = v + i * 4 * pos_stride + c;
      hn::StoreU(hn::Sub(t[i][0], t[i][2]), d, row);
      hn::StoreU(hn::Add(t[i][1], t[i][2]), d, row + pos_stride);
      hn::StoreU(hn::Sub(t[i][2], t[i][1]), d, row + 2 * pos_stride);
      hn::StoreU(hn::Sub(t[i][1], t[i][3]), d, row + 3 * pos_stride);
    }
  }
}

// m[pos][t][0, kVecs * lanes) = V[pos] (tiles [r0, r0 + rows) x IC) * U'[pos] (IC x the
// block's columns) for one position; rows past `count` repeat the last tile and are not stored.
// kPrefetch: the first row group, which reads the panel from memory (AccumulateTap); `ahead`: a
// share of the next panel to prefetch meanwhile.
template <size_t kRows, size_t kVecs, bool kPrefetch = false>
HWY_INLINE void MultiplyRows(const Conv2dFwdArgs& a, int64_t v_stride, const float* vp,
                             const float* w, int64_t r0, int64_t count, MF last, float* mp,
                             const Lookahead& ahead) {
  const DF d;
  const size_t lanes = hn::Lanes(d);
  const int64_t bc = a.w.block_cols;
  const float* xp[kRows];
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) {
    xp[i] = vp + std::min(r0 + static_cast<int64_t>(i), count - 1) * v_stride;
  }
  VF acc[kRows][kVecs];
  ZeroTile(acc);
  AccumulateTap<kRows, kVecs, kPrefetch>(xp, w, a.w.row_stride, a.p->ic, last, acc, 0, ahead);
  const int64_t rows = std::min(count - r0, static_cast<int64_t>(kRows));
  HWY_UNROLL(16)
  for (size_t i = 0; i < kRows; ++i) {
    if (static_cast<int64_t>(i) >= rows) break;
    float* row = mp + (r0 + static_cast<int64_t>(i)) * bc;
    HWY_UNROLL(16)
    for (size_t j = 0; j < kVecs; ++j) hn::StoreU(acc[i][j], d, row + j * lanes);
  }
}

// m[pos][t][0, kVecs * lanes) = V[pos] (count x IC) * U'[pos] (IC x the block's columns) for
// every position, in row groups of kRows tiles; a last group of at most half that many runs a
// microkernel half as tall (16 tiles at 7 rows: 7 + 7 + 4 rows of FMAs, not 7 + 7 + 7).
// Position-major, so one U' panel serves every row group from L2. With U' from memory
// (kLookaheadWeightBytes), each position's row groups prefetch the next position's panel.
template <size_t kRows, size_t kVecs>
void MultiplyBlock(const Conv2dFwdArgs& a, const Schedule& s, const float* v, int64_t count,
                   int64_t block, int64_t cols, float* m) {
  constexpr size_t kHalf = (kRows + 1) / 2;
  constexpr int64_t kFull = static_cast<int64_t>(kRows);
  const DF d;
  const MF last = hn::FirstN(d, static_cast<size_t>(cols) - (kVecs - 1) * hn::Lanes(d));
  const int64_t panel_floats = a.p->ic * a.w.row_stride;
  const bool lookahead =
      LooksAhead(a.w.row_stride == a.w.block_cols,
                 kPositions * a.p->ic * a.p->oc * static_cast<int64_t>(sizeof(float)));
  const int64_t groups = (count + kFull - 1) / kFull;  // the last of at most kHalf rows: half tall
  for (int64_t pos = 0; pos < kPositions; ++pos) {
    const float* w = a.w.data + pos * a.w.group_stride + block * a.w.block_stride;
    const float* vp = v + pos * s.block_tiles * s.v_stride;
    float* mp = m + pos * s.block_tiles * a.w.block_cols;
    // The groups after the first (which prefetches its own panel) share the next panel's lines.
    const bool ahead = lookahead && pos + 1 < kPositions && groups > 1;
    for (int64_t i = 0, r0 = 0; i < groups; ++i, r0 += kFull) {
      const Lookahead share =
          ahead && i > 0 ? LookaheadPart(w + a.w.group_stride, panel_floats, i - 1, groups - 1)
                         : Lookahead{};
      if (count - r0 <= static_cast<int64_t>(kHalf)) {
        MultiplyRows<kHalf, kVecs>(a, s.v_stride, vp, w, r0, count, last, mp, share);
      } else if (i == 0) {
        MultiplyRows<kRows, kVecs, kPrefetchesWeights>(a, s.v_stride, vp, w, r0, count, last, mp,
                                                       share);
      } else {
        MultiplyRows<kRows, kVecs>(a, s.v_stride, vp, w, r0, count, last, mp, share);
      }
    }
  }
}

// r = A^T M for the vector of one tile's M at mt (position pos at mt + pos * pos_stride), with
// A^T = [[1,1,1,0],[0,1,-1,-1]].
HWY_INLINE void TransformColumns(const float* mt, int64_t pos_stride, VF (&r)[2][4]) {
  const DF d;
  for (int64_t c = 0; c < 4; ++c) {
    const float* mc = mt + c * pos_stride;
    const VF m0 = hn::LoadU(d, mc);
    const VF m1 = hn::LoadU(d, mc + 4 * pos_stride);
    const VF m2 = hn::LoadU(d, mc + 8 * pos_stride);
    const VF m3 = hn::LoadU(d, mc + 12 * pos_stride);
    r[0][c] = hn::Add(hn::Add(m0, m1), m2);
    r[1][c] = hn::Sub(hn::Sub(m1, m2), m3);
  }
}

// y of tiles [t0, t0 + count), columns of block `block`: A^T M A / 4 with
// A^T = [[1,1,1,0],[0,1,-1,-1]], plus bias, then the post-ops (the residual around `act`, the
// activation and linear map WithActivation chose); only the outputs inside y are stored.
template <size_t kVecs, class Act>
void TransformOutput(const Conv2dFwdArgs& a, const Schedule& s, const Tiles& tiles, const float* m,
                     int64_t t0, int64_t count, int64_t block, int64_t cols, const Act& act) {
  const Conv2dProblem& p = *a.p;
  const DF d;
  const size_t lanes = hn::Lanes(d);
  const MF last = hn::FirstN(d, static_cast<size_t>(cols) - (kVecs - 1) * lanes);
  const int64_t bc = a.w.block_cols;
  const int64_t col0 = block * bc;
  const int64_t pos_stride = s.block_tiles * bc;
  VF bias[kVecs];
  ZeroVecs(bias);
  if (a.b != nullptr) LoadVecs<kVecs>(a.b + col0, last, bias);
  const VF quarter = hn::Set(d, 0.25f);
  const bool fused = p.post_ops.has_elementwise() || a.r != nullptr;
  const bool after = p.post_ops.residual_after_activation;
  for (int64_t t = 0; t < count; ++t) {
    const int64_t tile = t0 + t;
    const int64_t n = tile / (tiles.h * tiles.w);
    const int64_t oh0 = tile / tiles.w % tiles.h * 2;
    const int64_t ow0 = tile % tiles.w * 2;
    const int64_t out_rows = std::min<int64_t>(2, p.oh - oh0);
    const int64_t out_cols = std::min<int64_t>(2, p.ow - ow0);
    float* y = a.y + ((n * p.oh + oh0) * p.ow + ow0) * p.oc + col0;
    const float* mt = m + t * bc;
    for (size_t j = 0; j < kVecs; ++j) {
      VF r[2][4];
      TransformColumns(mt + j * lanes, pos_stride, r);
      for (int64_t oi = 0; oi < out_rows; ++oi) {
        const VF out[2] = {hn::Add(hn::Add(r[oi][0], r[oi][1]), r[oi][2]),
                           hn::Sub(hn::Sub(r[oi][1], r[oi][2]), r[oi][3])};
        for (int64_t oj = 0; oj < out_cols; ++oj) {
          // Bias after the sum, as the reference adds it: out / 4 is exact (a power of two; on
          // integer data scaled by 2^-149 too, out being 4 y), so the FMA rounds as y + b does.
          VF v = a.b != nullptr ? hn::MulAdd(out[oj], quarter, bias[j]) : hn::Mul(out[oj], quarter);
          const int64_t at = (oi * p.ow + oj) * p.oc + static_cast<int64_t>(j * lanes);
          float* dst = y + at;
          if (fused) {
            const float* r = a.r != nullptr ? a.r + (y - a.y) + at : nullptr;
            const VF rv = r == nullptr    ? hn::Zero(d)
                          : j + 1 < kVecs ? hn::LoadU(d, r)
                                          : hn::MaskedLoad(last, d, r);
            if (r != nullptr && !after) v = hn::Add(v, rv);
            v = act(d, v);
            if (r != nullptr && after) v = hn::Add(v, rv);
          }
          if (j + 1 < kVecs) {
            hn::StoreU(v, d, dst);
          } else {
            hn::BlendedStore(v, last, d, dst);
          }
        }
      }
    }
  }
}

// Channel blocks per pass over a thread's tile blocks: the U' panels of one pass stay in L3 while
// the tile blocks stream past them, each pass transforming the input again. In one pass, U' larger
// than L3 came from DRAM once per tile block: 1024 -> 1024 at 32x32 (64 MiB of U' per block of 14
// tiles) 35.2 -> 21.6 ms, 2048 -> 256 at 32x32 19.2 -> 12.1 ms, 512 -> 1024 13.6 -> 10.9 ms (2
// threads, interleaved). At 16 MiB, 512 -> 512 (16 MiB of U': ResNet-50's and VGG's largest)
// keeps one pass, as before.
constexpr int64_t kPassBytes = int64_t{16} << 20;

int64_t BlocksPerPass(const Conv2dFwdArgs& a, int64_t tile_blocks, int64_t col_blocks) {
  if (tile_blocks <= 1) return col_blocks;  // one tile block reads each panel once anyway
  const int64_t panel = kPositions * a.p->ic * a.w.block_cols * static_cast<int64_t>(sizeof(float));
  return std::clamp<int64_t>(kPassBytes / panel, 1, col_blocks);
}

// Tile blocks [tb_begin, tb_end) x channel blocks [cb_begin, cb_end).
template <size_t kVecs>
void RunBlocks(const Conv2dFwdArgs& a, const Schedule& s, const Tiles& tiles, int64_t tb_begin,
               int64_t tb_end, int64_t cb_begin, int64_t cb_end) {
  const int64_t bc = a.w.block_cols;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(DF()));
  float* v = ThreadScratch(kPositions * s.block_tiles * (s.v_stride + bc));
  float* m = v + kPositions * s.block_tiles * s.v_stride;
  const int64_t per_pass = BlocksPerPass(a, tb_end - tb_begin, cb_end - cb_begin);
  for (int64_t pass = cb_begin; pass < cb_end; pass += per_pass) {
    for (int64_t tile_block = tb_begin; tile_block < tb_end; ++tile_block) {
      const int64_t t0 = tile_block * s.block_tiles;
      const int64_t count = std::min(s.block_tiles, tiles.count - t0);
      for (int64_t t = 0; t < count; ++t) {
        TransformInput(*a.p, a.x, tiles, t0 + t, v + t * s.v_stride, s.block_tiles * s.v_stride);
      }
      for (int64_t block = pass; block < std::min(cb_end, pass + per_pass); ++block) {
        const int64_t cols = std::min(bc, a.p->oc - block * bc);
        WithVecs<kVecs>((cols + lanes - 1) / lanes, [&](auto vecs) {
          constexpr size_t kV = decltype(vecs)::value;
          MultiplyBlock<WinogradRows(kV), kV>(a, s, v, count, block, cols, m);
          WithActivation(a.p->post_ops, [&](const auto& act) {
            TransformOutput<kV>(a, s, tiles, m, t0, count, block, cols, act);
          });
        });
      }
    }
  }
}

// Each thread an equal, contiguous range of tile blocks or of channel blocks (Schedule).
template <size_t kVecs>
void RunAll(const Conv2dFwdArgs& a) {
  const Tiles tiles = TilesOf(*a.p);
  if (tiles.count == 0) return;
  const Schedule s = ScheduleFor(a, tiles, static_cast<int64_t>(WinogradRows(kVecs)));
  if (s.split_cols) {
    return ParallelRanges(a.threads, s.col_blocks, [&](int64_t begin, int64_t end) {
      RunBlocks<kVecs>(a, s, tiles, 0, s.tile_blocks, begin, end);
    });
  }
  ParallelRanges(a.threads, s.tile_blocks, [&](int64_t begin, int64_t end) {
    RunBlocks<kVecs>(a, s, tiles, begin, end, 0, s.col_blocks);
  });
}

// a.w: U' as 16 positions (group_stride apart) of C_out-blocked IC x block_cols panels.
void Conv2dFwdWinograd(const Conv2dFwdArgs& a) {
  const int64_t vecs = a.w.block_cols / static_cast<int64_t>(hn::Lanes(DF()));
  WithVecs<kMaxVecs>(vecs, [&](auto v) { RunAll<decltype(v)::value>(a); });
}

}  // namespace

// rows stays empty: only the implicit GEMM's tap tables use it.
Conv2dFwdKernel GetConv2dFwdWinogradKernel() {
  return {&Conv2dFwdWinograd, static_cast<int64_t>(hn::Lanes(DF())), kMaxVecs,
          hwy::TargetName(HWY_TARGET)};
}

}  // namespace HWY_NAMESPACE
}  // namespace convkit::internal::highway
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace convkit::internal::highway {

HWY_EXPORT(GetConv2dFwdWinogradKernel);

Conv2dFwdKernel Conv2dFwdWinogradKernel() {
  return HWY_DYNAMIC_DISPATCH(GetConv2dFwdWinogradKernel)();
}

}  // namespace convkit::internal::highway
#endif  // HWY_ONCE
