#include "python/src/bindings.hpp"

#include <array>
#include <span>
#include <string>
#include <string_view>

#include "convkit/error.hpp"
#include "convkit/ops.hpp"
#include "python/src/args.hpp"

namespace nb = nanobind;

namespace convkit::python {

std::string_view backend_name(const std::optional<std::string>& backend) {
  return backend ? std::string_view(*backend) : std::string_view();
}

Conv2dParams conv2d_params(std::string_view op, const Dims& w_dims, nb::handle stride,
                           nb::handle padding, nb::handle dilation, nb::handle groups,
                           const ActivationArg& activation) {
  Conv2dParams params;
  params.kernel_h = w_dims[0];
  params.kernel_w = w_dims[1];
  const auto [stride_h, stride_w] = parse_pair(op, "stride", stride);
  params.stride_h = stride_h;
  params.stride_w = stride_w;
  params.pad = parse_pads(op, "padding", padding);
  const auto [dilation_h, dilation_w] = parse_pair(op, "dilation", dilation);
  params.dilation_h = dilation_h;
  params.dilation_w = dilation_w;
  params.groups = parse_int(op, "groups", groups);
  activation.apply_to(params);
  return params;
}

Pool2dParams pool2d_params(std::string_view op, nb::handle window, nb::handle stride,
                           nb::handle padding, std::string_view mode, bool ceil_mode,
                           bool count_include_pad) {
  Pool2dParams params;
  params.mode = parse_pool_mode(op, mode);
  const auto [window_h, window_w] = parse_pair(op, "window", window);
  params.window_h = window_h;
  params.window_w = window_w;
  const auto [stride_h, stride_w] = stride.is_none() ? std::array<int64_t, 2>{window_h, window_w}
                                                     : parse_pair(op, "stride", stride);
  params.stride_h = stride_h;
  params.stride_w = stride_w;
  params.pad = parse_pads(op, "padding", padding);
  params.ceil_mode = ceil_mode;
  params.count_include_pad = count_include_pad;
  return params;
}

Conv2dTransposeParams conv2d_transpose_params(std::string_view op, const Dims& w_dims,
                                              nb::handle stride, nb::handle padding,
                                              nb::handle output_padding, nb::handle dilation,
                                              nb::handle groups, const ActivationArg& activation,
                                              bool residual_after_activation) {
  Conv2dTransposeParams params;
  params.kernel_h = w_dims[0];
  params.kernel_w = w_dims[1];
  const auto [stride_h, stride_w] = parse_pair(op, "stride", stride);
  params.stride_h = stride_h;
  params.stride_w = stride_w;
  params.pad = parse_pads(op, "padding", padding);
  const auto [output_padding_h, output_padding_w] =
      parse_pair(op, "output_padding", output_padding);
  params.output_padding_h = output_padding_h;
  params.output_padding_w = output_padding_w;
  const auto [dilation_h, dilation_w] = parse_pair(op, "dilation", dilation);
  params.dilation_h = dilation_h;
  params.dilation_w = dilation_w;
  params.groups = parse_int(op, "groups", groups);
  activation.apply_to(params);
  params.residual_after_activation = residual_after_activation;
  return params;
}

namespace {

constexpr std::string_view kActivationLayout = "(N, H, W, C)";
constexpr std::string_view kWeightsLayout = "(KH, KW, C_in / groups, C_out)";
constexpr std::string_view kTransposeWeightsLayout = "(KH, KW, C_out / groups, C_in)";

// The dims `dims_of` returns; its errors, which name the dims function `dims_op`, are rethrown
// naming `op`, the operation the caller called.
template <typename DimsOf>
Dims output_dims(std::string_view op, std::string_view dims_op, DimsOf dims_of) {
  try {
    return dims_of();
  } catch (const Error& e) {
    std::string_view message = e.what();
    if (!message.starts_with(dims_op)) throw;
    message.remove_prefix(dims_op.size());
    throw Error(e.code(), std::string(op).append(message));
  }
}

}  // namespace

OutputArray conv2d(const InputArray& x, const InputArray& w, const std::optional<InputArray>& b,
                   nb::handle stride, nb::handle padding, nb::handle dilation, nb::handle groups,
                   nb::handle activation, const std::optional<InputArray>& residual,
                   bool residual_after_activation, const std::optional<std::string>& backend,
                   const std::string& fpmath) {
  constexpr std::string_view op = "conv2d_forward";
  const ConstTensorView x_view = view_4d(op, "x", kActivationLayout, x);
  const ConstTensorView w_view = view_4d(op, "w", kWeightsLayout, w);
  Conv2dParams params = conv2d_params(op, w_view.dims, stride, padding, dilation, groups,
                                      parse_activation(op, activation));
  params.residual_after_activation = residual_after_activation;
  std::optional<ConstTensorView> r_view;
  if (residual) r_view = view_4d(op, "residual", kActivationLayout, *residual);
  params.fpmath = parse_fpmath(op, fpmath);
  const std::span<const float> b_span =
      b ? std::span<const float>(b->data(), b->size()) : std::span<const float>();
  OutputBuffer y(output_dims(op, "conv2d_output_dims",
                             [&] { return conv2d_output_dims(x_view.dims, w_view.dims, params); }));
  {
    nb::gil_scoped_release unlocked;
    if (r_view) {
      conv2d_forward(params, x_view, w_view, b_span, *r_view, y.view(), backend_name(backend));
    } else {
      conv2d_forward(params, x_view, w_view, b_span, y.view(), backend_name(backend));
    }
  }
  return std::move(y).release();
}

OutputArray conv2d_transpose(const InputArray& x, const InputArray& w,
                             const std::optional<InputArray>& b, nb::handle stride,
                             nb::handle padding, nb::handle output_padding, nb::handle dilation,
                             nb::handle groups, nb::handle activation,
                             const std::optional<InputArray>& residual,
                             bool residual_after_activation,
                             const std::optional<std::string>& backend, const std::string& fpmath) {
  constexpr std::string_view op = "conv2d_transpose_forward";
  const ConstTensorView x_view = view_4d(op, "x", kActivationLayout, x);
  const ConstTensorView w_view = view_4d(op, "w", kTransposeWeightsLayout, w);
  const std::optional<ConstTensorView> r_view =
      residual ? std::optional(view_4d(op, "residual", kActivationLayout, *residual))
               : std::nullopt;
  Conv2dTransposeParams params =
      conv2d_transpose_params(op, w_view.dims, stride, padding, output_padding, dilation, groups,
                              parse_activation(op, activation), residual_after_activation);
  params.fpmath = parse_fpmath(op, fpmath);
  const std::span<const float> b_span =
      b ? std::span<const float>(b->data(), b->size()) : std::span<const float>();
  OutputBuffer y(output_dims(op, "conv2d_transpose_output_dims", [&] {
    return conv2d_transpose_output_dims(x_view.dims, w_view.dims, params);
  }));
  {
    nb::gil_scoped_release unlocked;
    if (r_view) {
      conv2d_transpose_forward(params, x_view, w_view, b_span, *r_view, y.view(),
                               backend_name(backend));
    } else {
      conv2d_transpose_forward(params, x_view, w_view, b_span, y.view(), backend_name(backend));
    }
  }
  return std::move(y).release();
}

std::tuple<OutputArray, OutputArray, OutputArray> conv2d_backward(
    const InputArray& dy, const InputArray& x, const InputArray& w, nb::handle stride,
    nb::handle padding, nb::handle dilation, nb::handle groups,
    const std::optional<std::string>& backend) {
  constexpr std::string_view op = "conv2d_backward";
  const ConstTensorView dy_view = view_4d(op, "dy", kActivationLayout, dy);
  const ConstTensorView x_view = view_4d(op, "x", kActivationLayout, x);
  const ConstTensorView w_view = view_4d(op, "w", kWeightsLayout, w);
  const Conv2dParams params =
      conv2d_params(op, w_view.dims, stride, padding, dilation, groups, ActivationArg{});
  OutputBuffer dx(x_view.dims);
  OutputBuffer dw(w_view.dims);
  OutputBuffer db({w_view.dims[3], 1, 1, 1});
  {
    nb::gil_scoped_release unlocked;
    const Conv2dGrads grads{dx.view(), dw.view(),
                            std::span<float>(db.data(), static_cast<size_t>(db.size()))};
    convkit::conv2d_backward(params, x_view, w_view, dy_view, grads, backend_name(backend));
  }
  return {std::move(dx).release(), std::move(dw).release(), std::move(db).release(true)};
}

OutputArray pool2d(const InputArray& x, nb::handle window, nb::handle stride, nb::handle padding,
                   const std::string& mode, bool ceil_mode, bool count_include_pad,
                   const std::optional<std::string>& backend) {
  constexpr std::string_view op = "pool2d_forward";
  const ConstTensorView x_view = view_4d(op, "x", kActivationLayout, x);
  const Pool2dParams params =
      pool2d_params(op, window, stride, padding, mode, ceil_mode, count_include_pad);
  OutputBuffer y(output_dims(op, "pool2d_output_dims",
                             [&] { return pool2d_output_dims(x_view.dims, params); }));
  {
    nb::gil_scoped_release unlocked;
    pool2d_forward(params, x_view, y.view(), backend_name(backend));
  }
  return std::move(y).release();
}

OutputArray pool2d_backward(const InputArray& dy, const InputArray& x, nb::handle window,
                            nb::handle stride, nb::handle padding, const std::string& mode,
                            bool ceil_mode, bool count_include_pad,
                            const std::optional<std::string>& backend) {
  constexpr std::string_view op = "pool2d_backward";
  const ConstTensorView dy_view = view_4d(op, "dy", kActivationLayout, dy);
  const ConstTensorView x_view = view_4d(op, "x", kActivationLayout, x);
  const Pool2dParams params =
      pool2d_params(op, window, stride, padding, mode, ceil_mode, count_include_pad);
  OutputBuffer dx(x_view.dims);
  {
    nb::gil_scoped_release unlocked;
    convkit::pool2d_backward(params, x_view, dy_view, dx.view(), backend_name(backend));
  }
  return std::move(dx).release();
}

OutputArray zero_pad(const InputArray& x, nb::handle padding) {
  constexpr std::string_view op = "zero_pad";
  const ConstTensorView x_view = view_4d(op, "x", kActivationLayout, x);
  const Pads pads = parse_pads(op, "padding", padding);
  OutputBuffer y(zero_pad_output_dims(x_view.dims, pads));
  {
    nb::gil_scoped_release unlocked;
    convkit::zero_pad(x_view, pads, y.view());
  }
  return std::move(y).release();
}

}  // namespace convkit::python
