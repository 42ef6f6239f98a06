// Convolution through oneDNN: the forward plan (inference, fused bias and post-ops, weights packed
// once) and the backward plan (data; weights with oneDNN's diff_bias), primitives created once.
#include <omp.h>

#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

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

std::string FwdImplName(const Conv2dProblem& p, const convolution_forward::primitive_desc& pd) {
  return ImplName(pd, p.bf16());
}

// A forward plan holds two primitives, one without and one with the residual: oneDNN fixes its
// post-ops at creation, while convkit's r is a run-time argument. The weights are reordered once
// when both primitives want the same layout (they do for every kernel seen so far).
class Conv2dFwdPlan final : public Conv2dFwdImpl {
 public:
  Conv2dFwdPlan(const Conv2dProblem& p, const float* w, const float* b) {
    const int threads = num_threads();
    ScopedOmpThreads scope(threads);  // oneDNN sizes its work split at creation

    const convolution_forward::primitive_desc plain_pd = *PrimitiveDesc(p, false);
    const std::optional<convolution_forward::primitive_desc> residual_pd = PrimitiveDesc(p, true);
    name_ = FwdImplName(p, plain_pd);

    memory bias;
    if (p.has_bias) {
      bias = memory(BiasDesc(p.oc), Engine());  // a copy: the plan keeps no reference to b
      std::memcpy(bias.get_data_handle(), b, static_cast<size_t>(p.oc) * sizeof(float));
    }
    const memory plain_w = PackWeights(p, w, plain_pd.weights_desc());
    y_size_ = p.n * p.oh * p.ow * p.oc;
    threads_ = threads;
    const auto fixed = [&](const memory& packed) {
      std::vector<std::pair<int, memory>> args{{DNNL_ARG_WEIGHTS, packed}};
      if (p.has_bias) args.emplace_back(DNNL_ARG_BIAS, bias);
      return args;
    };
    plain_ = std::make_unique<PlannedExec>(plain_pd, convolution_forward(plain_pd), threads,
                                           std::vector<std::pair<int, memory::desc>>{
                                               {DNNL_ARG_SRC, XDesc(p)}, {DNNL_ARG_DST, YDesc(p)}},
                                           fixed(plain_w));
    if (!residual_pd) return;  // runs with a residual are refused (run())
    const memory residual_w = residual_pd->weights_desc() == plain_pd.weights_desc()
                                  ? plain_w
                                  : PackWeights(p, w, residual_pd->weights_desc());
    residual_ =
        std::make_unique<PlannedExec>(*residual_pd, convolution_forward(*residual_pd), threads,
                                      std::vector<std::pair<int, memory::desc>>{
                                          {DNNL_ARG_SRC, XDesc(p)}, {DNNL_ARG_DST, YDesc(p)}},
                                      fixed(residual_w));
  }

  void run(const float* x, const float* r, float* y) const override {
    if (r == nullptr) return plain_->Run({x, y});
    if (residual_ == nullptr) {
      throw Error(ErrorCode::kUnsupported,
                  "onednn: a residual on this convolution: only oneDNN's brgconv runs it, and its "
                  "sum post-op is wrong where output windows lie wholly in the padding");
    }
    if (r != y) CopyResidual(r, y);
    residual_->Run({x, y});
  }
  std::string name() const override { return name_; }

 private:
  // The primitive with or without the residual's sum; nullopt when no kernel runs it right.
  static std::optional<convolution_forward::primitive_desc> PrimitiveDesc(const Conv2dProblem& p,
                                                                          bool residual) {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    attr.set_post_ops(MakePostOps(p.post_ops, residual));
    // fpmath = bf16 lets oneDNN round x and w to bf16 (its fpmath_mode, same meaning).
    if (p.bf16()) attr.set_fpmath_mode(dnnl::fpmath_mode::bf16);
    convolution_forward::primitive_desc pd(ForwardDesc(p, prop_kind::forward_inference, p.has_bias),
                                           attr, Engine());
    // brgconv's sum is wrong where windows lie wholly in the padding (onednn_post_ops.hpp).
    if (residual && HasWindowInPadding(p)) {
      while (std::string_view(pd.impl_info_str()).starts_with("brg")) {
        if (!pd.next_impl()) return std::nullopt;
      }
    }
    return pd;
  }

