// The Highway backend's forward convolution: the ordered variant list (oneDNN's impl-list
// pattern) and the two entry points. The first variant that accepts a problem runs it:
//   igemm_bf16  fpmath = bf16 on a CPU with AVX512-BF16, rows of at least 8 bf16 pairs
//   winograd    3x3, stride 1, dilation 1, groups 1, where F(2x2, 3x3) pays
//   winograd_subgrid  the same with dilation > 1, over the sub-grids of x (conv2d_fwd_subgrid)
//   grouped     narrow groups that pack several into a vector
//   depthwise   groups == C_in == C_out
//   stem        1-4 input channels, K <= 256, groups 1, dilation 1 (a network's first layer)
//   igemm       everything else (the implicit GEMM accepts every problem)
// CONVKIT_VERBOSE=2 prints each choice with the reasons the earlier entries refused.
#include "backends/highway/conv/conv2d_fwd.hpp"

#include <array>
#include <memory>
#include <span>
#include <string>

#include "backends/highway/common/variants.hpp"
#include "backends/highway/conv/conv2d_fwd_variant.hpp"

namespace convkit::internal::highway {
namespace {

Conv2dFwdVariant Choose(const Conv2dProblem& p, bool one_shot) {
  const std::array<Conv2dFwdVariant, 8> list = {
      Conv2dFwdBf16Variant(),    Conv2dFwdWinogradVariant(),  Conv2dFwdWinogradSubgridVariant(),
      Conv2dFwdGroupedVariant(), Conv2dFwdGroupCopyVariant(), Conv2dFwdDepthwiseVariant(),
      Conv2dFwdStemVariant(),    Conv2dFwdIgemmVariant()};
  const Conv2dFwdQuery q{p, one_shot};
  const size_t i = ChooseVariant(one_shot ? "conv2d_fwd_oneshot" : "conv2d_fwd",
                                 std::span<const Conv2dFwdVariant>(list), q,
                                 [](const Conv2dFwdQuery& query) { return query.p.to_string(); });
  return list[i];
}

// CreateConv2dFwdOneShot's plan for a variant with a one-shot path.
class OneShotPlan final : public Conv2dFwdImpl {
 public:
  OneShotPlan(const Conv2dProblem& p, const float* w, const float* b, Conv2dFwdVariant variant)
      : p_(p), w_(w), b_(b), variant_(variant) {}
  void run(const float* x, const float* r, float* y) const override {
    variant_.one_shot(p_, x, w_, b_, r, y, &name_);
  }
  std::string name() const override { return name_; }

 private:
  const Conv2dProblem p_;
  const float* w_;
  const float* b_;
  const Conv2dFwdVariant variant_;
  mutable std::string name_;  // set by the run (one run, on one thread)
};

}  // namespace

std::unique_ptr<Conv2dFwdImpl> CreateConv2dFwdOneShot(const Conv2dProblem& p, const float* w,
                                                      const float* b) {
  const Conv2dFwdVariant variant = Choose(p, /*one_shot=*/true);
  if (variant.one_shot == nullptr) return variant.create(p, w, b);
  return std::make_unique<OneShotPlan>(p, w, b, variant);
}

std::unique_ptr<Conv2dFwdImpl> CreateConv2dFwd(const Conv2dProblem& p, const float* w,
                                               const float* b) {
  return Choose(p, /*one_shot=*/false).create(p, w, b);
}

void Conv2dFwdOneShot(const Conv2dProblem& p, const float* x, const float* w, const float* b,
                      const float* r, float* y, std::string* impl_name) {
  const Conv2dFwdVariant variant = Choose(p, /*one_shot=*/true);
  if (variant.one_shot != nullptr) return variant.one_shot(p, x, w, b, r, y, impl_name);
  const std::unique_ptr<Conv2dFwdImpl> plan = variant.create(p, w, b);
  plan->run(x, r, y);
  if (impl_name != nullptr) *impl_name = plan->name();
}

}  // namespace convkit::internal::highway
