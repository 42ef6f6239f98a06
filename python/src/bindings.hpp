// The functions of convkit._convkit: the one-shot C++ API with Python arguments. Each converts
// its arguments, allocates its outputs, releases the GIL while convkit computes, and lets
// convkit::Error propagate (module.cpp maps it to convkit.Error).
#pragma once

#include <nanobind/nanobind.h>

#include <optional>
#include <string>
#include <string_view>
#include <tuple>

#include "convkit/params.hpp"
#include "python/src/args.hpp"
#include "python/src/arrays.hpp"

namespace convkit::python {

// Shared with the plans (plans.cpp).

// The backend argument: None is empty (CONVKIT_BACKEND, else auto).
std::string_view backend_name(const std::optional<std::string>& backend);

// The convolution parameters given by the Python arguments; the kernel size is w's.
Conv2dParams conv2d_params(std::string_view op, const Dims& w_dims, nanobind::handle stride,
                           nanobind::handle padding, nanobind::handle dilation,
                           nanobind::handle groups, const ActivationArg& activation);

// The transposed convolution's parameters given by the Python arguments; the kernel size is w's.
Conv2dTransposeParams conv2d_transpose_params(std::string_view op, const Dims& w_dims,
                                              nanobind::handle stride, nanobind::handle padding,
                                              nanobind::handle output_padding,
                                              nanobind::handle dilation, nanobind::handle groups,
                                              const ActivationArg& activation,
                                              bool residual_after_activation);

// The pooling parameters given by the Python arguments; stride None means the window (PyTorch).
Pool2dParams pool2d_params(std::string_view op, nanobind::handle window, nanobind::handle stride,
                           nanobind::handle padding, std::string_view mode, bool ceil_mode,
                           bool count_include_pad);

// The functions of the module.

// y = activation(conv2d(x, w) + b [+ residual]): x (N, H, W, C_in), w (KH, KW, C_in / groups,
// C_out), b None or C_out elements of any shape (the seed's (1, 1, 1, C_out) included); activation
// as parse_activation reads it; residual None or y's shape, added before the activation or, with
// residual_after_activation, after it.
OutputArray conv2d(const InputArray& x, const InputArray& w, const std::optional<InputArray>& b,
                   nanobind::handle stride, nanobind::handle padding, nanobind::handle dilation,
                   nanobind::handle groups, nanobind::handle activation,
                   const std::optional<InputArray>& residual, bool residual_after_activation,
                   const std::optional<std::string>& backend, const std::string& fpmath);

// (dx, dw, db) of conv2d (without activation) given dy; db has shape (C_out,).
std::tuple<OutputArray, OutputArray, OutputArray> conv2d_backward(
    const InputArray& dy, const InputArray& x, const InputArray& w, nanobind::handle stride,
    nanobind::handle padding, nanobind::handle dilation, nanobind::handle groups,
    const std::optional<std::string>& backend);

// y = activation(conv2d_transpose(x, w) + b) (PyTorch's ConvTranspose2d in NHWC): x (N, H, W,
// C_in), w (KH, KW, C_out / groups, C_in). `activation` as conv2d's; `residual` None or an array
// of y's shape, added before the activation or, with residual_after_activation, after it.
OutputArray conv2d_transpose(const InputArray& x, const InputArray& w,
                             const std::optional<InputArray>& b, nanobind::handle stride,
                             nanobind::handle padding, nanobind::handle output_padding,
                             nanobind::handle dilation, nanobind::handle groups,
                             nanobind::handle activation, const std::optional<InputArray>& residual,
                             bool residual_after_activation,
                             const std::optional<std::string>& backend, const std::string& fpmath);

// Max or average pooling; stride None means the window.
OutputArray pool2d(const InputArray& x, nanobind::handle window, nanobind::handle stride,
                   nanobind::handle padding, const std::string& mode, bool ceil_mode,
                   bool count_include_pad, const std::optional<std::string>& backend);

// dx of pool2d given dy.
OutputArray pool2d_backward(const InputArray& dy, const InputArray& x, nanobind::handle window,
                            nanobind::handle stride, nanobind::handle padding,
                            const std::string& mode, bool ceil_mode, bool count_include_pad,
                            const std::optional<std::string>& backend);

// x surrounded by zeros; padding as for conv2d.
OutputArray zero_pad(const InputArray& x, nanobind::handle padding);

}  // namespace convkit::python
