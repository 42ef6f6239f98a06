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

// The fused activation and its parameters (Conv2dParams' activation, activation_alpha and _beta).
struct ActivationSpec {
  Activation activation = Activation::kNone;
  float alpha = 0.0f;
  float beta = 0.0f;
};

// None, a name ("relu", "relu6", "sigmoid", "tanh", "silu", "hardswish", "gelu") or a tuple with
// the parameters: ("clip", lo, hi), ("leaky_relu", alpha), ("hardsigmoid", alpha, beta).
ActivationSpec parse_activation(std::string_view op, nanobind::handle activation);

// "max" or "average".
PoolMode parse_pool_mode(std::string_view op, std::string_view mode);

// Throws the binding's invalid-argument error.
[[noreturn]] void fail_argument(std::string_view op, std::string_view arg,
                                std::string_view expected, std::string_view given);

}  // namespace convkit::python