  // y = r before the sum post-op reads it: one parallel pass, split in contiguous halves.
  void CopyResidual(const float* r, float* y) const {
    const int64_t size = y_size_;
    constexpr int64_t kMinParallelFloats = int64_t{1} << 16;  // below: a parallel region costs more
    const int threads = size < kMinParallelFloats ? 1 : threads_;
#pragma omp parallel num_threads(threads)
    {
      const int64_t t = omp_get_thread_num(), count = omp_get_num_threads();
      const int64_t begin = size * t / count, end = size * (t + 1) / count;
      std::memcpy(y + begin, r + begin, static_cast<size_t>(end - begin) * sizeof(float));
    }
  }

  std::string name_;
  std::unique_ptr<PlannedExec> plain_;
  std::unique_ptr<PlannedExec> residual_;
  int64_t y_size_ = 0;
  int threads_ = 1;
};

// The backward primitives of one problem, created once: backward data on w reordered into its
// layout (a fixed memory that set_weights refreshes), backward weights (db is its diff_bias)
// writing dw straight into the caller's HWIO buffer when oneDNN chose HWIO, else into a per-slot
// temporary reordered to HWIO by a second step. oneDNN computes dw whenever it computes db, so db
// alone also gets the temporary.
class Conv2dBwdPlan final : public Conv2dBwdImpl {
 public:
  Conv2dBwdPlan(const Conv2dProblem& p, const float* w, const Conv2dGradsWanted& wanted)
      : p_(p), wanted_(wanted) {
    const int threads = num_threads();
    ScopedOmpThreads scope(threads);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    // oneDNN's backward primitives take the forward (training) descriptor as a hint.
    const convolution_forward::primitive_desc hint(
        ForwardDesc(p, prop_kind::forward_training, wanted.db), Engine());
    std::string names;
    if (wanted.dx) names = PlanData(hint, attr, threads, w);
    if (wanted.dw || wanted.db) {
      names += (names.empty() ? "" : "+") + PlanWeights(hint, attr, threads);
    }
    name_ = "onednn:" + names;
  }

