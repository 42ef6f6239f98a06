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

  // Sets params.activation, activation_alpha and activation_beta.
  template <typename Params>
  void apply_to(Params& params) const {
    params.activation = activation;
    params.activation_alpha = alpha;
    params.activation_beta = beta;
  }
};

// The `activation` keyword of the forward convolutions: None; a name "relu", "relu6", "sigmoid",
// "tanh", "silu", "hardswish" or "gelu"; or a tuple with parameters ("clip", lo, hi),
// ("leaky_relu", alpha), ("hardsigmoid", alpha, beta). The parameters' ranges (lo <= hi, finite)
// are checked by the C++ API, which names params.activation_alpha / _beta.
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
