// Pooling through oneDNN: the forward plan (inference) and the backward plan.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "backends/onednn/onednn_common.hpp"
#include "backends/onednn/onednn_exec.hpp"
#include "backends/onednn/onednn_ops.hpp"
#include "backends/onednn/onednn_pool_exact.hpp"

namespace convkit::internal::onednn {
namespace {

using dnnl::algorithm;
using dnnl::memory;
using dnnl::pooling_backward;
using dnnl::pooling_forward;
using dnnl::prop_kind;

// The bottom (right) pad that makes oneDNN's floor formula give p.oh (p.ow): ceil_mode's extra
// window becomes extra padding. PyTorch's rule (the last window starts inside the input) keeps it
// below the window, as oneDNN requires.
int64_t PadEnd(int64_t in, int64_t out, int64_t window, int64_t stride, int64_t pad_begin,
               int64_t pad_end) {
  return std::max(pad_end, (out - 1) * stride + window - in - pad_begin);
}

struct PoolGeometry {
  algorithm alg;
  memory::dims strides, kernel, pad_l, pad_r;

  explicit PoolGeometry(const Pool2dProblem& p)
      : alg(p.mode == PoolMode::kMax ? algorithm::pooling_max
            : p.count_include_pad    ? algorithm::pooling_avg_include_padding
                                     : algorithm::pooling_avg_exclude_padding),
        strides{p.stride_h, p.stride_w},
        kernel{p.kh, p.kw},
        pad_l{p.pad.top, p.pad.left},
        pad_r{PadEnd(p.ih, p.oh, p.kh, p.stride_h, p.pad.top, p.pad.bottom),
              PadEnd(p.iw, p.ow, p.kw, p.stride_w, p.pad.left, p.pad.right)} {}
};

memory::desc XDesc(const Pool2dProblem& p) { return ActivationDesc(p.n, p.ih, p.iw, p.c); }
memory::desc YDesc(const Pool2dProblem& p) { return ActivationDesc(p.n, p.oh, p.ow, p.c); }
int64_t XCount(const Pool2dProblem& p) { return p.n * p.ih * p.iw * p.c; }

pooling_forward::desc ForwardDesc(const Pool2dProblem& p, prop_kind kind) {
  const PoolGeometry g(p);
  return pooling_forward::desc(kind, g.alg, XDesc(p), YDesc(p), g.strides, g.kernel, g.pad_l,
                               g.pad_r);
}

class Pool2dFwdPlan final : public Pool2dFwdImpl {
 public:
  explicit Pool2dFwdPlan(const Pool2dProblem& p) : p_(p) {
    const int threads = num_threads();
    ScopedOmpThreads scope(threads);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const pooling_forward::primitive_desc pd(ForwardDesc(p, prop_kind::forward_inference), attr,
                                             Engine());
    name_ = ImplName(pd);
    exec_ = std::make_unique<PlannedExec>(pd, pooling_forward(pd), threads,
                                          std::vector<std::pair<int, memory::desc>>{
                                              {DNNL_ARG_SRC, XDesc(p)}, {DNNL_ARG_DST, YDesc(p)}},
                                          std::vector<std::pair<int, memory>>{});
  }

  void run(const float* x, float* y) const override {
    if (p_.mode == PoolMode::kMax && HasMaxPoolSpecials(x, XCount(p_), exec_->num_threads())) {
      MaxPoolFwdExact(p_, x, y, exec_->num_threads());
      return;
    }
    exec_->Run({x, y});
  }
  std::string name() const override { return name_; }

