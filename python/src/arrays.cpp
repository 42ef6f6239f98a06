#include "python/src/arrays.hpp"

#include <nanobind/stl/string.h>

#include <cstdint>
#include <string>

#include "convkit/error.hpp"

namespace nb = nanobind;

namespace convkit::python {

namespace {

[[noreturn]] void fail(ErrorCode code, std::string_view op, std::string_view arg,
                       std::string_view expected, std::string_view given) {
  std::string message;
  message.append(op).append(": ").append(arg).append(": expected ").append(expected);
  throw Error(code, message.append(", given ").append(given));
}

// What a rejected array-like is: "numpy.ndarray float64 (2, 3) strides (8, 16)", or its type.
std::string describe(nb::handle value) {
  nb::handle type = value.type();
  std::string text = nb::cast<std::string>(nb::str(type.attr("__module__"))) + "." +
                     nb::cast<std::string>(nb::str(type.attr("__qualname__")));
  nb::ndarray<nb::ro, nb::device::cpu> any;
  if (!nb::try_cast(value, any, /*convert=*/false)) return text;
  const nb::dlpack::dtype dt = any.dtype();
  const char* kind = dt.code == static_cast<uint8_t>(nb::dlpack::dtype_code::Float) ? "float"
                     : dt.code == static_cast<uint8_t>(nb::dlpack::dtype_code::Int) ? "int"
                     : dt.code == static_cast<uint8_t>(nb::dlpack::dtype_code::UInt)
                         ? "uint"
                         : "dtype code ";
  text.append(" ").append(kind).append(std::to_string(dt.bits)).append(" (");
  std::string strides = " strides (";
  for (size_t i = 0; i < any.ndim(); ++i) {
    text.append(i == 0 ? "" : ", ").append(std::to_string(any.shape(i)));
    strides.append(i == 0 ? "" : ", ").append(std::to_string(any.stride(i)));
  }
  text.append(any.ndim() == 1 ? ",)" : ")");
  return text + strides + (any.ndim() == 1 ? ",)" : ")") + " in elements";
}

bool has_shape(const auto& array, const Dims& dims, bool flat = false) {
  if (flat) return array.ndim() == 1 && static_cast<int64_t>(array.shape(0)) == num_elements(dims);
  if (array.ndim() != 4) return false;
  for (size_t i = 0; i < 4; ++i) {
    if (static_cast<int64_t>(array.shape(i)) != dims[i]) return false;
  }
  return true;
}

template <typename Array>
std::string array_shape_string(const Array& array) {
  return shape_string(array.shape_ptr(), array.ndim());
}

}  // namespace

std::string shape_string(const int64_t* dims, size_t rank) {
  std::string text = "(";
  for (size_t i = 0; i < rank; ++i) text.append(i == 0 ? "" : ", ").append(std::to_string(dims[i]));
  return text.append(rank == 1 ? ",)" : ")");
}

std::string shape_string(const Dims& dims) { return shape_string(dims.data(), dims.size()); }

InputArray import_input(std::string_view op, std::string_view arg, nb::handle value,
                        const Dims& dims) {
  InputArray array;
  if (!nb::try_cast(value, array, /*convert=*/true)) {
    fail(ErrorCode::kInvalidArgument, op, arg,
         "an array (numpy or DLPack, convertible to float32) of shape " + shape_string(dims),
         describe(value));
  }
  if (!has_shape(array, dims)) {
    fail(ErrorCode::kShapeMismatch, op, arg, "shape " + shape_string(dims),
         array_shape_string(array));
  }
  return array;
}

WritableArray import_output(std::string_view op, std::string_view arg, nb::handle value,
                            const Dims& dims, bool flat) {
  WritableArray array;
  const std::string expected =
      "a writable C-contiguous float32 array of shape " +
      (flat ? "(" + std::to_string(num_elements(dims)) + ",)" : shape_string(dims));
  if (!nb::try_cast(value, array, /*convert=*/false)) {
    nb::ndarray<const float, nb::c_contig, nb::device::cpu> read_only;
    const bool is_read_only = nb::try_cast(value, read_only, /*convert=*/false);
    fail(ErrorCode::kInvalidArgument, op, arg, expected,
         describe(value) + (is_read_only ? " (read-only)" : ""));
  }
  if (!has_shape(array, dims, flat)) {
    fail(ErrorCode::kShapeMismatch, op, arg, expected, "shape " + array_shape_string(array));
  }
  return array;
}

void check_distinct(std::string_view op, std::string_view out_arg, const float* out,
                    int64_t out_size, std::string_view in_arg, const float* in, int64_t in_size) {
  if (out == nullptr || in == nullptr || out_size == 0 || in_size == 0) return;
  const auto out0 = reinterpret_cast<std::uintptr_t>(out);
  const auto in0 = reinterpret_cast<std::uintptr_t>(in);
  const auto out1 = out0 + static_cast<std::uintptr_t>(out_size) * sizeof(float);
  const auto in1 = in0 + static_cast<std::uintptr_t>(in_size) * sizeof(float);
  if (out0 < in1 && in0 < out1) {
    fail(ErrorCode::kInvalidArgument, op, out_arg,
         "memory that does not overlap " + std::string(in_arg), "overlapping memory");
  }
}

float* OutputBuffer::allocate(const Dims& dims) {
  const int64_t count = num_elements(dims);
  if (static_cast<uint64_t>(count) > SIZE_MAX / sizeof(float)) {
    throw Error(ErrorCode::kOutOfMemory,
                "output of dims " + to_string(dims) + ": more bytes than size_t counts");
  }
  return static_cast<float*>(
      ::operator new[](static_cast<size_t>(count) * sizeof(float), kAlignment));
}

ConstTensorView view_4d(std::string_view op, std::string_view arg, std::string_view layout,
                        const InputArray& array) {
  if (array.ndim() != 4) {
    std::string message;
    message.append(op).append(": ").append(arg).append(": expected a 4-D array ");
    message.append(layout).append(", given shape ").append(array_shape_string(array));
    throw Error(ErrorCode::kShapeMismatch, message);
  }
  const Dims dims = {static_cast<int64_t>(array.shape(0)), static_cast<int64_t>(array.shape(1)),
                     static_cast<int64_t>(array.shape(2)), static_cast<int64_t>(array.shape(3))};
  return {array.data(), dims};
}

OutputBuffer::OutputBuffer(const Dims& dims) : dims_(dims), data_(allocate(dims)) {}

OutputArray OutputBuffer::release(bool flat) && {
  const int64_t count = size();
  float* data = data_.get();
  nb::capsule owner(data, [](void* p) noexcept { AlignedDelete()(static_cast<float*>(p)); });
  data_.release();  // Now owned by the capsule.
  if (flat) return OutputArray(data, {static_cast<size_t>(count)}, owner);
  return OutputArray(data,
                     {static_cast<size_t>(dims_[0]), static_cast<size_t>(dims_[1]),
                      static_cast<size_t>(dims_[2]), static_cast<size_t>(dims_[3])},
                     owner);
}

}  // namespace convkit::python
