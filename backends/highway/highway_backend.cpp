// The Highway backend's registration point (STYLE rule 1): what it runs, and the entry points the
// registry calls. Forward convolution is here (issue 4); backward passes and pooling are issue 5.
#include <memory>
#include <string>
#include <string_view>

#include "api/src/backend.hpp"
#include "backends/highway/conv2d_fwd.hpp"
#include "convkit/error.hpp"

namespace convkit::internal {
namespace {

constexpr const char* kPool2dNotYet = "highway: pool2d is not implemented yet (issue 5)";
constexpr const char* kConv2dBwdNotYet =
    "highway: conv2d backward is not implemented yet (issue 5)";

class HighwayBackend final : public Backend {
 public:
  std::string_view name() const override { return "highway"; }

  // Forward: every parameter combination. Backward: not yet.
  Support supports_conv2d(const Conv2dProblem&, ConvPass pass) const override {
    if (pass == ConvPass::kForward) return Support::Yes();
    return Support::No(kConv2dBwdNotYet);
  }
  Support supports_pool2d(const Pool2dProblem&, PoolPass) const override {
    return Support::No(kPool2dNotYet);
  }

  std::unique_ptr<Conv2dFwdImpl> create_conv2d_fwd(const Conv2dProblem& p, const float* w,
                                                   const float* b) const override {
    return highway::CreateConv2dFwd(p, w, b);
  }
  void conv2d_fwd(const Conv2dProblem& p, const float* x, const float* w, const float* b, float* y,
                  std::string* impl_name) const override {
    highway::Conv2dFwdOneShot(p, x, w, b, y, impl_name);
  }

  // The registry asks supports_*() first and never calls these after a refusal.
  std::unique_ptr<Pool2dFwdImpl> create_pool2d_fwd(const Pool2dProblem&) const override {
    throw Error(ErrorCode::kUnsupported, kPool2dNotYet);
  }
  void pool2d_fwd(const Pool2dProblem&, const float*, float*, std::string*) const override {
    throw Error(ErrorCode::kUnsupported, kPool2dNotYet);
  }
  void conv2d_bwd(const Conv2dProblem&, const float*, const float*, const float*, float*, float*,
                  float*, std::string*) const override {
    throw Error(ErrorCode::kUnsupported, kConv2dBwdNotYet);
  }
  void pool2d_bwd(const Pool2dProblem&, const float*, const float*, float*,
                  std::string*) const override {
    throw Error(ErrorCode::kUnsupported, kPool2dNotYet);
  }
};

}  // namespace

const Backend& highway_backend() {
  static const HighwayBackend backend;
  return backend;
}

}  // namespace convkit::internal
