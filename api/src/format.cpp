// Text forms of dims, parameters and problems, for error messages and CONVKIT_VERBOSE.
#include <sstream>

#include "api/src/problem.hpp"
#include "convkit/error.hpp"
#include "convkit/params.hpp"
#include "convkit/tensor.hpp"

namespace convkit {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid argument";
    case ErrorCode::kShapeMismatch:
      return "shape mismatch";
    case ErrorCode::kUnsupported:
      return "unsupported";
    case ErrorCode::kBackendUnavailable:
      return "backend unavailable";
    case ErrorCode::kOutOfMemory:
      return "out of memory";
  }
  return "unknown error";
}

std::string to_string(const Dims& dims) {
  std::ostringstream out;
  out << '{' << dims[0] << ", " << dims[1] << ", " << dims[2] << ", " << dims[3] << '}';
  return out.str();
}

namespace {

void write_pads(std::ostream& out, const Pads& pad) {
  out << 'p' << pad.top << ',' << pad.bottom << ',' << pad.left << ',' << pad.right;
}

}  // namespace

const char* activation_name(Activation activation) {
  switch (activation) {
    case Activation::kNone:
      return "none";
    case Activation::kRelu:
      return "relu";
    case Activation::kRelu6:
      return "relu6";
    case Activation::kClip:
      return "clip";
    case Activation::kLeakyRelu:
      return "leaky_relu";
    case Activation::kSigmoid:
      return "sigmoid";
    case Activation::kTanh:
      return "tanh";
    case Activation::kSilu:
      return "silu";
    case Activation::kHardSwish:
      return "hardswish";
    case Activation::kHardSigmoid:
      return "hardsigmoid";
    case Activation::kGelu:
      return "gelu";
  }
  return "unknown";
}

namespace {

// " relu", " clip:0:6", " leaky_relu:0.1": the activation and the parameters it uses.
void write_activation(std::ostream& out, Activation activation, float alpha, float beta) {
  if (activation == Activation::kNone) return;
  out << ' ' << activation_name(activation);
  switch (activation) {
    case Activation::kClip:
    case Activation::kHardSigmoid:
      out << ':' << alpha << ':' << beta;
      break;
    case Activation::kLeakyRelu:
      out << ':' << alpha;
      break;
    default:
      break;
  }
}

// " linear:0.5:1": the scale and shift after the activation, when they are not 1 and 0.
void write_linear(std::ostream& out, float scale, float shift) {
  if (scale != 1.0f || shift != 0.0f) out << " linear:" << scale << ':' << shift;
}

}  // namespace

std::string to_string(const Conv2dParams& params) {
  std::ostringstream out;
  out << 'k' << params.kernel_h << 'x' << params.kernel_w << " s" << params.stride_h << 'x'
      << params.stride_w << ' ';
  write_pads(out, params.pad);
  out << " d" << params.dilation_h << 'x' << params.dilation_w << " g" << params.groups;
  write_activation(out, params.activation, params.activation_alpha, params.activation_beta);
  write_linear(out, params.post_scale, params.post_shift);
  if (params.residual_after_activation) out << " residual_after";
  if (params.fpmath == Fpmath::kBf16) out << " bf16";
  return out.str();
}

std::string to_string(const Conv2dTransposeParams& params) {
  std::ostringstream out;
  out << 'k' << params.kernel_h << 'x' << params.kernel_w << " s" << params.stride_h << 'x'
      << params.stride_w << ' ';
  write_pads(out, params.pad);
  out << " d" << params.dilation_h << 'x' << params.dilation_w << " g" << params.groups << " op"
      << params.output_padding_h << 'x' << params.output_padding_w;
  write_activation(out, params.activation, params.activation_alpha, params.activation_beta);
  write_linear(out, params.post_scale, params.post_shift);
  if (params.residual_after_activation) out << " residual_after";
  return out.str();
}

std::string to_string(const Pool2dParams& params) {
  std::ostringstream out;
  out << (params.mode == PoolMode::kMax ? "max" : "avg");
  if (params.global) {
    out << " global";
    return out.str();
  }
  out << " k" << params.window_h << 'x' << params.window_w << " s" << params.stride_h << 'x'
      << params.stride_w << ' ';
  write_pads(out, params.pad);
  if (params.ceil_mode) out << " ceil";
  if (params.count_include_pad) out << " incl_pad";
  return out.str();
}

namespace internal {

std::string PostOps::to_string() const {
  std::ostringstream out;
  write_activation(out, activation, alpha, beta);
  write_linear(out, scale, shift);
  if (residual_after_activation) out << " residual_after";
  std::string text = out.str();
  return text.empty() ? text : text.substr(1);
}

double Conv2dProblem::flops() const {
  return 2.0 * static_cast<double>(n) * oh * ow * oc * kh * kw * ic_per_group();
}

std::string Conv2dProblem::to_string() const {
  std::ostringstream out;
  out << "x=" << n << 'x' << ih << 'x' << iw << 'x' << ic << " w=" << kh << 'x' << kw << 'x'
      << ic_per_group() << 'x' << oc << " y=" << n << 'x' << oh << 'x' << ow << 'x' << oc << " s"
      << stride_h << 'x' << stride_w << ' ';
  write_pads(out, pad);
  out << " d" << dilation_h << 'x' << dilation_w << " g" << groups;
  if (has_bias) out << " bias";
  if (post_ops.has_elementwise() || post_ops.residual_after_activation) {
    out << ' ' << post_ops.to_string();
  }
  if (fpmath == Fpmath::kBf16) out << " bf16";
  return out.str();
}

std::string Conv2dTransposeProblem::to_string() const {
  std::ostringstream out;
  out << "x=" << n() << 'x' << h() << 'x' << w() << 'x' << c_in() << " w=" << conv.kh << 'x'
      << conv.kw << 'x' << conv.ic_per_group() << 'x' << c_in() << " y=" << n() << 'x' << oh()
      << 'x' << ow() << 'x' << c_out() << " s" << conv.stride_h << 'x' << conv.stride_w << ' ';
  write_pads(out, pad);
  out << " d" << conv.dilation_h << 'x' << conv.dilation_w << " g" << conv.groups << " op"
      << output_padding_h << 'x' << output_padding_w;
  if (has_bias) out << " bias";
  if (post_ops.has_elementwise() || post_ops.residual_after_activation) {
    out << ' ' << post_ops.to_string();
  }
  if (fpmath == Fpmath::kBf16) out << " bf16";
  return out.str();
}

std::string Pool2dProblem::to_string() const {
  std::ostringstream out;
  out << (mode == PoolMode::kMax ? "max" : "avg") << " x=" << n << 'x' << ih << 'x' << iw << 'x'
      << c << " y=" << n << 'x' << oh << 'x' << ow << 'x' << c << " k" << kh << 'x' << kw << " s"
      << stride_h << 'x' << stride_w << ' ';
  write_pads(out, pad);
  if (ceil_mode) out << " ceil";
  if (mode == PoolMode::kAverage && count_include_pad) out << " incl_pad";
  return out.str();
}

}  // namespace internal
}  // namespace convkit
