#include "python/src/args.hpp"

#include <Python.h>
#include <nanobind/stl/string.h>

#include <optional>
#include <string>
#include <utility>

#include "convkit/error.hpp"

namespace nb = nanobind;

namespace convkit::python {

void fail_argument(std::string_view op, std::string_view arg, std::string_view expected,
                   std::string_view given) {
  std::string message;
  message.append(op).append(": ").append(arg).append(": expected ").append(expected);
  message.append(", given ").append(given);
  throw Error(ErrorCode::kInvalidArgument, message);
}

namespace {

std::string repr_string(nb::handle value) { return nb::repr(value).c_str(); }

// value as an int when it is one or has an __index__ that succeeds (numpy.int64, a 0-d integer
// array), else nullopt (a float, a sequence: numpy arrays of several elements have an __index__
// that raises).
std::optional<int64_t> try_int(std::string_view op, std::string_view arg, nb::handle value) {
  if (!PyIndex_Check(value.ptr())) return std::nullopt;
  nb::object index = nb::steal(PyNumber_Index(value.ptr()));
  if (!index.is_valid()) {
    PyErr_Clear();
    return std::nullopt;
  }
  int overflow = 0;
  const long long result = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
  if (overflow != 0) fail_argument(op, arg, "an int that fits in int64", repr_string(value));
  return result;
}

// The items of a list or tuple (or any non-string sequence) of `size` ints, or nullopt when
// `value` is not such a sequence.
template <size_t kSize>
std::optional<std::array<int64_t, kSize>> parse_ints(std::string_view op, std::string_view arg,
                                                     nb::handle value) {
  if (!PySequence_Check(value.ptr()) || PyUnicode_Check(value.ptr()) ||
      PyBytes_Check(value.ptr())) {
    return std::nullopt;
  }
  const Py_ssize_t length = PyObject_Length(value.ptr());
  if (length < 0) PyErr_Clear();  // e.g. a 0-d array: a sequence without a length
  if (length != static_cast<Py_ssize_t>(kSize)) return std::nullopt;
  std::array<int64_t, kSize> items;
  for (size_t i = 0; i < kSize; ++i) items[i] = parse_int(op, arg, value[i]);
  return items;
}

}  // namespace

int64_t parse_int(std::string_view op, std::string_view arg, nb::handle value) {
  if (auto n = try_int(op, arg, value)) return *n;
  fail_argument(op, arg, "an int", repr_string(value));
}

std::array<int64_t, 2> parse_pair(std::string_view op, std::string_view arg, nb::handle value) {
  if (auto n = try_int(op, arg, value)) return {*n, *n};
  if (auto pair = parse_ints<2>(op, arg, value)) return *pair;
  fail_argument(op, arg, "an int or a pair of ints (h, w)", repr_string(value));
}

Pads parse_pads(std::string_view op, std::string_view arg, nb::handle value) {
  if (auto n = try_int(op, arg, value)) return Pads::uniform(*n);
  if (auto pair = parse_ints<2>(op, arg, value)) {
    const auto [h, w] = *pair;
    return {h, h, w, w};
  }
  if (auto sides = parse_ints<4>(op, arg, value)) {
    const auto [top, bottom, left, right] = *sides;
    return {top, bottom, left, right};
  }
  fail_argument(op, arg, "an int, a pair (pad_h, pad_w) or a 4-tuple (top, bottom, left, right)",
                repr_string(value));
}

namespace {

constexpr std::string_view kActivationForms =
    "None, 'relu', 'relu6', 'sigmoid', 'tanh', 'silu', 'hardswish', 'gelu', ('clip', lo, hi), "
    "('leaky_relu', alpha), ('hardsigmoid', alpha, beta), ('linear', scale, shift) or a list "
    "[activation, ('linear', scale, shift)]";

// The activations named without parameters.
std::optional<Activation> plain_activation(std::string_view name) {
  static constexpr std::pair<std::string_view, Activation> kNames[] = {
      {"relu", Activation::kRelu},       {"relu6", Activation::kRelu6},
      {"sigmoid", Activation::kSigmoid}, {"tanh", Activation::kTanh},
      {"silu", Activation::kSilu},       {"hardswish", Activation::kHardSwish},
      {"gelu", Activation::kGelu}};
  for (const auto& [n, a] : kNames) {
    if (n == name) return a;
  }
  return std::nullopt;
}

// A tuple's parameter: a Python float or int (or anything with __float__).
float parse_float(std::string_view op, nb::handle value, nb::handle whole) {
  if (!PyFloat_Check(value.ptr()) && !PyLong_Check(value.ptr()) && !PyIndex_Check(value.ptr()) &&
      Py_TYPE(value.ptr())->tp_as_number == nullptr) {
    fail_argument(op, "activation", kActivationForms, repr_string(whole));
  }
  const double v = PyFloat_AsDouble(value.ptr());
  if (v == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    fail_argument(op, "activation", kActivationForms, repr_string(whole));
  }
  return static_cast<float>(v);
}

}  // namespace

Dims parse_dims(std::string_view op, std::string_view arg, nb::handle value) {
  if (auto dims = parse_ints<4>(op, arg, value)) return *dims;
  fail_argument(op, arg, "a shape of 4 ints (N, H, W, C)", repr_string(value));
}

namespace {

// One element of the `activation` keyword (a name or a tuple; not None, not a list); `whole` is
// the keyword's value, for the error.
ActivationArg parse_one_activation(std::string_view op, nb::handle activation, nb::handle whole) {
  if (PyUnicode_Check(activation.ptr())) {
    if (auto a = plain_activation(nb::cast<std::string>(activation))) return {*a};
    fail_argument(op, "activation", kActivationForms, repr_string(whole));
  }
  if (!PyTuple_Check(activation.ptr()) || PyTuple_Size(activation.ptr()) < 1 ||
      !PyUnicode_Check(PyTuple_GetItem(activation.ptr(), 0))) {
    fail_argument(op, "activation", kActivationForms, repr_string(whole));
  }
  const std::string name = nb::cast<std::string>(activation[0]);
  const Py_ssize_t size = PyTuple_Size(activation.ptr());
  const auto param = [&](Py_ssize_t i) { return parse_float(op, activation[i], whole); };
  if (name == "clip" && size == 3) return {Activation::kClip, param(1), param(2)};
  if (name == "leaky_relu" && size == 2) return {Activation::kLeakyRelu, param(1)};
  if (name == "hardsigmoid" && size == 3) return {Activation::kHardSigmoid, param(1), param(2)};
  if (name == "linear" && size == 3) return {Activation::kNone, 0.0f, 0.0f, param(1), param(2)};
  if (size == 1) {
    if (auto a = plain_activation(name)) return {*a};
  }
  fail_argument(op, "activation", kActivationForms, repr_string(whole));
}

// Whether an element of the `activation` keyword is a ("linear", ...) tuple.
bool is_linear_tuple(nb::handle item) {
  return PyTuple_Check(item.ptr()) && PyTuple_Size(item.ptr()) >= 1 &&
         PyUnicode_Check(PyTuple_GetItem(item.ptr(), 0)) &&
         nb::cast<std::string>(item[0]) == "linear";
}

}  // namespace

ActivationArg parse_activation(std::string_view op, nb::handle activation) {
  if (activation.is_none()) return {};
  if (!PyList_Check(activation.ptr())) return parse_one_activation(op, activation, activation);
  const Py_ssize_t size = PyList_Size(activation.ptr());
  if (size == 1) return parse_one_activation(op, activation[0], activation);
  if (size != 2) fail_argument(op, "activation", kActivationForms, repr_string(activation));
  if (is_linear_tuple(activation[0]) || !is_linear_tuple(activation[1])) {
    fail_argument(op, "activation", kActivationForms, repr_string(activation));
  }
  ActivationArg first = parse_one_activation(op, activation[0], activation);
  const ActivationArg linear = parse_one_activation(op, activation[1], activation);
  first.scale = linear.scale;
  first.shift = linear.shift;
  return first;
}

Activation parse_activation(std::string_view op, const std::optional<std::string>& activation) {
  if (!activation) return Activation::kNone;
  if (auto a = plain_activation(*activation)) return *a;
  fail_argument(op, "activation", kActivationForms, "'" + *activation + "'");
}

Fpmath parse_fpmath(std::string_view op, std::string_view fpmath) {
  if (fpmath == "strict") return Fpmath::kStrict;
  if (fpmath == "bf16") return Fpmath::kBf16;
  fail_argument(op, "fpmath", "'strict' or 'bf16'", "'" + std::string(fpmath) + "'");
}

PoolMode parse_pool_mode(std::string_view op, std::string_view mode) {
  if (mode == "max") return PoolMode::kMax;
  if (mode == "average") return PoolMode::kAverage;
  fail_argument(op, "mode", "'max' or 'average'", "'" + std::string(mode) + "'");
}

}  // namespace convkit::python
