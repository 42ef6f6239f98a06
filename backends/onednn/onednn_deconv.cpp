// The transposed convolution through oneDNN's deconvolution primitive: an inference plan with the
// bias and post-ops fused (onednn_post_ops.hpp: activation, residual as binary_add), weights
// reordered once into the layout oneDNN chose.
//
// oneDNN's deconvolution has the same geometry as convkit's equivalent convolution
// (Conv2dTransposeProblem::conv) with src and dst swapped: src {n, h, w, c_in}, dst {n, oh, ow,
// c_out}, and padding_r chosen so that its size check (dst - span + pads) / stride + 1 == src
// holds; output_padding is thereby carried by the dst dims. Its weights are logically
// {c_out, c_in, kh, kw} ({g, c_out / g, c_in / g, kh, kw} with groups).
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backends/onednn/onednn_common.hpp"
#include "backends/onednn/onednn_exec.hpp"
#include "backends/onednn/onednn_ops.hpp"
#include "backends/onednn/onednn_post_ops.hpp"

namespace convkit::internal::onednn {
namespace {

using dnnl::algorithm;
using dnnl::deconvolution_forward;
using dnnl::memory;
using dnnl::prop_kind;

memory::desc XDesc(const Conv2dTransposeProblem& p) {
  return ActivationDesc(p.n(), p.h(), p.w(), p.c_in());
}
memory::desc YDesc(const Conv2dTransposeProblem& p) {
  return ActivationDesc(p.n(), p.oh(), p.ow(), p.c_out());
}

memory::dims WeightDims(const Conv2dTransposeProblem& p) {
  const int64_t g = p.conv.groups, kh = p.conv.kh, kw = p.conv.kw;
  if (g == 1) return {p.c_out(), p.c_in(), kh, kw};
  return {g, p.c_out() / g, p.c_in() / g, kh, kw};
}

// convkit's w {kh, kw, c_out / g, c_in}: element (kh, kw, o, c_in_index) at
// ((kh * KW + kw) * c_out / g + o) * c_in + g * c_in / g + i.
memory::desc WeightDescGiven(const Conv2dTransposeProblem& p) {
  const int64_t g = p.conv.groups, c_in = p.c_in(), ocg = p.c_out() / g;
  const int64_t kw_stride = ocg * c_in, kh_stride = p.conv.kw * kw_stride;
  if (g == 1) {
    return memory::desc(WeightDims(p), memory::data_type::f32,
                        memory::dims{c_in, 1, kh_stride, kw_stride});
  }
  return memory::desc(WeightDims(p), memory::data_type::f32,
                      memory::dims{c_in / g, c_in, 1, kh_stride, kw_stride});
}

// The post-ops: the activation as onednn_post_ops.hpp makes it, and the residual as a binary_add
// reading r (a run-time argument) before or after it, whose index goes to *residual_index. (The
// convolution uses a sum post-op instead, for a brgconv defect; the deconvolution runs oneDNN's
// jit backward-data kernels, where binary_add is right on the whole test grid, and saves the copy
// of r into y.)
dnnl::post_ops DeconvPostOps(const Conv2dTransposeProblem& p, bool residual, int* residual_index) {
  const dnnl::post_ops activation = MakePostOps(p.post_ops, false);
  dnnl::post_ops ops;
  const auto append_residual = [&] {
    *residual_index = ops.len();
    ops.append_binary(algorithm::binary_add, YDesc(p));
  };
  if (residual && !p.post_ops.residual_after_activation) append_residual();
  for (int i = 0; i < activation.len(); ++i) {  // the activation: a chain of eltwise post-ops
    if (activation.kind(i) != dnnl::primitive::kind::eltwise) {
      throw Error(ErrorCode::kUnsupported,
                  "onednn: conv2d_transpose forward: an activation post-op that is not eltwise");
    }
    float scale, alpha, beta;
    algorithm alg;
    activation.get_params_eltwise(i, scale, alg, alpha, beta);
    ops.append_eltwise(scale, alg, alpha, beta);
  }
  if (residual && p.post_ops.residual_after_activation) append_residual();
  return ops;
}

// A plan holds two primitives, without and with the residual (oneDNN fixes its post-ops at
// creation, convkit's r is a run-time argument), as the forward convolution's plan does.
class Conv2dTransposeFwdPlan final : public Conv2dFwdImpl {
 public:
  Conv2dTransposeFwdPlan(const Conv2dTransposeProblem& p, const float* w, const float* b) {
    const int threads = num_threads();
    ScopedOmpThreads scope(threads);  // oneDNN sizes its work split at creation
    int residual_index = -1;
    const deconvolution_forward::primitive_desc plain_pd = PrimitiveDesc(p, false, &residual_index);
    const deconvolution_forward::primitive_desc residual_pd =
        PrimitiveDesc(p, true, &residual_index);
    name_ = ImplName(plain_pd, p.bf16());

    memory bias;
    if (p.has_bias) {
      bias = memory(BiasDesc(p.c_out()), Engine());  // a copy: the plan keeps no reference to b
      std::memcpy(bias.get_data_handle(), b, static_cast<size_t>(p.c_out()) * sizeof(float));
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
    plain_ = std::make_unique<PlannedExec>(plain_pd, deconvolution_forward(plain_pd), threads,
                                           std::vector<std::pair<int, memory::desc>>{
                                               {DNNL_ARG_SRC, XDesc(p)}, {DNNL_ARG_DST, YDesc(p)}},
                                           fixed(plain_w));
    residual_ = std::make_unique<PlannedExec>(
        residual_pd, deconvolution_forward(residual_pd), threads,
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
  static deconvolution_forward::primitive_desc PrimitiveDesc(const Conv2dTransposeProblem& p,
                                                             bool residual, int* residual_index) {
    const Conv2dProblem& c = p.conv;
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    attr.set_post_ops(DeconvPostOps(p, residual, residual_index));
    // fpmath = bf16 lets oneDNN round x and w to bf16 (its fpmath_mode, same meaning).
    if (p.bf16()) attr.set_fpmath_mode(dnnl::fpmath_mode::bf16);
    const deconvolution_forward::desc desc(
        prop_kind::forward_inference, algorithm::deconvolution_direct, XDesc(p),
        memory::desc(WeightDims(p), memory::data_type::f32, memory::format_tag::any),
        p.has_bias ? BiasDesc(p.c_out()) : memory::desc(), YDesc(p),
        memory::dims{c.stride_h, c.stride_w}, memory::dims{c.dilation_h - 1, c.dilation_w - 1},
        memory::dims{c.pad.top, c.pad.left}, memory::dims{c.pad.bottom, c.pad.right});
    return deconvolution_forward::primitive_desc(desc, attr, Engine());
  }

  // Copies convkit's weights into a new buffer in `packed_desc`'s layout.
  static memory PackWeights(const Conv2dTransposeProblem& p, const float* w,
                            const memory::desc& packed_desc) {
    memory packed(packed_desc, Engine());
    memory given = Wrap(WeightDescGiven(p), w);
    ExecuteOnce(dnnl::reorder(given, packed), {{DNNL_ARG_FROM, given}, {DNNL_ARG_TO, packed}});
    return packed;
  }

  std::string name_;
  std::unique_ptr<PlannedExec> plain_, residual_;
};

}  // namespace

std::string Conv2dTransposeRefusal(const Conv2dTransposeProblem& p) {
  if (p.conv.pad.bottom < 0 || p.conv.pad.right < 0) {
    return "onednn: output_padding >= stride (allowed when dilation > output_padding) needs a "
           "negative padding_r, which oneDNN's deconvolution does not take";
  }
  Conv2dProblem with_post_ops = p.conv;
  with_post_ops.post_ops = p.post_ops;
  return PostOpsRefusal(with_post_ops);
}

std::unique_ptr<Conv2dFwdImpl> CreateConv2dTransposeFwd(const Conv2dTransposeProblem& p,
                                                        const float* w, const float* b) {
  return TranslateErrors("conv2d_transpose forward",
                         [&] { return std::make_unique<Conv2dTransposeFwdPlan>(p, w, b); });
}

}  // namespace convkit::internal::onednn
