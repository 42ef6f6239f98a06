// Convolution through oneDNN: the forward plan (inference, fused bias and post-ops, weights packed
// once)
// and the one-shot backward passes (data; weights with oneDNN's diff_bias).
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <unordered_map>

#include "backends/onednn/onednn_common.hpp"
#include "backends/onednn/onednn_exec.hpp"
#include "backends/onednn/onednn_ops.hpp"
#include "backends/onednn/onednn_post_ops.hpp"

namespace convkit::internal::onednn {
namespace {

using dnnl::algorithm;
using dnnl::convolution_backward_data;
using dnnl::convolution_backward_weights;
using dnnl::convolution_forward;
using dnnl::memory;
using dnnl::prop_kind;

// Stride, dilation (oneDNN counts from 0: convkit's 1 is dense), and pads per side.
struct ConvGeometry {
  memory::dims strides, dilates, pad_l, pad_r;

  explicit ConvGeometry(const Conv2dProblem& p)
      : strides{p.stride_h, p.stride_w},
        dilates{p.dilation_h - 1, p.dilation_w - 1},
        pad_l{p.pad.top, p.pad.left},
        pad_r{p.pad.bottom, p.pad.right} {}
};

memory::desc XDesc(const Conv2dProblem& p) { return ActivationDesc(p.n, p.ih, p.iw, p.ic); }
memory::desc YDesc(const Conv2dProblem& p) { return ActivationDesc(p.n, p.oh, p.ow, p.oc); }

convolution_forward::desc ForwardDesc(const Conv2dProblem& p, prop_kind kind, bool with_bias) {
  const ConvGeometry g(p);
  return convolution_forward::desc(kind, algorithm::convolution_direct, XDesc(p), WeightDescAny(p),
                                   with_bias ? BiasDesc(p.oc) : memory::desc(), YDesc(p), g.strides,
                                   g.dilates, g.pad_l, g.pad_r);
}

// Copies HWIO weights into a new buffer in `packed_desc`'s layout.
memory PackWeights(const Conv2dProblem& p, const float* w, const memory::desc& packed_desc) {
  memory packed(packed_desc, Engine());
  memory user = Wrap(WeightDescHwio(p), w);
  ExecuteOnce(dnnl::reorder(user, packed), {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, packed}});
  return packed;
}

// A forward plan holds two primitives, one without and one with the residual: oneDNN fixes its
// post-ops at creation, while convkit's r is a run-time argument. The weights are reordered once
// when both primitives want the same layout (they do for every kernel seen so far).
class Conv2dFwdPlan final : public Conv2dFwdImpl {
 public:
  Conv2dFwdPlan(const Conv2dProblem& p, const float* w, const float* b) {
    const int threads = num_threads();
    ScopedOmpThreads scope(threads);  // oneDNN sizes its work split at creation

    int residual_index = -1;
    const convolution_forward::primitive_desc plain_pd = PrimitiveDesc(p, false, &residual_index);
    const convolution_forward::primitive_desc residual_pd = PrimitiveDesc(p, true, &residual_index);
    name_ = ImplName(plain_pd);

    memory bias;
    if (p.has_bias) {
      bias = memory(BiasDesc(p.oc), Engine());  // a copy: the plan keeps no reference to b
      std::memcpy(bias.get_data_handle(), b, static_cast<size_t>(p.oc) * sizeof(float));
    }
    const memory plain_w = PackWeights(p, w, plain_pd.weights_desc());
    const memory residual_w = residual_pd.weights_desc() == plain_pd.weights_desc()
                                  ? plain_w
                                  : PackWeights(p, w, residual_pd.weights_desc());
    const auto fixed = [&](const memory& packed) {
      std::vector<std::pair<int, memory>> args{{DNNL_ARG_WEIGHTS, packed}};
      if (p.has_bias) args.emplace_back(DNNL_ARG_BIAS, bias);
      return args;
    };
    plain_ = std::make_unique<PlannedExec>(plain_pd, convolution_forward(plain_pd), threads,
                                           std::vector<std::pair<int, memory::desc>>{
                                               {DNNL_ARG_SRC, XDesc(p)}, {DNNL_ARG_DST, YDesc(p)}},
                                           fixed(plain_w));
    residual_ = std::make_unique<PlannedExec>(
        residual_pd, convolution_forward(residual_pd), threads,
        std::vector<std::pair<int, memory::desc>>{
            {DNNL_ARG_SRC, XDesc(p)},
            {DNNL_ARG_ATTR_MULTIPLE_POST_OP(residual_index) | DNNL_ARG_SRC_1, YDesc(p)},
            {DNNL_ARG_DST, YDesc(p)}},
        fixed(residual_w));
  }

