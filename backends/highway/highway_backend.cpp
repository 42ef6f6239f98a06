// The Highway backend's registration point (STYLE rule 1): what it runs, and the entry points the
// registry calls. Forward convolution (issue 4), backward convolution and pooling (issue 5) run
// every parameter combination of DESIGN §3.
#include <memory>
#include <string>
#include <string_view>

#include "api/src/backend.hpp"
#include "backends/highway/conv/conv2d_bwd.hpp"
#include "backends/highway/conv/conv2d_fwd.hpp"
#include "backends/highway/pool/pool2d.hpp"

namespace convkit::internal {
namespace {

class HighwayBackend final : public Backend {
 public:
  std::string_view name() const override { return "highway"; }

  Support supports_conv2d(const Conv2dProblem&, ConvPass) const override { return Support::Yes(); }
  Support supports_pool2d(const Pool2dProblem&, PoolPass) const override { return Support::Yes(); }

  std::unique_ptr<Conv2dFwdImpl> create_conv2d_fwd(const Conv2dProblem& p, const float* w,
                                                   const float* b) const override {
    return highway::CreateConv2dFwd(p, w, b);
  }
  void conv2d_fwd(const Conv2dProblem& p, const float* x, const float* w, const float* b,
                  const float* r, float* y, std::string* impl_name) const override {
    highway::Conv2dFwdOneShot(p, x, w, b, r, y, impl_name);
  }
  Support supports_conv2d_transpose(const Conv2dTransposeProblem&) const override {
    return Support::Yes();
  }
  std::unique_ptr<Conv2dFwdImpl> create_conv2d_transpose_fwd(const Conv2dTransposeProblem& p,
                                                             const float* w,
                                                             const float* b) const override {
    return highway::CreateConv2dTransposeFwd(p, w, b);
  }
  // One-shot transposed and backward calls make a plan for one run (DxUse::kOneShot: w read in
  // place where a kernel can, the forward one-shot path for stride-1 dx) and run it.
  void conv2d_transpose_fwd(const Conv2dTransposeProblem& p, const float* x, const float* w,
                            const float* b, const float* r, float* y,
                            std::string* impl_name) const override {
    const auto plan = highway::CreateConv2dTransposeFwd(p, w, b, highway::DxUse::kOneShot);
    plan->run(x, r, y);
    if (impl_name != nullptr) *impl_name = plan->name();
  }
  std::unique_ptr<Conv2dBwdImpl> create_conv2d_bwd(const Conv2dProblem& p, const float* w,
                                                   const Conv2dGradsWanted& wanted) const override {
    return highway::CreateConv2dBwd(p, w, wanted);
  }
  void conv2d_bwd(const Conv2dProblem& p, const float* x, const float* w, const float* dy,
                  float* dx, float* dw, float* db, std::string* impl_name) const override {
    const Conv2dGradsWanted wanted{dx != nullptr, dw != nullptr, db != nullptr};
    const auto plan = highway::CreateConv2dBwd(p, w, wanted, highway::DxUse::kOneShot);
    plan->run(x, dy, dx, dw, db);
    if (impl_name != nullptr) *impl_name = plan->name();
  }

  std::unique_ptr<Pool2dFwdImpl> create_pool2d_fwd(const Pool2dProblem& p) const override {
    return highway::CreatePool2dFwd(p);
  }
  void pool2d_fwd(const Pool2dProblem& p, const float* x, float* y,
                  std::string* impl_name) const override {
    highway::Pool2dFwdOneShot(p, x, y, impl_name);
  }
  std::unique_ptr<Pool2dBwdImpl> create_pool2d_bwd(const Pool2dProblem& p) const override {
    return highway::CreatePool2dBwd(p);
  }
};

}  // namespace

const Backend& highway_backend() {
  static const HighwayBackend backend;
  return backend;
}

}  // namespace convkit::internal
