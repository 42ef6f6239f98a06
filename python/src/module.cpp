// convkit._convkit: the native half of the Python package `convkit` (python/convkit/ is the other).
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <exception>

#include "convkit/error.hpp"
#include "convkit/runtime.hpp"
#include "python/src/bindings.hpp"
#include "python/src/glue.hpp"
#include "python/src/plans.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

constexpr const char* kErrorDoc =
    "Raised by every convkit function on bad input, with the C++ message: the operation, the "
    "argument, what was expected and what was given. `code` is the C++ error code's name, e.g. "
    "'shape mismatch'.";

// Raises a convkit::Error as an instance of `error_type` (convkit.Error) with the C++ message and
// a `code` attribute.
void translate_error(const std::exception_ptr& exception, void* error_type) {
  try {
    std::rethrow_exception(exception);
  } catch (const convkit::Error& e) {
    nb::handle type(static_cast<PyObject*>(error_type));
    nb::object instance = type(e.what());
    instance.attr("code") = convkit::error_code_name(e.code());
    PyErr_SetObject(type.ptr(), instance.ptr());
  }
}

void add_error_type(nb::module_& m) {
  PyObject* type = PyErr_NewExceptionWithDoc("convkit.Error", kErrorDoc, PyExc_ValueError, nullptr);
  if (type == nullptr) throw nb::python_error();
  m.attr("Error") = nb::steal(type);
  // The module keeps the type alive for as long as the translator may use it.
  nb::register_exception_translator(translate_error, type);
}

void add_conv2d(nb::module_& m) {
  m.def("conv2d", &convkit::python::conv2d,
        nb::sig(
            "def conv2d(x: numpy.ndarray, w: numpy.ndarray, b: numpy.ndarray | None = None, "
            "stride: int | tuple[int, int] = 1, padding: int | tuple[int, ...] = 0, "
            "dilation: int | tuple[int, int] = 1, groups: int = 1, "
            "activation: str | tuple | list | None = None, residual: numpy.ndarray | None = None, "
            "residual_after_activation: bool = False, backend: str | None = None, "
            "fpmath: str = 'strict') -> numpy.ndarray"),
        "x"_a, "w"_a, "b"_a.none() = nb::none(), "stride"_a = 1, "padding"_a = 0, "dilation"_a = 1,
        "groups"_a = 1, "activation"_a.none() = nb::none(), "residual"_a.none() = nb::none(),
        "residual_after_activation"_a = false, "backend"_a.none() = nb::none(),
        "fpmath"_a = "strict",
        "y = activation(conv2d(x, w) + b + residual), or with residual_after_activation\n"
        "y = activation(conv2d(x, w) + b) + residual.\n\n"
        "x (N, H, W, C_in); w (KH, KW, C_in / groups, C_out); b None or C_out elements of any "
        "shape. stride, dilation: int or (h, w); padding: int, (pad_h, pad_w) or (top, bottom, "
        "left, right); activation: None, 'relu', 'relu6', 'sigmoid', 'tanh', 'silu', "
        "'hardswish', 'gelu', ('clip', lo, hi), ('leaky_relu', alpha), ('hardsigmoid', alpha, "
        "beta), ('linear', scale, shift) or a list [activation, ('linear', scale, shift)]: y = "
        "scale * activation(...) + shift (one rounding), before a residual added after the "
        "activation; residual: None or y's shape (N, OH, OW, C_out), not sharing memory with x; "
        "backend: None ($CONVKIT_BACKEND or 'auto'), 'auto' or one of backends(); fpmath: "
        "'strict' (fp32) or 'bf16' (x and w may be rounded to bf16, fp32 accumulation). Returns y "
        "(N, OH, OW, C_out), float32.");
  m.def("conv2d_backward", &convkit::python::conv2d_backward,
        nb::sig("def conv2d_backward(dy: numpy.ndarray, x: numpy.ndarray, w: numpy.ndarray, "
                "stride: int | tuple[int, int] = 1, padding: int | tuple[int, ...] = 0, "
                "dilation: int | tuple[int, int] = 1, groups: int = 1, "
                "backend: str | None = None) "
                "-> tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray]"),
        "dy"_a, "x"_a, "w"_a, "stride"_a = 1, "padding"_a = 0, "dilation"_a = 1, "groups"_a = 1,
        "backend"_a.none() = nb::none(),
        "Gradients of conv2d (without activation) given dy = dL/dy.\n\n"
        "Returns (dx, dw, db): dx like x, dw like w, db (C_out,), float32.");
  m.def("conv2d_transpose", &convkit::python::conv2d_transpose,
        nb::sig("def conv2d_transpose(x: numpy.ndarray, w: numpy.ndarray, "
                "b: numpy.ndarray | None = None, stride: int | tuple[int, int] = 1, "
                "padding: int | tuple[int, ...] = 0, "
                "output_padding: int | tuple[int, int] = 0, "
                "dilation: int | tuple[int, int] = 1, groups: int = 1, "
                "activation: str | tuple | list | None = None, "
                "residual: numpy.ndarray | None = None, "
                "residual_after_activation: bool = False, "
                "backend: str | None = None, fpmath: str = 'strict') -> numpy.ndarray"),
        "x"_a, "w"_a, "b"_a.none() = nb::none(), "stride"_a = 1, "padding"_a = 0,
        "output_padding"_a = 0, "dilation"_a = 1, "groups"_a = 1,
        "activation"_a.none() = nb::none(), "residual"_a.none() = nb::none(),
        "residual_after_activation"_a = false, "backend"_a.none() = nb::none(),
        "fpmath"_a = "strict",
        "y = activation(conv2d_transpose(x, w) + b): PyTorch's ConvTranspose2d in NHWC.\n\n"
        "x (N, H, W, C_in); w (KH, KW, C_out / groups, C_in), TensorFlow's conv2d_transpose "
        "layout (the HWIO weight of the convolution whose input gradient this is); b None or "
        "C_out elements. padding crops the full output as conv2d's padding pads; "
        "output_padding (int or (h, w), below stride or dilation) adds rows and columns at the "
        "bottom and right. OH = (H - 1) * stride - pad_top - pad_bottom + dilation * (KH - 1) + "
        "output_padding + 1. activation and residual as conv2d's: residual (y's shape) is added "
        "before the activation, or after it with residual_after_activation=True. fpmath as "
        "conv2d's. Returns y (N, OH, OW, C_out), float32.");
}

