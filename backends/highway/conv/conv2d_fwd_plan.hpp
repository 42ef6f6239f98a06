// The plan of every fp32 forward variant (implicit GEMM, depthwise, grouped, Winograd): the
// weights as the variant packed them, the bias, a zero row and, for the implicit GEMM, a tap
// table; run() hands them to the variant's kernel. Variants differ only in how they pack.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "api/src/backend.hpp"
#include "api/src/problem.hpp"
#include "backends/highway/common/scratch.hpp"
#include "backends/highway/conv/conv2d_fwd_kernel.hpp"
#include "backends/highway/conv/conv2d_fwd_taps.hpp"

namespace convkit::internal::highway {

// What a variant prepares at plan creation. `layout` points into `w` (or is a view of weights the
// plan does not own only in one-shot calls); `zeros` holds as many zero floats as the kernel reads
// for taps in the padding (may be empty for kernels that read none); `taps` is empty unless built.
struct Conv2dFwdPacked {
  AlignedFloats w;
  Conv2dFwdWeights layout;
  AlignedFloats zeros;
  TapTable taps;
};

// A plan running `kernel` on `packed`, with a copy of b (null: no bias). `serial` plans run on the
// calling thread; the others on every thread convkit uses at run() time. name() returns
// "highway:<variant>:<isa>". With `pointwise_inputs` (the implicit GEMM on a 1x1 stride-1
// problem), the kernel reads Conv2dFwdArgs::x_scale and ::pieces: the plan fuses run_scaled's
// scale (one kernel call per image) and, with one group, reads run_concatenated's pieces.
std::unique_ptr<Conv2dFwdImpl> MakeConv2dFwdPlan(const Conv2dProblem& p,
                                                 const Conv2dFwdKernel& kernel,
                                                 Conv2dFwdPacked packed, const float* b,
                                                 bool serial, const char* variant,
                                                 bool pointwise_inputs = false);

// How plans run Conv2d::run_scaled: one kernel call per image, each with its image's scale (a
// kernel tile may span two images, and the scale applies per tile). args(image, x, r, y) makes
// the kernel's arguments for `image`, the problem of one image (r null without a residual).
template <class MakeArgs, class Run>
void RunScaledPerImage(const Conv2dProblem& p, const float* x, const float* x_scale, const float* r,
                       float* y, const MakeArgs& args, Run run) {
  Conv2dProblem image = p;
  image.n = 1;
  const int64_t x_image = p.ih * p.iw * p.ic, y_image = p.oh * p.ow * p.oc;
  for (int64_t i = 0; i < p.n; ++i) {
    auto a =
        args(image, x + i * x_image, r != nullptr ? r + i * y_image : nullptr, y + i * y_image);
    a.x_scale = x_scale + i * p.ic;
    run(a);
  }
}

// `args` (the fp32 or the bf16 kernels') reading x from `pieces` (Conv2d::run_concatenated).
template <class Args>
Args WithPieces(Args args, std::span<const ChannelPiece> pieces) {
  args.pieces = pieces.data();
  args.piece_count = static_cast<int64_t>(pieces.size());
  return args;
}

// HWIO weights read in place, in blocks of block_cols columns: row r of group g (of span g, with
// groups_per_block > 1) is w + r * OC + g * groups_per_block * OCg (the implicit GEMM's and the
// stem kernel's one-shot calls).
Conv2dFwdWeights HwioLayout(const Conv2dProblem& p, const float* w, int64_t block_cols,
                            int64_t groups_per_block = 1);

// Packs HWIO weights into panels of block_cols columns and sets packed->w and packed->layout:
// group g (or span g of groups_per_block groups), block j, row r = (kh * KW + kw) * ICg + ic,
// column c at ((g * blocks + j) * K + r) * block_cols + c, zero for columns at or past the
// group's (span's) output channels. A panel is read front to back by one microkernel tile (the
// implicit GEMM and the stem kernel).
void PackPanels(const Conv2dProblem& p, const float* w, int64_t block_cols, Conv2dFwdPacked* packed,
                int64_t groups_per_block = 1);

// "highway:<variant>:<isa>".
std::string Conv2dFwdImplName(const char* variant, const Conv2dFwdKernel& kernel);

// The FLOPs a vector kernel of `lanes` floats does for p, counting whole vectors (what its time
// follows when few lanes are busy): the depthwise kernel vectorises over all channels, the others
// over a group's output channels. For ThreadsFor (common/parallel.hpp).
double VectorFlops(const Conv2dProblem& p, int64_t lanes);

}  // namespace convkit::internal::highway
