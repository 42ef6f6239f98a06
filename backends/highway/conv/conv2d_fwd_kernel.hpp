// The fp32 forward convolution kernels' interface: what the target-independent code (variant
// choice, packing, plans) shares with the per-target kernels (conv2d_fwd_igemm.cc, _depthwise.cc,
// _grouped.cc, _winograd.cc).
//
// The kernels are reached through one HWY_DYNAMIC_DISPATCH per plan creation or one-shot call: it
// returns a Conv2dFwdKernel holding the chosen target's entry point and its vector width, so that
// the weights packed for a width are always run by a kernel of that width.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "api/src/problem.hpp"
#include "convkit/tensor.hpp"

namespace convkit::internal::highway {

// Weights as the implicit-GEMM kernel reads them. Row r = (kh * KW + kw) * ICg + ic of the K x OCg
// matrix of group g, columns [j * block_cols, (j + 1) * block_cols), starts at
//   data + g * group_stride + j * block_stride + r * row_stride.
// Columns at or past OCg are never stored to y; they are read (masked) only within the last vector.
//
// With groups_per_block > 1 (GroupsPerBlock), "group" g above is a span of that many consecutive
// groups, whose columns one block holds side by side (OCg a multiple of the vector width): the
// block's vector v holds outputs of the span's group v * lanes / OCg, and reads that group's input
// channels. Rows are then the span's rows in HWIO order, columns [0, groups_per_block * OCg).
struct Conv2dFwdWeights {
  const float* data = nullptr;
  int64_t row_stride = 0;
  int64_t group_stride = 0;
  int64_t block_stride = 0;
  int64_t block_cols = 0;  // a multiple of the vector width: vecs_per_block * lanes
  int64_t groups_per_block = 1;
};

// Where each output pixel reads its input, computed once at plan creation so that run() does no
// index arithmetic (small problems, where that arithmetic costs as much as the FMAs). The output
// pixels are cut into tiles of `rows` consecutive pixels (the last tile repeats its last pixel, as
// PixelTile does); tile t owns entries [tile_begin[t], tile_begin[t + 1]), each of
// kEntryHeader + rows int32:
//   { r, steps, off[0], ..., off[rows - 1] }
// meaning "reduce over the `steps` weight rows r, r + 1, ...; pixel i reads `steps` consecutive
// floats from x + off[i], or from zeros when off[i] < 0". Consecutive taps whose input is
// consecutive for every pixel share one entry; taps in the padding for every pixel have none.
// Built only for groups == 1 and inputs of fewer than 2^31 floats.
struct Conv2dFwdTaps {
  static constexpr int64_t kEntryHeader = 2;
  const int32_t* entries = nullptr;
  const int32_t* tile_begin = nullptr;  // in entries, not int32s
  int64_t rows = 0;
};

// Everything a kernel call needs. `zeros` holds at least KW * IC zero floats, and as many as the
// longest entry of `taps` reads: taps (or rows of taps) falling in the padding read from it. b is
// null without bias; r, the residual of p->post_ops, null without one (it has y's dims and may
// equal y). x and y do not overlap. Not owned.
struct Conv2dFwdArgs {
  const Conv2dProblem* p = nullptr;
  const float* x = nullptr;
  Conv2dFwdWeights w;
  const float* b = nullptr;
  const float* zeros = nullptr;
  const float* r = nullptr;
  float* y = nullptr;
  int threads = 1;     // OpenMP threads; 1 runs on the calling thread with no parallel region
  Conv2dFwdTaps taps;  // a plan's tap table, or empty: the kernel then computes the offsets
  // Multipliers of x's IC channels (Conv2d::run_scaled; p->n == 1), or null. Read only by the
  // implicit GEMM's pointwise path: plans of other kernels never set it.
  const float* x_scale = nullptr;
  // x as channel pieces (Conv2d::run_concatenated; pointwise, one group), or null: x is unused.
  // Read only by the implicit GEMM.
  const ChannelPiece* pieces = nullptr;
  int64_t piece_count = 0;
};

using Conv2dFwdFn = void (*)(const Conv2dFwdArgs& args);

// True when the convolution is a plain GEMM: pixel m reads x row m (1x1, stride 1, no padding).
// Always inlined: the kernels test it per tile, and GCC did not inline it into their per-target
// code by itself (a call per tile cost a 16 -> 64 1x1 layer 8 %).
[[gnu::always_inline]] inline bool IsPointwise(const Conv2dProblem& p) {
  return p.kh == 1 && p.kw == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad.top == 0 &&
         p.pad.left == 0 && p.pad.bottom == 0 && p.pad.right == 0;
}

// One target's kernel: its entry point, vector width in floats, the largest number of vectors of
// output channels its microkernel holds (registers: 32 on AVX-512, 16 on AVX2), and its name.
struct Conv2dFwdKernel {
  Conv2dFwdFn run = nullptr;
  int64_t lanes = 1;
  int64_t max_vecs = 1;
  const char* isa = "";
  // Implicit GEMM: pixels per tile for blocks of 1-4 vectors (0: none). Group copy: rows[0] the
  // most pixels per tile, rows[1] the most output rows per tile.
  int64_t rows[4] = {};
};

// The chosen target's kernels: implicit GEMM (any stride, padding, dilation, groups); depthwise
// (groups == IC == OC; w is HWIO, i.e. {KH, KW, 1, C}); narrow groups (conv2d_fwd_grouped.hpp);
// Winograd F(2x2, 3x3) (conv2d_fwd_winograd.hpp).
Conv2dFwdKernel Conv2dFwdIgemmKernel();
Conv2dFwdKernel Conv2dFwdDepthwiseKernel();
Conv2dFwdKernel Conv2dFwdGroupedKernel();
// Groups of one vector of output channels, each group's input copied (conv2d_fwd_group_copy.cc);
// w packed by PackPanels with block_cols = lanes.
Conv2dFwdKernel Conv2dFwdGroupCopyKernel();
Conv2dFwdKernel Conv2dFwdWinogradKernel();
// Stems (conv2d_fwd_stem.cc): groups 1, dilation 1, stride_w * IC in {1, 2, 3, 4, 6, 12}; w is a
// Conv2dFwdWeights with group_stride unused; `zeros` and `taps` are not read.
Conv2dFwdKernel Conv2dFwdStemKernel();

// How many vectors of `cols` output columns one block (one microkernel call) covers, for a kernel
// of `lanes` floats per vector holding at most `max_vecs` vectors: all of them when they fit, else
// the widest block that divides them evenly (no narrow, slower tail block), else max_vecs.
// Packing and the kernels (forward, backward, bf16) all use it.
inline int64_t VecsPerBlock(int64_t cols, int64_t lanes, int64_t max_vecs) {
  const int64_t vecs = (cols + lanes - 1) / lanes;
  if (vecs <= max_vecs) return vecs;
  for (int64_t v = max_vecs; v >= 2; --v) {
    if (vecs % v == 0) return v;
  }
  return max_vecs;
}

// How many groups one implicit-GEMM block spans (Conv2dFwdWeights::groups_per_block): 1, or with
// groups of one or two whole vectors of output channels (ResNeXt's and RegNetX's 16- and 32-channel
// groups on AVX-512) as many as fill max_vecs vectors. A 16-channel group alone is one vector, 8
// accumulators for 8 pixels: too few to cover the FMA latency, and every tap's pointer set-up
// spent on 16 reduction steps of one FMA per pixel (66 % of the FMA peak on 32 groups of 16).
// (At stride 1, groups of one vector take the group-copy kernel instead, when it accepts them.)
inline int64_t GroupsPerBlock(const Conv2dProblem& p, int64_t lanes, int64_t max_vecs) {
  const int64_t ocg = p.oc_per_group();
  if (p.groups == 1 || p.depthwise() || (ocg != lanes && ocg != 2 * lanes)) return 1;
  return std::min(p.groups, max_vecs * lanes / ocg);
}

}  // namespace convkit::internal::highway
