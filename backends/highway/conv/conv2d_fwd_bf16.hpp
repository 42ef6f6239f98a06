// The Highway backend's bf16 forward convolution (fpmath = bf16, DESIGN §3): an implicit GEMM
// whose multiply-adds are AVX512-BF16 dot products (vdpbf16ps: 16 fp32 lanes, each += two bf16
// products). Compiled for the AVX3 target only, and chosen only on CPUs with the instruction; the
// other targets and CPUs run the fp32 kernels (fpmath = bf16 permits them).
#pragma once

#include <cstdint>

#include "api/src/problem.hpp"
#include "backends/highway/conv/conv2d_fwd_kernel.hpp"
#include "convkit/tensor.hpp"

namespace convkit::internal::highway {

// Weights as bf16 pairs along the reduction of each kernel row: row kh reduces over the
// KW * ICg elements e = kw * ICg + ic (the order of x's channels along a row of taps), in
// row_pairs = ceil(KW * ICg / 2) pairs. For group g, block j of block_cols output channels and
// reduction step s = kh * row_pairs + q, the block_cols uint32 at
//   data + (g * blocks + j) * panel_stride + s * block_cols
// hold, per column c, bf16 of element 2q of row kh in the low half and of element 2q + 1 in the
// high half (zero past the row's end or OCg): the operand layout of vdpbf16ps. Pairing along the
// whole row, not per tap, pads once per row: a 7x7 stem over 3 channels takes 11 pairs per row,
// not 14.
struct Conv2dFwdBf16Weights {
  const uint32_t* data = nullptr;
  int64_t row_pairs = 0;
  int64_t block_cols = 0;
  int64_t panel_stride = 0;  // KH * row_pairs * block_cols
};

// One call. x, b, r, y as for the fp32 kernels (b and r may be null; r may equal y); y does not
// overlap x. Not owned.
struct Conv2dFwdBf16Args {
  const Conv2dProblem* p = nullptr;
  const float* x = nullptr;
  Conv2dFwdBf16Weights w;
  const float* b = nullptr;
  const float* r = nullptr;
  float* y = nullptr;
  int threads = 1;
  // A pointwise convolution's special inputs (one group), as Conv2dFwdArgs': x's channel
  // multipliers (p->n == 1), or x as channel pieces (x unused). Null when absent.
  const float* x_scale = nullptr;
  const ChannelPiece* pieces = nullptr;
  int64_t piece_count = 0;
};

// The kernel of the running CPU's target: run is null when the target is not AVX3 or the CPU
// lacks AVX512-BF16. lanes is the vector width in floats, max_vecs the widest block in vectors,
// max_pairs the longest reduction (KH * row_pairs) it accepts: the input of a tile is converted
// to bf16 into a fixed stack buffer.
struct Conv2dFwdBf16Kernel {
  void (*run)(const Conv2dFwdBf16Args& args) = nullptr;
  int64_t lanes = 1;
  int64_t max_vecs = 1;
  int64_t max_pairs = 0;
  const char* isa = "";
};

Conv2dFwdBf16Kernel Conv2dFwdBf16KernelForCpu();

// Whether a chunk's im2col rows are x's pixels themselves, one after another, in whole pairs: a
// 1x1 convolution at stride 1 without padding over one group of an even channel count, whose
// chunks convert as one run (per pixel, the coordinate and padding logic cost as much as the
// conversion: 32 -> 64 at 112x112 ran 1.19x faster, 24 -> 72 at 56x56 1.34x).
inline bool FlatBf16Chunks(const Conv2dProblem& p) {
  return IsPointwise(p) && p.groups == 1 && p.ic % 2 == 0;
}

}  // namespace convkit::internal::highway
