// The direct forward variants' target-independent part: the implicit GEMM (any problem) and the
// depthwise kernel. Plans pack the weights into C_out-blocked panels (igemm) or copy them
// (depthwise); one-shot calls read HWIO weights in place. The vector code is in
// conv2d_fwd_igemm.cc and conv2d_fwd_depthwise.cc.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>

#include "backends/highway/common/parallel.hpp"
#include "backends/highway/common/scratch.hpp"
#include "backends/highway/conv/conv2d_fwd_plan.hpp"
#include "backends/highway/conv/conv2d_fwd_variant.hpp"

namespace convkit::internal::highway {
namespace {

// How many zero floats Conv2dFwdArgs::zeros needs: a row of KW taps over all input channels.
int64_t ZerosFor(const Conv2dProblem& p) { return p.kw * p.ic; }

// The implicit GEMM's blocks: vectors per block (all of a span's groups', GroupsPerBlock).
int64_t IgemmVecs(const Conv2dProblem& p, const Conv2dFwdKernel& kernel) {
  return GroupsPerBlock(p, kernel.lanes, kernel.max_vecs) *
         VecsPerBlock(p.oc_per_group(), kernel.lanes, kernel.max_vecs);
}

// The depthwise kernel reads w as HWIO {KH, KW, 1, C}: row (kh, kw) of C floats.
Conv2dFwdWeights DepthwiseLayout(const Conv2dProblem& p, const float* w) {
  return {w, p.oc, 0, 0, p.oc};
}

bool Serial(const Conv2dProblem& p, const Conv2dFwdKernel& kernel) {
  return ThreadsFor(VectorFlops(p, kernel.lanes)) == 1;
}

std::unique_ptr<Conv2dFwdImpl> CreateIgemm(const Conv2dProblem& p, const float* w, const float* b) {
  const Conv2dFwdKernel kernel = Conv2dFwdIgemmKernel();
  const int64_t vecs = IgemmVecs(p, kernel);
  Conv2dFwdPacked packed;
  PackPanels(p, w, vecs * kernel.lanes, &packed, GroupsPerBlock(p, kernel.lanes, kernel.max_vecs));
  int64_t zeros = ZerosFor(p);
  const int64_t rows = vecs <= 4 ? kernel.rows[vecs - 1] : 0;
  if (WantsTapTable(p, rows)) {
    packed.taps = BuildTapTable(p, rows);
    zeros = std::max(zeros, packed.taps.zeros);
  }
  packed.zeros.assign(static_cast<size_t>(zeros), 0.0f);
  return MakeConv2dFwdPlan(p, kernel, std::move(packed), b, Serial(p, kernel), "igemm",
                           /*pointwise_inputs=*/IsPointwise(p));
}

std::unique_ptr<Conv2dFwdImpl> CreateDepthwise(const Conv2dProblem& p, const float* w,
                                               const float* b) {
  const Conv2dFwdKernel kernel = Conv2dFwdDepthwiseKernel();
  Conv2dFwdPacked packed;
  packed.w.assign(w, w + p.kh * p.kw * p.oc);
  packed.layout = DepthwiseLayout(p, packed.w.data());
  packed.zeros.assign(static_cast<size_t>(ZerosFor(p)), 0.0f);
  return MakeConv2dFwdPlan(p, kernel, std::move(packed), b, Serial(p, kernel), "depthwise");
}

// One-shot calls: HWIO weights in place. Taps in the padding read a zero row; 4096 floats cover
// every common layer, larger ones allocate.
void RunInPlace(const Conv2dProblem& p, const Conv2dFwdKernel& kernel, Conv2dFwdWeights layout,
                const float* x, const float* b, const float* r, float* y) {
  static const AlignedFloats kZeros(4096, 0.0f);
  AlignedFloats more_zeros;
  const float* zeros = kZeros.data();
  if (ZerosFor(p) > static_cast<int64_t>(kZeros.size())) {
    more_zeros.assign(static_cast<size_t>(ZerosFor(p)), 0.0f);
    zeros = more_zeros.data();
  }
  kernel.run({.p = &p,
              .x = x,
              .w = layout,
              .b = b,
              .zeros = zeros,
              .r = r,
              .y = y,
              .threads = ThreadsFor(VectorFlops(p, kernel.lanes))});
}

void IgemmOneShot(const Conv2dProblem& p, const float* x, const float* w, const float* b,
                  const float* r, float* y, std::string* impl_name) {
  const Conv2dFwdKernel kernel = Conv2dFwdIgemmKernel();
  RunInPlace(p, kernel,
             HwioLayout(p, w, IgemmVecs(p, kernel) * kernel.lanes,
                        GroupsPerBlock(p, kernel.lanes, kernel.max_vecs)),
             x, b, r, y);
  if (impl_name != nullptr) *impl_name = Conv2dFwdImplName("igemm", kernel);
}

void DepthwiseOneShot(const Conv2dProblem& p, const float* x, const float* w, const float* b,
                      const float* r, float* y, std::string* impl_name) {
  const Conv2dFwdKernel kernel = Conv2dFwdDepthwiseKernel();
  RunInPlace(p, kernel, DepthwiseLayout(p, w), x, b, r, y);
  if (impl_name != nullptr) *impl_name = Conv2dFwdImplName("depthwise", kernel);
}

const char* RefusesDepthwise(const Conv2dFwdQuery& q) {
  return q.p.depthwise() ? nullptr : "not depthwise";
}

const char* AcceptsAll(const Conv2dFwdQuery&) { return nullptr; }

}  // namespace

Conv2dFwdVariant Conv2dFwdDepthwiseVariant() {
  return {"depthwise", &RefusesDepthwise, &CreateDepthwise, &DepthwiseOneShot};
}

Conv2dFwdVariant Conv2dFwdIgemmVariant() {
  return {"igemm", &AcceptsAll, &CreateIgemm, &IgemmOneShot};
}

}  // namespace convkit::internal::highway
