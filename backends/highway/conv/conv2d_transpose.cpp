// The Highway backend's transposed convolution: the backward-data kernels of the equivalent
// convolution (Conv2dTransposeProblem::conv), planned once (w^T packed, kernel chosen), with the
// bias, residual and activation applied in the kernels' stores (DxEpilogue).
#include <memory>
#include <string>
#include <vector>

#include "backends/highway/conv/conv2d_bwd.hpp"

namespace convkit::internal::highway {
namespace {

class Conv2dTransposeFwdPlan final : public Conv2dFwdImpl {
 public:
  Conv2dTransposeFwdPlan(const Conv2dTransposeProblem& p, const float* w, const float* b)
      : data_(p.conv, w, /*copy_w=*/true), post_ops_(p.post_ops) {
    if (p.has_bias) b_.assign(b, b + p.c_out());
  }

  void run(const float* x, const float* r, float* y) const override {
    DxEpilogue epilogue;
    epilogue.b = b_.empty() ? nullptr : b_.data();
    epilogue.post_ops = &post_ops_;
    epilogue.r = r;
    data_.Run(x, epilogue, y);
  }
  std::string name() const override { return "highway:" + data_.name(); }

 private:
  Conv2dBwdDataPlan data_;
  PostOps post_ops_;
  std::vector<float> b_;  // c_out floats, or empty without a bias
};

}  // namespace

std::unique_ptr<Conv2dFwdImpl> CreateConv2dTransposeFwd(const Conv2dTransposeProblem& p,
                                                        const float* w, const float* b) {
  return std::make_unique<Conv2dTransposeFwdPlan>(p, w, b);
}

}  // namespace convkit::internal::highway