  void set_weights(const float* w) override {
    if (!wanted_.dx) return;  // dw and db do not read w
    TranslateErrors("conv2d backward set_weights", [&] {
      ScopedOmpThreads scope(data_->num_threads());
      memory user = Wrap(WeightDescHwio(p_), w);
      ExecuteOnce(dnnl::reorder(user, packed_w_),
                  {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, packed_w_}});
    });
  }

  void run(const float* x, const float* dy, float* dx, float* dw, float* db) const override {
    if (wanted_.dx) data_->Run({dy, dx});
    if (!weights_) return;
    const void* buffers[4] = {x, dy};
    size_t count = 2;
    if (wanted_.dw) buffers[count++] = dw;
    if (wanted_.db) buffers[count++] = db;
    weights_->Run(std::span<const void* const>(buffers, count));
  }

  std::string name() const override { return name_; }

 private:
  std::string PlanData(const convolution_forward::primitive_desc& hint,
                       const dnnl::primitive_attr& attr, int threads, const float* w) {
    const ConvGeometry g(p_);
    const convolution_backward_data::primitive_desc pd(
        convolution_backward_data::desc(algorithm::convolution_direct, XDesc(p_), WeightDescAny(p_),
                                        YDesc(p_), g.strides, g.dilates, g.pad_l, g.pad_r),
        attr, Engine(), hint);
    packed_w_ = PackWeights(p_, w, pd.weights_desc());
    data_ = std::make_unique<PlannedExec>(
        pd, convolution_backward_data(pd), threads,
        std::vector<std::pair<int, memory::desc>>{{DNNL_ARG_DIFF_DST, YDesc(p_)},
                                                  {DNNL_ARG_DIFF_SRC, XDesc(p_)}},
        std::vector<std::pair<int, memory>>{{DNNL_ARG_WEIGHTS, packed_w_}});
    return pd.impl_info_str();
  }

  // Bound buffers in Run's order: x, dy, then dw (HWIO) if wanted, then db if wanted.
  std::string PlanWeights(const convolution_forward::primitive_desc& hint,
                          const dnnl::primitive_attr& attr, int threads) {
    using Kind = ExecRef::Kind;
    const ConvGeometry g(p_);
    const convolution_backward_weights::primitive_desc pd(
        convolution_backward_weights::desc(algorithm::convolution_direct, XDesc(p_),
                                           WeightDescAny(p_),
                                           wanted_.db ? BiasDesc(p_.oc) : memory::desc(), YDesc(p_),
                                           g.strides, g.dilates, g.pad_l, g.pad_r),
        attr, Engine(), hint);
    const memory::desc hwio = WeightDescHwio(p_);
    const bool direct = wanted_.dw && pd.diff_weights_desc() == hwio;
    std::vector<memory::desc> bound{XDesc(p_), YDesc(p_)};
    std::vector<memory::desc> owned;
    ExecStep step{convolution_backward_weights(pd),
                  pd.scratchpad_desc(),
                  {{DNNL_ARG_SRC, {Kind::kBound, 0}}, {DNNL_ARG_DIFF_DST, {Kind::kBound, 1}}}};
    std::vector<ExecStep> steps;
    size_t dw_index = 0;
    if (wanted_.dw) {
      dw_index = bound.size();
      bound.push_back(hwio);
    }
    if (direct) {
      step.args.push_back({DNNL_ARG_DIFF_WEIGHTS, {Kind::kBound, dw_index}});
    } else {
      owned.push_back(pd.diff_weights_desc());
      step.args.push_back({DNNL_ARG_DIFF_WEIGHTS, {Kind::kOwned, 0}});
    }
    if (wanted_.db) {
      step.args.push_back({DNNL_ARG_DIFF_BIAS, {Kind::kBound, bound.size()}});
      bound.push_back(BiasDesc(p_.oc));
    }
    steps.push_back(std::move(step));
    if (wanted_.dw && !direct) {
      const dnnl::reorder::primitive_desc reorder(Engine(), pd.diff_weights_desc(), Engine(), hwio,
                                                  attr);
      steps.push_back(
          {dnnl::reorder(reorder),
           reorder.scratchpad_desc(),
           {{DNNL_ARG_FROM, {Kind::kOwned, 0}}, {DNNL_ARG_TO, {Kind::kBound, dw_index}}}});
    }
    weights_ = std::make_unique<PlannedExec>(std::move(steps), threads, std::move(bound),
                                             std::move(owned), std::vector<memory>{});
    return pd.impl_info_str();
  }

  const Conv2dProblem p_;
  const Conv2dGradsWanted wanted_;
  std::string name_;
  memory packed_w_;                       // when dx is wanted
  std::unique_ptr<PlannedExec> data_;     // when dx is wanted
  std::unique_ptr<PlannedExec> weights_;  // when dw or db is wanted
};

}  // namespace

std::unique_ptr<Conv2dFwdImpl> CreateConv2dFwd(const Conv2dProblem& p, const float* w,
                                               const float* b) {
  return TranslateErrors("conv2d forward",
                         [&] { return std::make_unique<Conv2dFwdPlan>(p, w, b); });
}

std::unique_ptr<Conv2dBwdImpl> CreateConv2dBwd(const Conv2dProblem& p, const float* w,
                                               const Conv2dGradsWanted& wanted) {
  return TranslateErrors("conv2d backward",
                         [&] { return std::make_unique<Conv2dBwdPlan>(p, w, wanted); });
}

}  // namespace convkit::internal::onednn
