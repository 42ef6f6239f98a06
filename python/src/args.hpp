// Parsing of the Python keyword arguments into convkit's parameter types. Every function throws
// convkit::Error (invalid argument) naming the Python function `op` and the argument, in the
// message format of the C++ API: "<op>: <arg>: expected <what>, given <repr>".
#pragma once

#include <nanobind/nanobind.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "convkit/params.hpp"
#include "convkit/tensor.hpp"

namespace convkit::python {

// A Python int (or anything with __index__, e.g. numpy.int64) as int64_t.
int64_t parse_int(std::string_view op, std::string_view arg, nanobind::handle value);

// An int n, meaning (n, n), or a pair (h, w).
std::array<int64_t, 2> parse_pair(std::string_view op, std::string_view arg,
                                  nanobind::handle value);

// An int p (every side), a pair (pad_h, pad_w) or a 4-tuple (top, bottom, left, right).
Pads parse_pads(std::string_view op, std::string_view arg, nanobind::handle value);

// A shape of 4 ints (a tuple, list or any sequence), e.g. x_shape=(N, H, W, C).
Dims parse_dims(std::string_view op, std::string_view arg, nanobind::handle value);

// An activation with its parameters, as Conv2dParams (and the transposed convolution's params)
// hold them.
struct ActivationArg {
  Activation activation = Activation::kNone;
  float alpha = 0.0f;
  float beta = 0.0f;
  float scale = 1.0f;  // the linear map after the activation
  float shift = 0.0f;

  // Sets params.activation, activation_alpha, activation_beta, post_scale and post_shift.
  template <typename Params>
  void apply_to(Params& params) const {
    params.activation = activation;
    params.activation_alpha = alpha;
    params.activation_beta = beta;
    params.post_scale = scale;
    params.post_shift = shift;
  }
};

// The `activation` keyword of the forward convolutions: None; a name "relu", "relu6", "sigmoid",
// "tanh", "silu", "hardswish" or "gelu"; a tuple with parameters ("clip", lo, hi),
// ("leaky_relu", alpha), ("hardsigmoid", alpha, beta); ("linear", scale, shift) (y = scale * z +
// shift: oneDNN's eltwise_linear); or a list [activation, ("linear", scale, shift)], the chain of
// an activation and the linear map after it (Conv2dParams::post_scale, post_shift). The
// parameters' ranges (lo <= hi, finite) are checked by the C++ API, which names
// params.activation_alpha / _beta / post_scale / post_shift.
ActivationArg parse_activation(std::string_view op, nanobind::handle activation);

// The name-only form: None or one of the names above without parameters.
Activation parse_activation(std::string_view op, const std::optional<std::string>& activation);
// 'strict' or 'bf16' (convkit::Fpmath).
Fpmath parse_fpmath(std::string_view op, std::string_view fpmath);

// "max" or "average".
PoolMode parse_pool_mode(std::string_view op, std::string_view mode);

// Throws the binding's invalid-argument error.
[[noreturn]] void fail_argument(std::string_view op, std::string_view arg,
                                std::string_view expected, std::string_view given);

}  // namespace convkit::python
