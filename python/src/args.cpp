#include "python/src/args.hpp"

#include <Python.h>
#include <nanobind/stl/string.h>

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

Dims parse_dims(std::string_view op, std::string_view arg, nb::handle value) {
  if (auto dims = parse_ints<4>(op, arg, value)) return *dims;
  fail_argument(op, arg, "a shape of 4 ints (N, H, W, C)", repr_string(value));
}

namespace {

// How many parameters each activation takes in a spec tuple.
int parameter_count(Activation activation) {
  switch (activation) {
    case Activation::kClip:
    case Activation::kHardSigmoid:
      return 2;
    case Activation::kLeakyRelu:
      return 1;
    default:
      return 0;
  }
}

constexpr std::string_view kActivationSpecs =
    "None, 'relu', 'relu6', 'sigmoid', 'tanh', 'silu', 'hardswish', 'gelu', ('clip', lo, hi), "
    "('leaky_relu', alpha) or ('hardsigmoid', alpha, beta)";

std::optional<Activation> activation_named(std::string_view name) {
  for (int a = static_cast<int>(Activation::kRelu); a <= static_cast<int>(Activation::kGelu); ++a) {
    if (name == activation_name(static_cast<Activation>(a))) return static_cast<Activation>(a);
  }
  return std::nullopt;
}

}  // namespace

ActivationSpec parse_activation(std::string_view op, nb::handle activation) {
  if (activation.is_none()) return {};
  const bool is_tuple =
      nb::isinstance<nb::tuple>(activation) || nb::isinstance<nb::list>(activation);
  nb::handle name = activation;
  if (is_tuple && nb::len(activation) >= 1) name = activation[0];
  if (!nb::isinstance<nb::str>(name)) {
    fail_argument(op, "activation", kActivationSpecs, repr_string(activation));
  }
  const std::optional<Activation> kind = activation_named(nb::cast<std::string>(name));
  const int count = kind ? parameter_count(*kind) : -1;
  const size_t given = is_tuple ? nb::len(activation) - 1 : 0;
  if (!kind || given != static_cast<size_t>(count)) {
    fail_argument(op, "activation", kActivationSpecs, repr_string(activation));
  }
  ActivationSpec spec{*kind};
  float* parameters[2] = {&spec.alpha, &spec.beta};
  for (int i = 0; i < count; ++i) {
    nb::handle value = activation[static_cast<size_t>(i) + 1];
    if (!PyNumber_Check(value.ptr()) || PyUnicode_Check(value.ptr())) {
      fail_argument(op, "activation", "numeric parameters in " + std::string(kActivationSpecs),
                    repr_string(activation));
    }
    *parameters[i] = static_cast<float>(PyFloat_AsDouble(value.ptr()));
    if (PyErr_Occurred()) {
      PyErr_Clear();
      fail_argument(op, "activation", "numeric parameters", repr_string(activation));
    }
  }
  return spec;
}

PoolMode parse_pool_mode(std::string_view op, std::string_view mode) {
  if (mode == "max") return PoolMode::kMax;
  if (mode == "average") return PoolMode::kAverage;
  fail_argument(op, "mode", "'max' or 'average'", "'" + std::string(mode) + "'");
}

}  // namespace convkit::python