  void run(const float* x, const float* r, float* y) const override {
    if (r == nullptr) return plain_->Run({x, y});
    residual_->Run({x, r, y});
  }
  std::string name() const override { return name_; }

 private:
  static convolution_forward::primitive_desc PrimitiveDesc(const Conv2dProblem& p, bool residual,
                                                           int* residual_index) {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    attr.set_post_ops(MakePostOps(p.post_ops, residual, YDesc(p), residual_index));
    return convolution_forward::primitive_desc(
        ForwardDesc(p, prop_kind::forward_inference, p.has_bias), attr, Engine());
  }

  std::string name_;
  std::unique_ptr<PlannedExec> plain_;
  std::unique_ptr<PlannedExec> residual_;
};

// dx: the backward-data primitive, on weights reordered into its layout.
std::string BackwardData(const Conv2dProblem& p, const convolution_forward::primitive_desc& hint,
                         const float* w, const float* dy, float* dx) {
  const ConvGeometry g(p);
  const convolution_backward_data::primitive_desc pd(
      convolution_backward_data::desc(algorithm::convolution_direct, XDesc(p), WeightDescAny(p),
                                      YDesc(p), g.strides, g.dilates, g.pad_l, g.pad_r),
      Engine(), hint);
  ExecuteOnce(convolution_backward_data(pd),
              {{DNNL_ARG_DIFF_DST, Wrap(YDesc(p), dy)},
               {DNNL_ARG_WEIGHTS, PackWeights(p, w, pd.weights_desc())},
               {DNNL_ARG_DIFF_SRC, Wrap(XDesc(p), dx)}});
  return pd.impl_info_str();
}

// dw and/or db: the backward-weights primitive (db is its diff_bias), dw reordered back to HWIO.
std::string BackwardWeights(const Conv2dProblem& p, const convolution_forward::primitive_desc& hint,
                            const float* x, const float* dy, float* dw, float* db) {
  const ConvGeometry g(p);
  const convolution_backward_weights::primitive_desc pd(
      convolution_backward_weights::desc(algorithm::convolution_direct, XDesc(p), WeightDescAny(p),
                                         db != nullptr ? BiasDesc(p.oc) : memory::desc(), YDesc(p),
                                         g.strides, g.dilates, g.pad_l, g.pad_r),
      Engine(), hint);
  const memory::desc hwio = WeightDescHwio(p);
  // Straight into dw when oneDNN chose HWIO; otherwise into a temporary (also when only db is
  // wanted: oneDNN computes both).
  const bool direct = dw != nullptr && pd.diff_weights_desc() == hwio;
  const memory dw_mem = direct ? Wrap(hwio, dw) : memory(pd.diff_weights_desc(), Engine());

  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, Wrap(XDesc(p), x)},
                                       {DNNL_ARG_DIFF_DST, Wrap(YDesc(p), dy)},
                                       {DNNL_ARG_DIFF_WEIGHTS, dw_mem}};
  if (db != nullptr) args.emplace(DNNL_ARG_DIFF_BIAS, Wrap(BiasDesc(p.oc), db));
  ExecuteOnce(convolution_backward_weights(pd), args);

  if (dw != nullptr && !direct) {
    memory user = Wrap(hwio, dw);
    ExecuteOnce(dnnl::reorder(dw_mem, user), {{DNNL_ARG_FROM, dw_mem}, {DNNL_ARG_TO, user}});
  }
  return pd.impl_info_str();
}

}  // namespace

std::unique_ptr<Conv2dFwdImpl> CreateConv2dFwd(const Conv2dProblem& p, const float* w,
                                               const float* b) {
  return TranslateErrors("conv2d forward",
                         [&] { return std::make_unique<Conv2dFwdPlan>(p, w, b); });
}

void Conv2dBwd(const Conv2dProblem& p, const float* x, const float* w, const float* dy, float* dx,
               float* dw, float* db, std::string* impl_name) {
  TranslateErrors("conv2d backward", [&] {
    ScopedOmpThreads scope(num_threads());
    // oneDNN's backward primitives take the forward (training) descriptor as a hint.
    const convolution_forward::primitive_desc hint(
        ForwardDesc(p, prop_kind::forward_training, db != nullptr), Engine());
    std::string names;
    if (dx != nullptr) names = BackwardData(p, hint, w, dy, dx);
    if (dw != nullptr || db != nullptr) {
      names += (names.empty() ? "" : "+") + BackwardWeights(p, hint, x, dy, dw, db);
    }
    if (impl_name != nullptr) *impl_name = "onednn:" + names;
  });
}

}  // namespace convkit::internal::onednn
