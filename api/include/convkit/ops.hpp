// One-shot operations: convenient, close to the seed's functions (DESIGN §3).
//
// Every function validates all of its arguments before computing and throws convkit::Error naming
// the argument, the expected and the given value; on error nothing is written. Outputs must not
// overlap inputs. `backend` picks the backend ("reference", "highway", "onednn", "auto"); empty
// means $CONVKIT_BACKEND, or "auto" when that is unset (DESIGN §5). Calls on distinct outputs may
// run concurrently from several threads. One-shot calls may allocate (e.g. to pack weights); plans
// (plan.hpp) do that once.
#pragma once

#include <optional>
#include <span>
#include <string_view>

#include "convkit/params.hpp"
#include "convkit/tensor.hpp"

namespace convkit {

// The dims of zero_pad's output: {N, H + top + bottom, W + left + right, C}.
Dims zero_pad_output_dims(const Dims& x_dims, const Pads& pad);

// The seed's zero_pad with per-side pads: y = x surrounded by zeros. y must have
// zero_pad_output_dims(x.dims, pad).
void zero_pad(ConstTensorView x, const Pads& pad, TensorView y);

// The dims of conv2d_forward's output, {N, OH, OW, C_out}. Throws on invalid parameters, on w dims
// that do not match them, and on an output size below 1.
Dims conv2d_output_dims(const Dims& x_dims, const Dims& w_dims, const Conv2dParams& params);

// y = activation(conv2d(x, w) + b). x {N, H, W, C_in}; w {KH, KW, C_in / groups, C_out}; b has
// C_out elements or is empty (no bias); y has conv2d_output_dims(...). The activation and its
// parameters are params.activation, activation_alpha and activation_beta (params.hpp).
void conv2d_forward(const Conv2dParams& params, ConstTensorView x, ConstTensorView w,
                    std::span<const float> b, TensorView y, std::string_view backend = {});

// The same with a residual r of y's dims: y = activation(conv2d(x, w) + b + r), or with
// params.residual_after_activation y = activation(conv2d(x, w) + b) + r. r.data may equal y.data
// (an in-place residual: y is read, then overwritten); otherwise r must not overlap y. r must not
// overlap x.
void conv2d_forward(const Conv2dParams& params, ConstTensorView x, ConstTensorView w,
                    std::span<const float> b, ConstTensorView r, TensorView y,
                    std::string_view backend = {});

// The gradients conv2d_backward computes; an absent one is skipped.
struct Conv2dGrads {
  std::optional<TensorView> dx;        // dims of x
  std::optional<TensorView> dw;        // dims of w
  std::optional<std::span<float>> db;  // C_out elements
};

// Which gradients a backward plan (plan.hpp, Conv2dBackward) computes.
struct Conv2dGradsWanted {
  bool dx = true;
  bool dw = true;
  bool db = true;
};

// Gradients of y = conv2d(x, w) + b given dy = dL/dy: dx is the transposed convolution of dy with
// w, dw the correlation of x with dy, db the sum of dy over N, OH, OW. params.activation must be
// kNone: apply the activation's gradient to dy first. With N == 0, dw and db are zeros.
void conv2d_backward(const Conv2dParams& params, ConstTensorView x, ConstTensorView w,
                     ConstTensorView dy, const Conv2dGrads& grads, std::string_view backend = {});

// The dims of conv2d_transpose_forward's output, {N, OH, OW, C_out} with OH as in
// Conv2dTransposeParams. Throws on invalid parameters (output_padding at or above both stride and
// dilation), on w dims that do not match them, and on an output size below 1.
Dims conv2d_transpose_output_dims(const Dims& x_dims, const Dims& w_dims,
                                  const Conv2dTransposeParams& params);

// y = activation(conv2d_transpose(x, w) + b) (PyTorch's ConvTranspose2d in NHWC). x {N, H, W,
// C_in}; w {KH, KW, C_out / groups, C_in}, the HWIO weight of the convolution whose dx this is; b
// has C_out elements or is empty; y has conv2d_transpose_output_dims(...). Without bias and
// activation it equals conv2d_backward's dx of that convolution with dy = x (the same bits on
// each backend). The activation and its parameters are as in conv2d_forward.
void conv2d_transpose_forward(const Conv2dTransposeParams& params, ConstTensorView x,
                              ConstTensorView w, std::span<const float> b, TensorView y,
                              std::string_view backend = {});

// The same with a residual r of y's dims, added before the activation or, with
// params.residual_after_activation, after it; r may be y itself (in place), never overlap x.
void conv2d_transpose_forward(const Conv2dTransposeParams& params, ConstTensorView x,
                              ConstTensorView w, std::span<const float> b, ConstTensorView r,
                              TensorView y, std::string_view backend = {});

// Gradients of y = conv2d_transpose(x, w) + b given dy (dims of y): dx (dims of x) is conv2d
// forward of dy with the same w, dw (dims of w) the correlation of dy with x, db (C_out elements)
// the sum of dy over N, OH, OW; each optional (Conv2dGrads). params.activation must be kNone.
// With N == 0, dw and db are zeros.
void conv2d_transpose_backward(const Conv2dTransposeParams& params, ConstTensorView x,
                               ConstTensorView w, ConstTensorView dy, const Conv2dGrads& grads,
                               std::string_view backend = {});

// The dims of pool2d_forward's output, {N, OH, OW, C}. Throws on invalid parameters.
Dims pool2d_output_dims(const Dims& x_dims, const Pool2dParams& params);

// y = max or average pooling of x. Max: padding never wins; a window holding a NaN yields NaN.
void pool2d_forward(const Pool2dParams& params, ConstTensorView x, TensorView y,
                    std::string_view backend = {});

// dx = gradient of pool2d_forward given dy. Max: each dy goes whole to the first maximal element of
// its window in row-major order (the first NaN if any); average: spread with the forward's divisor.
// x is read by max pooling only, but its dims are checked in both modes.
void pool2d_backward(const Pool2dParams& params, ConstTensorView x, ConstTensorView dy,
                     TensorView dx, std::string_view backend = {});

}  // namespace convkit
