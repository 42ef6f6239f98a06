// The functions of convkit._convkit: the one-shot C++ API with Python arguments. Each converts
// its arguments, allocates its outputs, releases the GIL while convkit computes, and lets
// convkit::Error propagate (module.cpp maps it to convkit.Error).
#pragma once

#include <nanobind/nanobind.h>

#include <optional>
#include <string>
#include <tuple>

#include "python/src/arrays.hpp"

namespace convkit::python {

// y = activation(conv2d(x, w) + b): x (N, H, W, C_in), w (KH, KW, C_in / groups, C_out), b None or
// C_out elements of any shape (the seed's (1, 1, 1, C_out) included).
OutputArray conv2d(const InputArray& x, const InputArray& w, const std::optional<InputArray>& b,
                   nanobind::handle stride, nanobind::handle padding, nanobind::handle dilation,
                   nanobind::handle groups, const std::optional<std::string>& activation,
                   const std::optional<std::string>& backend);

// (dx, dw, db) of conv2d (without activation) given dy; db has shape (C_out,).
std::tuple<OutputArray, OutputArray, OutputArray> conv2d_backward(
    const InputArray& dy, const InputArray& x, const InputArray& w, nanobind::handle stride,
    nanobind::handle padding, nanobind::handle dilation, nanobind::handle groups,
    const std::optional<std::string>& backend);

// y = activation(conv2d_transpose(x, w) + b) (PyTorch's ConvTranspose2d in NHWC): x (N, H, W,
// C_in), w (KH, KW, C_out / groups, C_in). `activation` is None or "relu"; `residual` None or an
// array of y's shape, added before the activation or, with residual_after_activation, after it.
OutputArray conv2d_transpose(const InputArray& x, const InputArray& w,
                             const std::optional<InputArray>& b, nanobind::handle stride,
                             nanobind::handle padding, nanobind::handle output_padding,
                             nanobind::handle dilation, nanobind::handle groups,
                             const std::optional<std::string>& activation,
                             const std::optional<InputArray>& residual,
                             bool residual_after_activation,
                             const std::optional<std::string>& backend);

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
