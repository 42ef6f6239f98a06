// The grouped forward variants' target-independent parts: when each runs, the weight packing and
// the plan. The vector code is in conv2d_fwd_grouped.cc (narrow groups) and
// conv2d_fwd_group_copy.cc (groups of one vector at stride 1: see that file).
//
// Narrow groups, eligible: groups > 1, not depthwise, OC / groups a proper divisor of the vector
// width and IC / groups <= OC / groups (ResNeXt's 32 groups of 4 or 8 channels, RegNet's groups of
// 8 on AVX-512), any kernel, stride, padding, dilation, bias, post-ops; one-shot calls too, packing
// per call (at most KH * KW * 8 * OC floats: one-shot ResNeXt conv2 4.8x, RegNetY 1.8-1.9x faster
// than the implicit GEMM on HWIO weights). The implicit GEMM kernel fills only
// OC / groups lanes of each vector there (a quarter at ResNeXt-50's conv2); this kernel packs the
// groups of a vector into one block and fills every lane.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <utility>

#include "backends/highway/common/parallel.hpp"
#include "backends/highway/conv/conv2d_fwd_group_copy.hpp"
#include "backends/highway/conv/conv2d_fwd_plan.hpp"
#include "backends/highway/conv/conv2d_fwd_variant.hpp"

namespace convkit::internal::highway {
namespace {

// Block j, tap t, channel ic, lane l at ((j * KH * KW + t) * ICg + ic) * L + l: the HWIO row
// (t, ic) of the block's groups, which are consecutive columns of w, zeros past the last group.
void PackBlocks(const Conv2dProblem& p, const float* w, int64_t lanes, Conv2dFwdPacked* packed) {
  const int64_t icg = p.ic_per_group(), ocg = p.oc_per_group();
  const int64_t per_block = lanes / ocg;
  const int64_t blocks = (p.groups + per_block - 1) / per_block;
  const int64_t rows = p.kh * p.kw * icg;
  packed->w.assign(static_cast<size_t>(blocks * rows * lanes), 0.0f);
  for (int64_t j = 0; j < blocks; ++j) {
    const int64_t col0 = j * per_block * ocg;
    const int64_t cols = std::min(per_block, p.groups - j * per_block) * ocg;
    for (int64_t r = 0; r < rows; ++r) {
      const float* src = w + r * p.oc + col0;
      std::copy(src, src + cols, packed->w.data() + (j * rows + r) * lanes);
    }
  }
  packed->layout = {packed->w.data(), lanes, 0, rows * lanes, lanes};
}

std::unique_ptr<Conv2dFwdImpl> CreateGrouped(const Conv2dProblem& p, const float* w,
                                             const float* b) {
  const Conv2dFwdKernel kernel = Conv2dFwdGroupedKernel();
  Conv2dFwdPacked packed;
  PackBlocks(p, w, kernel.lanes, &packed);
  // Taps in the padding read zeros at any block's channel offset: IC floats, or one load.
  packed.zeros.assign(static_cast<size_t>(std::max(p.ic, kernel.lanes)), 0.0f);
  // Threads as the implicit GEMM would use for p: the work it replaces.
  const bool serial = ThreadsFor(VectorFlops(p, Conv2dFwdIgemmKernel().lanes)) == 1;
  return MakeConv2dFwdPlan(p, kernel, std::move(packed), b, serial, "grouped");
}

const char* RefusesGrouped(const Conv2dFwdQuery& q) {
  const Conv2dProblem& p = q.p;
  if (p.groups <= 1 || p.depthwise()) return "not grouped, or depthwise";
  const int64_t lanes = Conv2dFwdGroupedKernel().lanes;
  const int64_t icg = p.ic_per_group(), ocg = p.oc_per_group();
  // At OCg = L a block is one group and the implicit GEMM fills whole vectors too; with its tap
  // table it ran ResNeXt's 32 x 16-channel 3x3 1.13x faster than this kernel.
  if (ocg >= lanes || lanes % ocg != 0) {
    return "C_out / groups not a proper divisor of the vector width";
  }
  if (icg > ocg) return "C_in / groups > C_out / groups";
  return nullptr;
}

// The group-copy variant (conv2d_fwd_group_copy.cc): groups of exactly one vector of output
// channels, weights as the implicit GEMM packs them for one group per block.
std::unique_ptr<Conv2dFwdImpl> CreateGroupCopy(const Conv2dProblem& p, const float* w,
                                               const float* b) {
  const Conv2dFwdKernel kernel = Conv2dFwdGroupCopyKernel();
  Conv2dFwdPacked packed;
  PackPanels(p, w, kernel.lanes, &packed);
  const bool serial = ThreadsFor(VectorFlops(p, kernel.lanes)) == 1;
  return MakeConv2dFwdPlan(p, kernel, std::move(packed), b, serial, "group_copy");
}

const char* RefusesGroupCopy(const Conv2dFwdQuery& q) {
  const Conv2dProblem& p = q.p;
  if (p.groups <= 1 || p.depthwise()) return "not grouped, or depthwise";
  const Conv2dFwdKernel kernel = Conv2dFwdGroupCopyKernel();
  if (p.oc_per_group() != kernel.lanes) return "C_out / groups not the vector width";
  if (p.stride_h != 1 || p.stride_w != 1) return "stride > 1";
  if (GroupCopyGeometryFor(p, kernel.rows[0], kernel.rows[1]).band_tiles == 0) {
    return "input rows too wide for the group copy";
  }
  return nullptr;
}

}  // namespace

Conv2dFwdVariant Conv2dFwdGroupedVariant() {
  return {"grouped", &RefusesGrouped, &CreateGrouped, nullptr};
}

Conv2dFwdVariant Conv2dFwdGroupCopyVariant() {
  return {"group_copy", &RefusesGroupCopy, &CreateGroupCopy, nullptr};
}

}  // namespace convkit::internal::highway
