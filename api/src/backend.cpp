#include "api/src/backend.hpp"

#include "convkit/error.hpp"

namespace convkit::internal {

void Conv2dFwdImpl::run_scaled(const float*, const float*, const float*, float*) const {
  throw Error(ErrorCode::kUnsupported,
              name() + ": run_scaled on a plan that does not fuse x_scale");
}

void Conv2dFwdImpl::run_concatenated(std::span<const ChannelPiece>, const float*, float*) const {
  throw Error(ErrorCode::kUnsupported, name() +
                                           ": run_concatenated on a plan that does not "
                                           "read channel pieces");
}

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

void Backend::conv2d_bwd(const Conv2dProblem& p, const float* x, const float* w, const float* dy,
                         float* dx, float* dw, float* db, std::string* impl_name) const {
  const Conv2dGradsWanted wanted{dx != nullptr, dw != nullptr, db != nullptr};
  const std::unique_ptr<Conv2dBwdImpl> plan = create_conv2d_bwd(p, w, wanted);
  plan->run(x, dy, dx, dw, db);
  if (impl_name != nullptr) *impl_name = plan->name();
}

void Backend::pool2d_bwd(const Pool2dProblem& p, const float* x, const float* dy, float* dx,
                         std::string* impl_name) const {
  const std::unique_ptr<Pool2dBwdImpl> plan = create_pool2d_bwd(p);
  plan->run(x, dy, dx);
  if (impl_name != nullptr) *impl_name = plan->name();
}

Support supports_conv2d_bwd(const Backend& backend, const Conv2dProblem& p,
                            const Conv2dGradsWanted& wanted) {
  if (wanted.dx) {
    Support data = backend.supports_conv2d(p, ConvPass::kBackwardData);
    if (!data.ok) return data;
  }
  if (wanted.dw || wanted.db) return backend.supports_conv2d(p, ConvPass::kBackwardWeights);
  return Support::Yes();
}

void Backend::conv2d_transpose_fwd(const Conv2dTransposeProblem& p, const float* x, const float* w,
                                   const float* b, const float* r, float* y,
                                   std::string* impl_name) const {
  const std::unique_ptr<Conv2dFwdImpl> plan = create_conv2d_transpose_fwd(p, w, b);
  plan->run(x, r, y);
  if (impl_name != nullptr) *impl_name = plan->name();
}

Conv2dProblem TransposeBiasProblem(const Conv2dTransposeProblem& p) {
  Conv2dProblem q;
  q.n = p.n();
  q.ih = q.oh = p.oh();
  q.iw = q.ow = p.ow();
  q.ic = q.oc = q.groups = p.c_out();
  q.kh = q.kw = 1;
  return q;
}

Support TransposeBwdSupport(const Backend& backend, const Conv2dTransposeProblem& p, bool dx,
                            bool dw, bool db) {
  if (dx) {
    Support s = backend.supports_conv2d(p.conv, ConvPass::kForward);
    if (!s.ok) return s;
  }
  if (dw) {
    Support s = backend.supports_conv2d(p.conv, ConvPass::kBackwardWeights);
    if (!s.ok) return s;
  }
  if (db) return backend.supports_conv2d(TransposeBiasProblem(p), ConvPass::kBackwardWeights);
  return Support::Yes();
}

void Backend::conv2d_transpose_bwd(const Conv2dTransposeProblem& p, const float* x, const float* w,
                                   const float* dy, float* dx, float* dw, float* db,
                                   std::string* impl_name) const {
  std::string names, name;
  const auto add_name = [&] {
    if (names.find(name) == std::string::npos) names += (names.empty() ? "" : "+") + name;
  };
  if (dx != nullptr) {
    conv2d_fwd(p.conv, dy, w, nullptr, nullptr, dx, &name);
    add_name();
  }
  if (dw != nullptr) {
    conv2d_bwd(p.conv, dy, w, x, nullptr, dw, nullptr, &name);
    add_name();
  }
  if (db != nullptr) {
    // x of the 1x1 problem has dy's dims; with dx and dw null no backend reads it or w.
    conv2d_bwd(TransposeBiasProblem(p), dy, dy, dy, nullptr, nullptr, db, &name);
    add_name();
  }
  if (impl_name != nullptr) *impl_name = names;
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

Support NotBuiltBackend::supports_conv2d_transpose(const Conv2dTransposeProblem&) const {
  return Support::No(name_ + ": " + reason_);
}

std::unique_ptr<Conv2dFwdImpl> NotBuiltBackend::create_conv2d_transpose_fwd(
    const Conv2dTransposeProblem&, const float*, const float*) const {
  throw Error(ErrorCode::kBackendUnavailable, name_ + ": " + reason_);
}

std::unique_ptr<Pool2dFwdImpl> NotBuiltBackend::create_pool2d_fwd(const Pool2dProblem&) const {
  throw Error(ErrorCode::kBackendUnavailable, name_ + ": " + reason_);
}

std::unique_ptr<Conv2dBwdImpl> NotBuiltBackend::create_conv2d_bwd(const Conv2dProblem&,
                                                                  const float*,
                                                                  const Conv2dGradsWanted&) const {
  throw Error(ErrorCode::kBackendUnavailable, name_ + ": " + reason_);
}

std::unique_ptr<Pool2dBwdImpl> NotBuiltBackend::create_pool2d_bwd(const Pool2dProblem&) const {
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