void add_pool2d(nb::module_& m) {
  m.def("pool2d", &convkit::python::pool2d,
        nb::sig("def pool2d(x: numpy.ndarray, window: int | tuple[int, int], "
                "stride: int | tuple[int, int] | None = None, "
                "padding: int | tuple[int, ...] = 0, mode: str = 'max', ceil_mode: bool = False, "
                "count_include_pad: bool = False, backend: str | None = None) -> numpy.ndarray"),
        "x"_a, "window"_a, "stride"_a.none() = nb::none(), "padding"_a = 0, "mode"_a = "max",
        "ceil_mode"_a = false, "count_include_pad"_a = false, "backend"_a.none() = nb::none(),
        "Max or average pooling of x (N, H, W, C).\n\n"
        "window, stride: int or (h, w), stride None meaning the window; padding as for conv2d, "
        "each pad smaller than the window; mode 'max' or 'average'. Returns y (N, OH, OW, C), "
        "float32.");
  m.def("pool2d_backward", &convkit::python::pool2d_backward,
        nb::sig("def pool2d_backward(dy: numpy.ndarray, x: numpy.ndarray, "
                "window: int | tuple[int, int], stride: int | tuple[int, int] | None = None, "
                "padding: int | tuple[int, ...] = 0, mode: str = 'max', ceil_mode: bool = False, "
                "count_include_pad: bool = False, backend: str | None = None) -> numpy.ndarray"),
        "dy"_a, "x"_a, "window"_a, "stride"_a.none() = nb::none(), "padding"_a = 0,
        "mode"_a = "max", "ceil_mode"_a = false, "count_include_pad"_a = false,
        "backend"_a.none() = nb::none(),
        "dx of pool2d given dy. Max gives each dy whole to the first maximal element of its "
        "window (row-major); average spreads it with the forward's divisor.");
}

void add_zero_pad_and_runtime(nb::module_& m) {
  m.def("zero_pad", &convkit::python::zero_pad,
        nb::sig("def zero_pad(x: numpy.ndarray, padding: int | tuple[int, ...]) -> numpy.ndarray"),
        "x"_a, "padding"_a, "x (N, H, W, C) surrounded by zeros; padding as for conv2d.");
  m.def("backends", &convkit::available_backends,
        "The backend names built into this copy, in auto's order of preference.");
  m.def("set_num_threads", &convkit::set_num_threads, "n"_a,
        "The OpenMP thread count of every later call (0: back to the OpenMP default).");
  m.def("num_threads", &convkit::num_threads, "The thread count a call made now would use.");
  m.def("set_flush_denormals", &convkit::set_flush_denormals, "on"_a,
        "True: highway (and the ONNX glue's C++ loops) compute with denormals flushed to zero "
        "(x86's DAZ and FTZ) from now on; False (the default): IEEE results.");
  m.def("flush_denormals", &convkit::flush_denormals,
        "Whether highway computes with denormals flushed (set_flush_denormals).");
}

}  // namespace

NB_MODULE(_convkit, m) {
  m.doc() = "convkit's C++ layers (NHWC fp32); use the package `convkit`.";
  m.attr("__version__") = CONVKIT_VERSION;
  add_error_type(m);
  add_conv2d(m);
  add_pool2d(m);
  add_zero_pad_and_runtime(m);
  convkit::python::add_plans(m);
  convkit::python::add_glue(m);
}