 private:
  Pool2dProblem p_;
  std::string name_;
  std::unique_ptr<PlannedExec> exec_;
};

// Backward: for max pooling a training forward into per-slot temporaries (y, workspace: the argmax
// of each window, one byte per output element for windows below 256 taps), then the backward
// primitive on that workspace; for average the backward primitive alone. Bound buffers: x, dy, dx.
class Pool2dBwdPlan final : public Pool2dBwdImpl {
 public:
  explicit Pool2dBwdPlan(const Pool2dProblem& p) : p_(p) {
    using Kind = ExecRef::Kind;
    const int threads = num_threads();
    ScopedOmpThreads scope(threads);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const PoolGeometry g(p);
    const pooling_forward::primitive_desc fwd(ForwardDesc(p, prop_kind::forward_training), attr,
                                              Engine());
    const pooling_backward::primitive_desc bwd(
        pooling_backward::desc(g.alg, XDesc(p), YDesc(p), g.strides, g.kernel, g.pad_l, g.pad_r),
        attr, Engine(), fwd);
    name_ = ImplName(bwd);
    std::vector<ExecStep> steps;
    std::vector<memory::desc> owned;
    ExecStep backward{
        pooling_backward(bwd),
        bwd.scratchpad_desc(),
        {{DNNL_ARG_DIFF_DST, {Kind::kBound, 1}}, {DNNL_ARG_DIFF_SRC, {Kind::kBound, 2}}}};
    if (p.mode == PoolMode::kMax) {
      owned = {YDesc(p), fwd.workspace_desc()};
      steps.push_back({pooling_forward(fwd),
                       fwd.scratchpad_desc(),
                       {{DNNL_ARG_SRC, {Kind::kBound, 0}},
                        {DNNL_ARG_DST, {Kind::kOwned, 0}},
                        {DNNL_ARG_WORKSPACE, {Kind::kOwned, 1}}}});
      backward.args.push_back({DNNL_ARG_WORKSPACE, {Kind::kOwned, 1}});
    }
    steps.push_back(std::move(backward));
    exec_ = std::make_unique<PlannedExec>(std::move(steps), threads,
                                          std::vector<memory::desc>{XDesc(p), YDesc(p), XDesc(p)},
                                          std::move(owned), std::vector<memory>{});
  }

  void run(const float* x, const float* dy, float* dx) const override {
    if (p_.mode == PoolMode::kMax && HasMaxPoolSpecials(x, XCount(p_), exec_->num_threads())) {
      MaxPoolBwdExact(p_, x, dy, dx, exec_->num_threads());
      return;
    }
    exec_->Run({x, dy, dx});
  }
  std::string name() const override { return name_; }

 private:
  Pool2dProblem p_;
  std::string name_;
  std::unique_ptr<PlannedExec> exec_;
};

}  // namespace

std::string Pool2dRefusal(const Pool2dProblem& p) {
  if (p.mode == PoolMode::kAverage && p.count_include_pad) {
    const PoolGeometry g(p);
    if (g.pad_r[0] > p.pad.bottom || g.pad_r[1] > p.pad.right) {
      return "onednn: average pooling with count_include_pad whose ceil_mode window reaches past "
             "the padded input: oneDNN divides that window by the full window size, DESIGN §4 by "
             "the window clipped to the padded input";
    }
  }
  return {};
}

std::unique_ptr<Pool2dFwdImpl> CreatePool2dFwd(const Pool2dProblem& p) {
  return TranslateErrors("pool2d forward", [&] { return std::make_unique<Pool2dFwdPlan>(p); });
}

std::unique_ptr<Pool2dBwdImpl> CreatePool2dBwd(const Pool2dProblem& p) {
  return TranslateErrors("pool2d backward", [&] { return std::make_unique<Pool2dBwdPlan>(p); });
}

void Pool2dBwd(const Pool2dProblem& p, const float* x, const float* dy, float* dx,
               std::string* impl_name) {
  const int threads = num_threads();
  if (p.mode == PoolMode::kMax && HasMaxPoolSpecials(x, XCount(p), threads)) {
    MaxPoolBwdExact(p, x, dy, dx, threads);
    if (impl_name != nullptr) *impl_name = "onednn:exact_max_fallback:scalar";
    return;
  }
  const std::unique_ptr<Pool2dBwdImpl> plan = CreatePool2dBwd(p);
  plan->run(x, dy, dx);
  if (impl_name != nullptr) *impl_name = plan->name();
}

}  // namespace convkit::internal::onednn
