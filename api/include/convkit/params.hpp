// Parameters of the layers (DESIGN §3, §4).
#pragma once

#include <cstdint>
#include <string>

namespace convkit {

// Zero padding on each side of the spatial axes, in elements.
struct Pads {
  int64_t top = 0;
  int64_t bottom = 0;
  int64_t left = 0;
  int64_t right = 0;

  static Pads uniform(int64_t p) { return {p, p, p, p}; }
  bool operator==(const Pads&) const = default;
};

// The activation fused at the end of the forward convolution (DESIGN §3-§4). z is the value it
// receives (the sum plus bias, plus the residual when that comes first); alpha and beta are
// Conv2dParams::activation_alpha / activation_beta, ignored by the activations not listed here.
//   kRelu         max(z, 0)                     kRelu6      min(max(z, 0), 6)
//   kClip         min(max(z, alpha), beta)      kLeakyRelu  z > 0 ? z : alpha * z
//   kSigmoid      1 / (1 + exp(-z))             kTanh       tanh(z)
//   kSilu         z * sigmoid(z)                kHardSwish  z * min(max(z + 3, 0), 6) / 6
//   kHardSigmoid  min(max(alpha * z + beta, 0), 1) (ONNX's defaults 0.2, 0.5 are the caller's)
//   kGelu         z * (1 + erf(z / sqrt(2))) / 2
// kRelu, kRelu6, kClip and kLeakyRelu are exact; the others are within 4 ulp of the value computed
// in double and rounded once. Every activation maps NaN to NaN.
enum class Activation {
  kNone,
  kRelu,
  kRelu6,
  kClip,
  kLeakyRelu,
  kSigmoid,
  kTanh,
  kSilu,
  kHardSwish,
  kHardSigmoid,
  kGelu,
};

// How the forward convolutions may multiply (oneDNN's fpmath_mode). kStrict: fp32. kBf16: x and w
// may be rounded to bf16 (round to nearest even) and multiplied with fp32 accumulation; bias,
// activation and y stay fp32. A permission, not an obligation: a backend or CPU without bf16
// arithmetic computes in fp32, and the implementation name says which ran (DESIGN §3).
enum class Fpmath { kStrict, kBf16 };

// A 2-D convolution. Output size per axis (DESIGN §4):
//   OH = floor((H + pad.top + pad.bottom - dilation_h * (kernel_h - 1) - 1) / stride_h) + 1.
// Weights are HWIO {kernel_h, kernel_w, C_in / groups, C_out}; groups must divide C_in and C_out
// (groups == C_in == C_out is depthwise). Dilation 1 means dense taps (not oneDNN's 0).
struct Conv2dParams {
  int64_t kernel_h = 1;
  int64_t kernel_w = 1;
  int64_t stride_h = 1;
  int64_t stride_w = 1;
  Pads pad;
  int64_t dilation_h = 1;
  int64_t dilation_w = 1;
  int64_t groups = 1;
  Activation activation = Activation::kNone;
  // kClip: lo = alpha <= hi = beta; kLeakyRelu: the slope alpha; kHardSigmoid: alpha and beta.
  // Finite (NaN and infinities are refused) for the activations that use them.
  float activation_alpha = 0.0f;
  float activation_beta = 0.0f;
  // Where a residual r (conv2d_forward's r, Conv2d::run's r) is added: false gives
  // y = act(conv(x) + b + r) (ResNet, ONNX Runtime's FusedConv), true y = act(conv(x) + b) + r.
  bool residual_after_activation = false;
  // The forward pass's compute mode; the backward passes compute in fp32 (kBf16 permits it).
  Fpmath fpmath = Fpmath::kStrict;
  // A scale and shift after the activation (oneDNN's eltwise_linear post-op; PP-LCNetV3's
  // learnable affine): y = fma(post_scale, act(...), post_shift), then the residual when it comes
  // after the activation. Finite; 1 and 0 (the defaults) skip it. Forward only.
  float post_scale = 1.0f;
  float post_shift = 0.0f;
};

// A 2-D transposed convolution (PyTorch's ConvTranspose2d, in NHWC): the backward data of the
// convolution with the same kernel, stride, pads, dilation and groups, whose HWIO weight w is
// {kernel_h, kernel_w, C_out / groups, C_in} (TensorFlow's conv2d_transpose layout). Each input
// pixel scatters its window into the full output; the pads then crop it. Output size per axis:
//   OH = (H - 1) * stride_h - pad.top - pad.bottom + dilation_h * (kernel_h - 1)
//        + output_padding_h + 1,
// which must be >= 1. groups must divide C_in and C_out.
struct Conv2dTransposeParams {
  int64_t kernel_h = 1;
  int64_t kernel_w = 1;
  int64_t stride_h = 1;
  int64_t stride_w = 1;
  // Cropped from the full output: pad.top rows at the top, pad.bottom at the bottom, ...
  Pads pad;
  int64_t dilation_h = 1;
  int64_t dilation_w = 1;
  int64_t groups = 1;
  // Extra rows (columns) at the bottom (right) of the output, which only the bias and post-ops
  // reach: >= 0, and below stride_h or below dilation_h (PyTorch's rule), likewise along w. It
  // picks one of the input sizes a strided convolution maps to the same output size.
  int64_t output_padding_h = 0;
  int64_t output_padding_w = 0;
  // The activation fused after the bias, as in Conv2dParams.
  Activation activation = Activation::kNone;
  // The activation's parameters, as in Conv2dParams.
  float activation_alpha = 0.0f;
  float activation_beta = 0.0f;
  // Where a residual r is added, as in Conv2dParams.
  bool residual_after_activation = false;
  // How the multiplications may round x and w, as in Conv2dParams. After the older fields, so that
  // aggregate initializers written before it existed still compile.
  Fpmath fpmath = Fpmath::kStrict;
  // The scale and shift after the activation, as in Conv2dParams.
  float post_scale = 1.0f;
  float post_shift = 0.0f;
};

enum class PoolMode { kMax, kAverage };

// A 2-D pooling. Output size per axis as for a convolution with dilation 1; with ceil_mode, ceil
// replaces floor and a last window starting past the input and its top/left padding is dropped
// (PyTorch's rule). Each pad must be smaller than the window on its axis. With `global`, the window
// is the whole input (H x W), the stride 1 and the pads must be 0; window and stride are ignored.
struct Pool2dParams {
  PoolMode mode = PoolMode::kMax;
  int64_t window_h = 1;
  int64_t window_w = 1;
  int64_t stride_h = 1;
  int64_t stride_w = 1;
  Pads pad;
  bool ceil_mode = false;
  // Average only: false divides by the window elements inside the input; true by the window
  // clipped to the padded input.
  bool count_include_pad = false;
  bool global = false;
};

// The activation's name as convkit-run and Python spell it: "none", "relu", "clip", "leaky_relu",
// "hardsigmoid", ...; "unknown" for a value outside the enum.
const char* activation_name(Activation activation);

// "k3x3 s2x2 p1,1,1,1 d1x1 g1 relu bf16" and "max k3x3 s2x2 p1,1,1,1 ceil incl_pad".
std::string to_string(const Conv2dParams& params);
std::string to_string(const Pool2dParams& params);
// "k4x4 s2x2 p1,1,1,1 d1x1 g1 op0x0 relu".
std::string to_string(const Conv2dTransposeParams& params);

}  // namespace convkit
