#include "backends/onednn/onednn_post_ops.hpp"

namespace convkit::internal::onednn {
namespace {

using dnnl::algorithm;

// The activation, then the linear map after it (eltwise_linear: alpha * z + beta, one fused
// multiply-add in oneDNN's JIT kernels).
void AppendActivation(const PostOps& ops, dnnl::post_ops& out) {
  switch (ops.activation) {
    case Activation::kLeakyRelu:
      out.append_eltwise(1.0f, algorithm::eltwise_relu, ops.alpha, 0.0f);
      break;
    case Activation::kTanh:
      out.append_eltwise(1.0f, algorithm::eltwise_tanh, 0.0f, 0.0f);
      break;
    case Activation::kHardSwish:
      out.append_eltwise(1.0f, algorithm::eltwise_hardswish, 0.0f, 0.0f);
      break;
    default:  // kNone; the others are refused
      break;
  }
  if (ops.has_linear()) out.append_eltwise(1.0f, algorithm::eltwise_linear, ops.scale, ops.shift);
}

// True when some output index of an axis reads no input element (its window lies wholly in the
// padding). Axes of more than 2^16 outputs are assumed to have one rather than scanned.
bool AxisHasWindowInPadding(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t dilation,
                            int64_t pad) {
  if (out > (int64_t{1} << 16)) return true;
  for (int64_t o = 0; o < out; ++o) {
    const int64_t start = o * stride - pad;
    const int64_t first = start >= 0 ? 0 : (-start + dilation - 1) / dilation;  // first tap >= 0
    if (first >= k || start + first * dilation >= in) return true;
  }
  return false;
}

std::string ActivationRefusal(const PostOps& ops) {
  switch (ops.activation) {
    case Activation::kRelu:
    case Activation::kRelu6:
    case Activation::kClip:
    case Activation::kHardSigmoid:
      return std::string("onednn: oneDNN 2.6's ") + activation_name(ops.activation) +
             " post-op clamps with max(z, lo), which turns NaN into lo (DESIGN §4 keeps NaN)";
    case Activation::kLeakyRelu:
      // alpha == 0 (or -0) takes oneDNN's max(z, 0) path, which loses NaN.
      if (ops.alpha == 0.0f) {
        return "onednn: leaky_relu with alpha 0 runs oneDNN's max(z, 0), which turns NaN into 0 "
               "(DESIGN §4 keeps NaN)";
      }
      return {};
    case Activation::kGelu:
      return "onednn: oneDNN 2.6's gelu_erf post-op underflows to 0 below z = -6 (4 ulp required)";
    case Activation::kSigmoid:
    case Activation::kSilu:
      return std::string("onednn: oneDNN 2.6's ") + activation_name(ops.activation) +
             " post-op underflows to 0 below z = -87 (the reference gives denormals there; 4 ulp "
             "required), and its gemm kernel turns NaN into a number";
    default:
      return {};
  }
}

}  // namespace

bool HasWindowInPadding(const Conv2dProblem& p) {
  return AxisHasWindowInPadding(p.ih, p.oh, p.kh, p.stride_h, p.dilation_h, p.pad.top) ||
         AxisHasWindowInPadding(p.iw, p.ow, p.kw, p.stride_w, p.dilation_w, p.pad.left);
}

std::string PostOpsRefusal(const Conv2dProblem& p) { return ActivationRefusal(p.post_ops); }

dnnl::post_ops MakePostOps(const PostOps& ops, bool residual) {
  dnnl::post_ops out;
  if (residual && !ops.residual_after_activation) out.append_sum(1.0f);
  AppendActivation(ops, out);
  if (residual && ops.residual_after_activation) out.append_sum(1.0f);
  return out;
}

}  // namespace convkit::internal::onednn
