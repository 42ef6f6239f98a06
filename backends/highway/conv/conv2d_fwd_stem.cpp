// The stem forward variant's target-independent part: when it runs, the weight packing and the
// plan. The vector code is in conv2d_fwd_stem.cc.
//
// Eligible: groups 1, dilation 1, C_in <= 4, K = KH * KW * C_in <= 256 and a pixel step
// stride_w * C_in the kernel is compiled for (1, 2, 3, 4, 6 or 12: 1-4 channels at stride 1,
// 1-3 at stride 2, 3 at stride 4 (patchify 4x4/4)); any kernel size, stride_h, padding, bias,
// post-ops and residual; plans and one-shot calls (HWIO weights read in place); output rows that
// fill their tiles to at least three quarters. A network's
// first layer: the implicit GEMM spends as much on each tile's per-pixel pointers and its
// 8-pixel tiles as on the few FMAs of so short a reduction.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "backends/highway/common/parallel.hpp"
#include "backends/highway/conv/conv2d_fwd_plan.hpp"
#include "backends/highway/conv/conv2d_fwd_variant.hpp"

namespace convkit::internal::highway {
namespace {

// Past 256 reduction steps (ViT's 16x16 patches: 768) the problem is a plain GEMM with a weight
// panel beyond L1, which the implicit GEMM's K slicing handles; a stem tile keeps all of K.
constexpr int64_t kMaxStemK = 256;
// Extents past this are refused so that the row arithmetic (pixel x stride, plus padding) cannot
// overflow; no image is that large.
constexpr int64_t kMaxStemExtent = int64_t{1} << 30;

// A stem tile holds pixels of one output row (the implicit GEMM's span rows): on rows narrower
// than a tile, or just past a multiple of it, most of a tile's FMAs are for pixels that do not
// exist. 10 x 4x4x3 2x2/2 -> 8 (4-pixel rows, 16-pixel tiles) ran 2.4x slower than the implicit
// GEMM. A quarter of waste allowed keeps every stem shape of bench/shape_sets.hpp (0-2 %).
constexpr double kMaxTileWaste = 0.25;

bool WastesTiles(const Conv2dProblem& p) {
  const Conv2dFwdKernel kernel = Conv2dFwdStemKernel();
  const int64_t vecs = VecsPerBlock(p.oc, kernel.lanes, kernel.max_vecs);
  const int64_t rows = kernel.rows[std::min<int64_t>(vecs, 4) - 1];
  const int64_t computed = (p.ow + rows - 1) / rows * rows;
  return static_cast<double>(computed - p.ow) > kMaxTileWaste * static_cast<double>(computed);
}

bool StepIsCompiled(int64_t step) {
  return step == 1 || step == 2 || step == 3 || step == 4 || step == 6 || step == 12;
}

const char* RefusesStem(const Conv2dFwdQuery& q) {
  const Conv2dProblem& p = q.p;
  if (p.groups != 1) return "groups > 1";
  if (p.dilation_h != 1 || p.dilation_w != 1) return "dilation > 1";
  if (p.ic > 4) return "C_in > 4";
  // Extents first: below 2^30 each, the products below cannot overflow.
  for (int64_t extent : {p.ih, p.iw, p.kh, p.kw, p.stride_h, p.stride_w, p.pad.top, p.pad.bottom,
                         p.pad.left, p.pad.right}) {
    if (extent >= kMaxStemExtent) return "a size, stride or pad >= 2^30";
  }
  if (p.kh * p.kw * p.ic > kMaxStemK) return "KH * KW * C_in > 256";
  if (!StepIsCompiled(p.stride_w * p.ic)) {
    return "stride_w * C_in not one of 1, 2, 3, 4, 6, 12";
  }
  if (WastesTiles(p)) return "output rows waste over a quarter of the tiles' pixels";
  return nullptr;
}

int64_t BlockCols(const Conv2dProblem& p, const Conv2dFwdKernel& kernel) {
  return VecsPerBlock(p.oc, kernel.lanes, kernel.max_vecs) * kernel.lanes;
}

bool Serial(const Conv2dProblem& p, const Conv2dFwdKernel& kernel) {
  return ThreadsFor(VectorFlops(p, kernel.lanes)) == 1;
}

std::unique_ptr<Conv2dFwdImpl> CreateStem(const Conv2dProblem& p, const float* w, const float* b) {
  const Conv2dFwdKernel kernel = Conv2dFwdStemKernel();
  Conv2dFwdPacked packed;
  PackPanels(p, w, BlockCols(p, kernel), &packed);
  return MakeConv2dFwdPlan(p, kernel, std::move(packed), b, Serial(p, kernel), "stem");
}

void StemOneShot(const Conv2dProblem& p, const float* x, const float* w, const float* b,
                 const float* r, float* y, std::string* impl_name) {
  const Conv2dFwdKernel kernel = Conv2dFwdStemKernel();
  kernel.run({.p = &p,
              .x = x,
              .w = HwioLayout(p, w, BlockCols(p, kernel)),
              .b = b,
              .r = r,
              .y = y,
              .threads = Serial(p, kernel) ? 1 : num_threads()});
  if (impl_name != nullptr) *impl_name = Conv2dFwdImplName("stem", kernel);
}

}  // namespace

Conv2dFwdVariant Conv2dFwdStemVariant() {
  return {"stem", &RefusesStem, &CreateStem, &StemOneShot};
}

}  // namespace convkit::internal::highway
