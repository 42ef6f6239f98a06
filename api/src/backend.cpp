#include "api/src/backend.hpp"

#include "convkit/error.hpp"

namespace convkit::internal {

void Backend::conv2d_fwd(const Conv2dProblem& p, const float* x, const float* w, const float* b,
                         const float* r, float* y, std::string* impl_name) const {
  const std::unique_ptr<Conv2dFwdImpl> plan = create_conv2d_fwd(p, w, b);
  plan->run(x, r, y);
  if (impl_name != nullptr) *impl_name = plan->name();
}

void Backend::pool2d_fwd(const Pool2dProblem& p, const float* x, float* y,
                         std::string* impl_name) const {
  const std::unique_ptr<Pool2dFwdImpl> plan = create_pool2d_fwd(p);
  plan->run(x, y);
  if (impl_name != nullptr) *impl_name = plan->name();
}

NotBuiltBackend::NotBuiltBackend(std::string_view name, std::string_view why)
    : name_(name), reason_(why) {}

Support NotBuiltBackend::supports_conv2d(const Conv2dProblem&, ConvPass) const {
  return Support::No(name_ + ": " + reason_);
}

Support NotBuiltBackend::supports_pool2d(const Pool2dProblem&, PoolPass) const {
  return Support::No(name_ + ": " + reason_);
}

// The registry never calls these: it asks supports_*() first. They throw rather than crash if a
// caller skips that step.
std::unique_ptr<Conv2dFwdImpl> NotBuiltBackend::create_conv2d_fwd(const Conv2dProblem&,
                                                                  const float*,
                                                                  const float*) const {
  throw Error(ErrorCode::kBackendUnavailable, name_ + ": " + reason_);
}

std::unique_ptr<Pool2dFwdImpl> NotBuiltBackend::create_pool2d_fwd(const Pool2dProblem&) const {
  throw Error(ErrorCode::kBackendUnavailable, name_ + ": " + reason_);
}

void NotBuiltBackend::conv2d_bwd(const Conv2dProblem&, const float*, const float*, const float*,
                                 float*, float*, float*, std::string*) const {
  throw Error(ErrorCode::kBackendUnavailable, name_ + ": " + reason_);
}

void NotBuiltBackend::pool2d_bwd(const Pool2dProblem&, const float*, const float*, float*,
                                 std::string*) const {
  throw Error(ErrorCode::kBackendUnavailable, name_ + ": " + reason_);
}

}  // namespace convkit::internal
