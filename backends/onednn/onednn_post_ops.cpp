#include "backends/onednn/onednn_post_ops.hpp"

namespace convkit::internal::onednn {
namespace {

using dnnl::algorithm;

void AppendActivation(const PostOps& ops, dnnl::post_ops& out) {
  switch (ops.activation) {
    case Activation::kLeakyRelu:
      out.append_eltwise(1.0f, algorithm::eltwise_relu, ops.alpha, 0.0f);
      break;
    case Activation::kSigmoid:
      out.append_eltwise(1.0f, algorithm::eltwise_logistic, 0.0f, 0.0f);
      break;
    case Activation::kTanh:
      out.append_eltwise(1.0f, algorithm::eltwise_tanh, 0.0f, 0.0f);
      break;
    case Activation::kSilu:  // oneDNN's swish is z * sigmoid(alpha * z)
      out.append_eltwise(1.0f, algorithm::eltwise_swish, 1.0f, 0.0f);
      break;
    case Activation::kHardSwish:
      out.append_eltwise(1.0f, algorithm::eltwise_hardswish, 0.0f, 0.0f);
      break;
    default:  // kNone; the others are refused
      break;
  }
}

}  // namespace

std::string PostOpsRefusal(const PostOps& ops) {
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
    default:
      return {};
  }
}

dnnl::post_ops MakePostOps(const PostOps& ops, bool residual, const dnnl::memory::desc& y_desc,
                           int* residual_index) {
  dnnl::post_ops out;
  const auto append_residual = [&] {
    *residual_index = out.len();
    out.append_binary(algorithm::binary_add, y_desc);
  };
  if (residual && !ops.residual_after_activation) append_residual();
  AppendActivation(ops, out);
  if (residual && ops.residual_after_activation) append_residual();
  return out;
}

}  // namespace convkit::internal::onednn
