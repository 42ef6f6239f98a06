// The Highway backend's transposed convolution: the backward data of the equivalent convolution
// (Conv2dTransposeProblem::conv), planned once (Conv2dBwdDataPlan: variant chosen, w packed), with
// the bias, residual and activation applied in the stores (the backward kernels' DxEpilogue, or
// the forward plan's epilogue where stride 1 runs it as a forward convolution).
#include <memory>
#include <string>

#include "backends/highway/conv/conv2d_bwd.hpp"

namespace convkit::internal::highway {
namespace {

class Conv2dTransposeFwdPlan final : public Conv2dFwdImpl {
 public:
  Conv2dTransposeFwdPlan(const Conv2dTransposeProblem& p, const float* w, const float* b, DxUse use)
      : data_(p.conv, w, use, p.has_bias ? b : nullptr, p.post_ops) {}

  void run(const float* x, const float* r, float* y) const override { data_.Run(x, r, y); }
  std::string name() const override { return "highway:" + data_.name(); }

 private:
  Conv2dBwdDataPlan data_;
};

}  // namespace

std::unique_ptr<Conv2dFwdImpl> CreateConv2dTransposeFwd(const Conv2dTransposeProblem& p,
                                                        const float* w, const float* b, DxUse use) {
  return std::make_unique<Conv2dTransposeFwdPlan>(p, w, b, use);
}

}  // namespace convkit::internal::highway
